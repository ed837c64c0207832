#!/usr/bin/env python3
"""The peer side of bench/serving/run.py --forward: ONNX Runtime's InferenceSession.run alone, in
process (no HTTP, no JSON), one request at a time, with the session options ort_server.py uses
(1 intra-op thread, sequential). Inputs: the same request bodies as tandem-bench-serving-forward,
decoded once before timing. Prints one JSON line: {"forward": {"p50_us", "p99_us", "min_us"}}.

  ort_forward.py MODEL.onnx REQUESTS.jsonl [--iterations 2000] [--warmup 200]
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("requests")
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    specs = sess.get_inputs()
    feeds = []
    for line in open(a.requests):
        if not line.strip():
            continue
        inst = json.loads(line)["instances"]
        feed = {}
        for s in specs:
            dtype = np.int64 if "int64" in s.type else (np.int32 if "int32" in s.type else np.float32)
            arr = np.asarray([i[s.name] for i in inst], dtype=dtype)
            shape = [len(inst)] + [d if isinstance(d, int) else -1 for d in s.shape[1:]]
            feed[s.name] = arr.reshape(shape)
        feeds.append(feed)
    us = []
    for i in range(a.warmup + a.iterations):
        feed = feeds[i % len(feeds)]
        t0 = time.perf_counter()
        sess.run(None, feed)
        t1 = time.perf_counter()
        if i >= a.warmup:
            us.append((t1 - t0) * 1e6)
    us.sort()
    q = lambda f: us[min(len(us) - 1, int(f * len(us)))]  # noqa: E731
    print(json.dumps({"forward": {"p50_us": q(0.5), "p99_us": q(0.99), "min_us": us[0]},
                      "iterations": a.iterations}))


if __name__ == "__main__":
    main()
