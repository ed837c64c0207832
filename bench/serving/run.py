#!/usr/bin/env python3
"""bench/serving: tandem-serve against ONNX Runtime serving the same model (same weights,
exported to ONNX), both over HTTP/JSON with the same batching policy and worker count, driven by
the same load generator (tandem-serving-load), interleaved setting by setting.

  bench/serving/run.py [--models cnn,ctr] [--duration 5] [--rounds 3] [--json out.json]

Per model (the Fashion-MNIST CNN of examples/fashion-mnist-cnn.yaml, the CTR model of
bench/serving/ctr.yaml): first a parity check (the two servers' predictions on the same
requests), then
  batch1:  max batch 1, closed loop with 1 and 4 connections
  dynamic: max batch 32, max queue delay 2 ms, closed loop with 32 connections, and an open
           loop at a fixed rate (70% of the peer's dynamic closed-loop QPS) for both.
and, in process without HTTP or threads, one request's steps on our side (JSON parse, forward,
response render: tandem-bench-serving-forward) beside ONNX Runtime's InferenceSession.run alone
(ort_forward.py), batch 1, the p50 of 2000 requests each.
Both servers of a setting run side by side and take --rounds alternating load bursts (tandem,
peer, tandem, ...): per side the median over the rounds, and the ratio's range over them.
Prints p50/p99 latency and QPS per setting and the QPS ratio; --json writes
{"name","unit","tandem","peer","ratio"} records. Records `uptime` with every run: the machine is
shared.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
MODELS = {"cnn": os.path.join(ROOT, "examples", "fashion-mnist-cnn.yaml"),
          "ctr": os.path.join(HERE, "ctr.yaml")}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def uptime():
    return open("/proc/loadavg").read().split()[:3]


def wait_ready(port, path, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready")


def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["predictions"]


class Server:
    def __init__(self, argv, port, ready_path):
        self.port = port
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(port, ready_path)

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=30)


def start(kind, a, work, batch, delay_us):
    port = free_port()
    if kind == "tandem":
        argv = [os.path.join(a.bin, "tandem-serve"), "--model-dir", os.path.join(work, "published"),
                "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "-1", "--workers", str(a.workers),
                "--max-batch-size", str(batch), "--max-queue-delay-us", str(delay_us)]
        return Server(argv, port, "/readyz")
    argv = [a.python, os.path.join(HERE, "ort_server.py"), os.path.join(work, "model.onnx"), "--port", str(port),
            "--workers", str(a.workers), "--max-batch", str(batch), "--max-delay-us", str(delay_us)]
    srv = Server(argv, port, "/")  # any answer means it listens
    return srv


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def load(a, port, requests, mode, concurrency=0, rate=0.0):
    argv = [os.path.join(a.bin, "tandem-serving-load"), "--port", str(port), "--requests", requests,
            "--mode", mode, "--duration", str(a.duration), "--warmup", str(a.warmup)]
    argv += ["--concurrency", str(concurrency)] if mode == "closed" else ["--rate", str(rate)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    r["load"] = uptime()
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="cnn,ctr")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--python", default=None, help="the venv with onnxruntime (default: install it)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--rounds", type=int, default=1, help="alternating load bursts per server and setting")
    ap.add_argument("--work", default="/tmp/tandem-bench-serving")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.python is None:
        a.python = subprocess.run([os.path.join(ROOT, "scripts", "install-serving-peers.sh")], check=True,
                                  capture_output=True, text=True).stdout.strip()
    ver = subprocess.run([a.python, "-c", "import onnxruntime; print(onnxruntime.__version__)"],
                         capture_output=True, text=True).stdout.strip()
    print(f"peer: onnxruntime {ver} (CPU provider, intra-op 1 thread per worker); {a.workers} workers each; "
          f"load {' '.join(uptime())}")
    records = []
    for model in a.models.split(","):
        work = os.path.join(a.work, model)
        subprocess.run([os.path.join(a.bin, "tandem-bench-serving-model"), MODELS[model], "--out", work,
                        "--requests", "2000", "--examples-per-request", "1"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([a.python, os.path.join(HERE, "export_onnx.py"), work], check=True, stdout=subprocess.DEVNULL)
        req = os.path.join(work, "requests-b1.jsonl")
        # Parity: both serve the same function.
        bodies = open(req).read().splitlines()[:20]
        t = start("tandem", a, work, 1, 0)
        try:
            p = start("peer", a, work, 1, 0)
        except Exception:
            t.stop()
            raise
        try:
            diff = max(abs(x - y) for b in bodies for rx, ry in zip(post(t.port, b), post(p.port, b))
                       for x, y in zip(rx, ry))
        finally:
            t.stop()
            p.stop()
        print(f"\n{model}: parity on 20 requests: max |tandem - onnxruntime| = {diff:.2e}")
        if diff > 1e-3:
            sys.exit(f"{model}: the two servers disagree ({diff}); not benchmarking different models")
        # In process: where one batch-1 request's time goes on our side, and the peer's forward.
        version = sorted(d for d in os.listdir(os.path.join(work, "published")) if d.startswith("v"))[-1]
        ours_runs, peer_runs = [], []
        for _ in range(a.rounds):  # alternating, as the load settings below
            ours_runs.append(json.loads(subprocess.run(
                [os.path.join(a.bin, "tandem-bench-serving-forward"), os.path.join(work, "published", version),
                 "--requests", req], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]))
            peer_runs.append(json.loads(subprocess.run(
                [a.python, os.path.join(HERE, "ort_forward.py"), os.path.join(work, "model.onnx"), req],
                check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]))
        ours = {step: {"p50_us": median([r[step]["p50_us"] for r in ours_runs])}
                for step in ("parse", "forward", "render")}
        ours["forward"]["min_us"] = min(r["forward"]["min_us"] for r in ours_runs)
        peer = {"forward": {"p50_us": median([r["forward"]["p50_us"] for r in peer_runs]),
                            "min_us": min(r["forward"]["min_us"] for r in peer_runs)}}
        fr = peer["forward"]["p50_us"] / ours["forward"]["p50_us"]
        print(f"in process, batch 1, p50 us: tandem parse {ours['parse']['p50_us']:.0f} + forward "
              f"{ours['forward']['p50_us']:.0f} + render {ours['render']['p50_us']:.0f}; onnxruntime session.run "
              f"{peer['forward']['p50_us']:.0f}; forward ratio {fr:.2f} (fastest request: tandem "
              f"{ours['forward']['min_us']:.0f}, onnxruntime {peer['forward']['min_us']:.0f})  load {' '.join(uptime())}")
        for step in ("parse", "forward", "render"):
            records.append({"name": f"serving/{model}/in_process_b1/{step}_p50_us", "unit": "us",
                            "tandem": ours[step]["p50_us"],
                            "peer": peer["forward"]["p50_us"] if step == "forward" else None,
                            "ratio": fr if step == "forward" else None})
        settings = [("batch1", 1, 0, "closed", 1, 0), ("batch1", 1, 0, "closed", 4, 0),
                    ("dynamic", 32, 2000, "closed", 32, 0), ("dynamic", 32, 2000, "open", 0, None)]
        print(f"{'setting':<34} {'tandem p50/p99 ms':>19} {'qps':>8}   {'peer p50/p99 ms':>19} {'qps':>8}  ratio "
              f"(rounds)  load")
        peer_dynamic_qps = None
        for name, batch, delay, mode, conc, rate in settings:
            if mode == "open":
                rate = round(0.7 * peer_dynamic_qps)
            # Interleaved: both servers up, then --rounds alternating load bursts (tandem, peer,
            # tandem, ...), so that a shared machine's load changes hit both alike; per side the
            # median of the rounds' figures, and the ratio's spread over the rounds.
            servers = {}
            rounds = {"tandem": [], "peer": []}
            try:
                for kind in ("tandem", "peer"):
                    servers[kind] = start(kind, a, work, batch, delay)
                for _ in range(a.rounds):
                    for kind in ("tandem", "peer"):
                        rounds[kind].append(load(a, servers[kind].port, req, mode, conc, rate))
            finally:
                for srv in servers.values():
                    srv.stop()
            res = {kind: {k: median([r[k] for r in rs]) for k in ("qps", "p50_ms", "p99_ms")}
                   | {"errors": sum(r["errors"] for r in rs), "load": rs[-1]["load"]} for kind, rs in rounds.items()}
            round_ratios = [t["qps"] / p["qps"] if p["qps"] else float("nan")
                            for t, p in zip(rounds["tandem"], rounds["peer"])]
            if name == "dynamic" and mode == "closed":
                peer_dynamic_qps = res["peer"]["qps"]
            label = f"{model} {name} {mode} " + (f"C={conc}" if mode == "closed" else f"{rate}/s")
            ratio = res["tandem"]["qps"] / res["peer"]["qps"] if res["peer"]["qps"] else float("nan")
            tr, pr = res["tandem"], res["peer"]
            print(f"{label:<34} {tr['p50_ms']:>8.2f}/{tr['p99_ms']:<8.2f} {tr['qps']:>8.0f}   "
                  f"{pr['p50_ms']:>8.2f}/{pr['p99_ms']:<8.2f} {pr['qps']:>8.0f}  {ratio:5.2f}  "
                  f"({min(round_ratios):.2f}-{max(round_ratios):.2f})  {' '.join(tr['load'])}"
                  + (f"  errors {tr['errors']}/{pr['errors']}" if tr["errors"] or pr["errors"] else ""))
            key = f"serving/{model}/{name}/{mode}/" + (f"c{conc}" if mode == "closed" else f"rate{rate}")
            records.append({"name": key + "/qps", "unit": "requests/s", "tandem": tr["qps"], "peer": pr["qps"],
                            "ratio": ratio, "round_ratios": round_ratios, "load": tr["load"]})
            for q in ("p50_ms", "p99_ms"):
                records.append({"name": f"{key}/{q}", "unit": "ms", "tandem": tr[q], "peer": pr[q],
                                "ratio": pr[q] / tr[q] if tr[q] else float("nan")})
    if a.json:
        json.dump(records, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
