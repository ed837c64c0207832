#!/usr/bin/env python3
"""bench/gpu-vs-pytorch: Tandem's CUDA device and PyTorch on the same GPU, one table.

  python3 bench/gpu-vs-pytorch/run.py --tandem-bench build/bin/gpu_layers_bench --out DIR

Writes DIR/gpu-vs-pytorch.jsonl (every record) and prints the table. Tandem's figures are
forward+backward of the GPU layer chain only (its engine does not yet run cost, optimizer and
data feed on the GPU: docs/gpu.md); they are compared with PyTorch timing the same thing.
PEAK_BF16_TFLOPS is the H200's dense bf16 figure the issue uses (~790: the 8192^3 bf16 GEMM
measured on these machines, KINDS.md).
"""
import argparse, json, os, subprocess, sys

PEAK_BF16_TFLOPS = 790.0
here = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("--tandem-bench", required=True)
p.add_argument("--tandem-ld-library-path", default="",
               help="LD_LIBRARY_PATH for the Tandem binary only (carried libraries)")
p.add_argument("--out", default=".")
p.add_argument("--steps", type=int, default=50)
a = p.parse_args()
records = []
os.makedirs(a.out, exist_ok=True)
# Written as records arrive, so a run cut short by its time limit still leaves what it measured.
jsonl = open(os.path.join(a.out, "gpu-vs-pytorch.jsonl"), "w")


def collect(cmd, timeout, env=None):
    print("+", " ".join(cmd), flush=True)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:  # keep the records printed before the limit
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, rc = f"timed out after {timeout} s", "timeout"
    for line in out.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
            jsonl.write(line + "\n")
            jsonl.flush()
    if rc != 0:
        print(f"  exit {rc}: {err[-800:]}", flush=True)


tandem_env = dict(os.environ)
if a.tandem_ld_library_path:
    tandem_env["LD_LIBRARY_PATH"] = a.tandem_ld_library_path
for model, batch in (("seed_cnn", 512), ("wide_cnn", 256)):
    for precision in ("bf16", "fp32"):
        collect([a.tandem_bench, "--model", model, "--batch", str(batch), "--precision", precision,
                 "--steps", str(a.steps)], 30, tandem_env)
# One process per model, so that a slow torch.compile costs only that model's figures.
for model in ("seed_cnn", "wide_cnn", "resnet", "lstm_lm", "ctr"):
    collect([sys.executable, os.path.join(here, "pytorch_gpu_bench.py"), "--models", model,
             "--steps", str(a.steps)], 100)

jsonl.close()

print(f"\n{'model':9} {'system':8} {'timed':24} {'mode':52} {'ex/s':>10} {'TFLOP/s':>8} {'%peak':>6} {'MiB':>7}")
for r in records:
    if "error" in r:
        print(f"{r['model']:9} {r['system']:8} {r['timed']:24} error: {r['error'][:60]}")
        continue
    mode = r.get("mode", r.get("precision", ""))
    mem = r.get("peak_mem_mib", r.get("device_mem_used_mib", ""))
    print(f"{r['model']:9} {r['system']:8} {r['timed']:24} {mode:52.52} {r['examples_per_s']:>10.0f} "
          f"{r['tflops']:>8.1f} {100 * r['tflops'] / PEAK_BF16_TFLOPS:>5.1f}% {mem:>7}")
# The ratio the issue asks for, where both sides timed the same thing.
best = {}
for r in records:
    if "error" in r:
        continue
    key = (r["model"], r["timed"], r["system"])
    best[key] = max(best.get(key, 0), r["examples_per_s"])
for (model, timed, system), eps in sorted(best.items()):
    if system == "tandem" and (model, timed, "pytorch") in best:
        print(f"{model}: tandem / best pytorch ({timed}) = {eps / best[(model, timed, 'pytorch')]:.2f}x")
