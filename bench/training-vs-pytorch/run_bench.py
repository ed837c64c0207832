#!/usr/bin/python3
"""bench/training-vs-pytorch: Tandem's trainer and PyTorch 1.13 side by side on the same models,
data, batch, optimizer and thread count (1 and 2), alternating runs, best of --repeats.

  bench/training-vs-pytorch/run_bench.py --bin build/bin/training_bench [--json out.json]

PyTorch runs in its best setting on this machine: OPENBLAS_CORETYPE=SkylakeX (Debian's OpenBLAS
does not recognise the CPU and falls back to SSE3 kernels otherwise), and OPENBLAS_NUM_THREADS=1
with 2 threads (PyTorch's and OpenBLAS' pools fight over the cores otherwise). Ratios are
Tandem / PyTorch for throughput (higher is better) and for peak RSS (lower is better)."""
import argparse, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = {"cnn": (40, 5), "mlp": (400, 20), "lstm": (8, 2)}

def run(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=os.path.join(HERE, "../../build/bin/training_bench"))
    p.add_argument("--models", default="cnn,mlp,lstm")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the step counts")
    p.add_argument("--json")
    a = p.parse_args()
    records = []
    print(f"{'name':10} {'tandem ex/s':>12} {'pytorch ex/s':>13} {'ratio':>6}   "
          f"{'tandem MiB':>10} {'pytorch MiB':>11} {'ratio':>6}   {'ms/step t/p':>16}")
    for model in a.models.split(","):
        steps, warmup = STEPS[model]
        steps = max(2, int(steps * a.scale))
        for t in map(int, a.threads.split(",")):
            args = ["--model", model, "--threads", str(t), "--steps", str(steps),
                    "--warmup", str(warmup)]
            env_t = dict(os.environ, OMP_NUM_THREADS=str(t))
            env_p = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX", OMP_NUM_THREADS=str(t),
                         OPENBLAS_NUM_THREADS="1" if t > 1 else str(t))
            best_t = best_p = None
            for _ in range(a.repeats):
                r = run([a.bin] + args, env_t)
                if best_t is None or r["examples_per_sec"] > best_t["examples_per_sec"]:
                    best_t = r
                r = run(["/usr/bin/python3", os.path.join(HERE, "pytorch_bench.py")] + args, env_p)
                if best_p is None or r["examples_per_sec"] > best_p["examples_per_sec"]:
                    best_p = r
            name = f"{model}_t{t}"
            speed = best_t["examples_per_sec"] / best_p["examples_per_sec"]
            mem = best_t["peak_rss_mib"] / best_p["peak_rss_mib"]
            print(f"{name:10} {best_t['examples_per_sec']:12.1f} {best_p['examples_per_sec']:13.1f} "
                  f"{speed:6.2f}   {best_t['peak_rss_mib']:10.1f} {best_p['peak_rss_mib']:11.1f} "
                  f"{mem:6.2f}   {best_t['ms_per_step']:7.1f}/{best_p['ms_per_step']:.1f}",
                  flush=True)
            records.append({"name": name, "unit": "examples/s", "tandem": best_t["examples_per_sec"],
                            "peer": best_p["examples_per_sec"], "ratio": round(speed, 3)})
            records.append({"name": name + "_peak_rss", "unit": "MiB",
                            "tandem": best_t["peak_rss_mib"], "peer": best_p["peak_rss_mib"],
                            "ratio": round(mem, 3)})
    print("peer: PyTorch " + subprocess.run(["/usr/bin/python3", "-c", "import torch;print(torch.__version__)"],
                                           capture_output=True, text=True).stdout.strip() +
          " with OPENBLAS_CORETYPE=SkylakeX (and OPENBLAS_NUM_THREADS=1 at 2 threads)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)

if __name__ == "__main__":
    sys.exit(main())
