#!/usr/bin/env python3
"""The peer of bench/serving: ONNX Runtime serving model.onnx over HTTP/JSON with the batching
policy tandem-serve has (max batch, max queue delay, N worker threads), so that one load
generator drives both the same way.

  ort_server.py MODEL.onnx --port P --workers 2 --max-batch 32 --max-delay-us 2000

POST /v1/predict takes tandem-serve's body ({"instances": [{input: value}]}; fields inputs as
one id per field) and answers {"predictions": [[...], ...]}. The front end is Python's standard
library (ThreadingHTTPServer, HTTP/1.1 keep-alive); session.run releases the GIL, so the
workers compute in parallel while other threads parse requests.
"""
import argparse
import json
import queue
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnxruntime as ort


class Pending:
    __slots__ = ("inputs", "n", "t", "done", "out", "error")

    def __init__(self, inputs, n):
        self.inputs, self.n, self.t = inputs, n, time.monotonic()
        self.done, self.out, self.error = threading.Event(), None, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-delay-us", type=int, default=1000)
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads_per_worker
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    specs = {i.name: i for i in sess.get_inputs()}
    q = queue.Queue()
    delay = a.max_delay_us / 1e6

    def worker():
        carry = None
        while True:
            first = carry or q.get()
            carry = None
            batch, n = [first], first.n
            deadline = first.t + delay
            while n < a.max_batch:
                left = deadline - time.monotonic()
                try:
                    p = q.get(timeout=left) if left > 0 else q.get_nowait()
                except queue.Empty:
                    break
                if n + p.n > a.max_batch:
                    carry = p
                    break
                batch.append(p)
                n += p.n
            try:
                feed = {k: np.concatenate([p.inputs[k] for p in batch]) for k in specs}
                out = sess.run(None, feed)[0]
                o = 0
                for p in batch:
                    p.out = out[o:o + p.n]
                    o += p.n
            except Exception as e:  # noqa: BLE001 - answered as a 500
                for p in batch:
                    p.error = str(e)
            for p in batch:
                p.done.set()

    for _ in range(a.workers):
        threading.Thread(target=worker, daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response, no Nagle: unbuffered headers then body would wait out the
        # client's delayed ACK (40 ms) on every keep-alive request.
        wbufsize = 1 << 16

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args):
            pass

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # readiness
            self.reply(200, {"ready": True})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                inst = json.loads(body)["instances"]
                inputs = {}
                for k, spec in specs.items():
                    if spec.type == "tensor(int64)":
                        inputs[k] = np.array([[f[0] if isinstance(f, list) else f for f in i[k]] for i in inst],
                                             dtype=np.int64)
                    else:
                        shape = [len(inst)] + [d for d in spec.shape[1:]]
                        inputs[k] = np.asarray([i[k] for i in inst], dtype=np.float32).reshape(shape)
            except Exception as e:  # noqa: BLE001
                return self.reply(400, {"error": str(e)})
            p = Pending(inputs, len(inst))
            q.put(p)
            p.done.wait()
            if p.error:
                return self.reply(500, {"error": p.error})
            self.reply(200, {"predictions": p.out.tolist()})

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print(f"ort_server: onnxruntime {ort.__version__} on port {a.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
