#!/usr/bin/python3
"""bench/sparse-vs-pytorch: ONE command that trains the same CTR model with Tandem and with
PyTorch 1.13 side by side, on the same synthetic click log, at 1 and 2 threads, best of --repeats:

  bench/sparse-vs-pytorch/run.py [--bin build/bin] [--examples 200000] [--json out.json]

Model: 26 categorical fields hashed into one 1,451,594 x 64 table, one Zipf(1.2) id per field,
summed per field (PyTorch: nn.EmbeddingBag(mode='sum', sparse=True)), concatenated into an MLP
1664-256-128-1, binary cross-entropy, plain SGD lr 0.05, batch 128, one pass.
PyTorch runs in its best setting on this machine: OPENBLAS_CORETYPE=SkylakeX, and
OPENBLAS_NUM_THREADS=1 at 2 threads. Tandem single process keeps the table local; then the same
model runs with the table on 1, 2 and 4 in-process pservers (gRPC over loopback) and the pserver
pull/push rows per second are printed. Records (--json): ctr_t1, ctr_t2 (examples/s),
ctr_t1_peak_rss, ctr_t2_peak_rss (MiB), ctr_pserver_shards_{1,2,4} (examples/s; no peer)."""
import argparse, json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

def run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])

def best(runs):
    return max(runs, key=lambda r: r["examples_per_sec"])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "../../build/bin"))
    ap.add_argument("--examples", type=int, default=200000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="sparse-bench-")
    prefix = os.path.join(tmp, "clicks")
    gen = run([os.path.join(a.bin, "tandem-ctr-gen"), "--examples", str(a.examples),
               "--seed", str(a.seed), "--out", prefix], dict(os.environ))
    print(f"data: {gen['examples']} examples x {gen['fields']} fields, click rate "
          f"{gen['click_rate']:.3f} (same examples as the trainer's synthetic-ctr seed {a.seed})")
    records = []
    print(f"{'name':8} {'tandem ex/s':>12} {'pytorch ex/s':>13} {'ratio':>6}   "
          f"{'tandem MiB':>10} {'pytorch MiB':>11}")
    for t in map(int, a.threads.split(",")):
        env_t = dict(os.environ, OMP_NUM_THREADS=str(t), OMP_WAIT_POLICY="passive")
        env_p = dict(os.environ, OPENBLAS_CORETYPE="SkylakeX", OMP_NUM_THREADS=str(t),
                     OPENBLAS_NUM_THREADS="1" if t > 1 else str(t))
        rt, rp = [], []
        for _ in range(a.repeats):  # alternate, so both see the same machine load
            rt.append(run([os.path.join(a.bin, "tandem-bench-sparse"), "--threads", str(t),
                           "--examples", str(a.examples), "--seed", str(a.seed)], env_t))
            rp.append(run(["/usr/bin/python3", os.path.join(HERE, "pytorch_ctr.py"),
                           "--data", prefix, "--threads", str(t)], env_p))
        bt, bp = best(rt), best(rp)
        name = f"ctr_t{t}"
        ratio = bt["examples_per_sec"] / bp["examples_per_sec"]
        print(f"{name:8} {bt['examples_per_sec']:12.0f} {bp['examples_per_sec']:13.0f} {ratio:6.2f}   "
              f"{bt['peak_rss_mib']:10.0f} {bp['peak_rss_mib']:11.0f}", flush=True)
        records.append({"name": name, "unit": "examples/s", "tandem": round(bt["examples_per_sec"], 1),
                        "peer": round(bp["examples_per_sec"], 1), "ratio": round(ratio, 3)})
        records.append({"name": name + "_peak_rss", "unit": "MiB",
                        "tandem": round(bt["peak_rss_mib"], 1), "peer": round(bp["peak_rss_mib"], 1),
                        "ratio": round(bt["peak_rss_mib"] / bp["peak_rss_mib"], 3)})
    print("\ntables on in-process pservers (1 trainer thread, sync, gRPC over loopback):")
    print(f"{'shards':>6} {'examples/s':>11} {'pull rows/s':>12} {'push rows/s':>12} {'MiB':>6}")
    env_t = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
    for s in map(int, a.shards.split(",")):
        r = best([run([os.path.join(a.bin, "tandem-bench-sparse"), "--threads", "1", "--shards",
                       str(s), "--examples", str(a.examples), "--seed", str(a.seed)], env_t)
                  for _ in range(a.repeats)])
        print(f"{s:6d} {r['examples_per_sec']:11.0f} {r['rows_pulled_per_sec']:12.0f} "
              f"{r['rows_pushed_per_sec']:12.0f} {r['peak_rss_mib']:6.0f}", flush=True)
        records.append({"name": f"ctr_pserver_shards_{s}", "unit": "examples/s",
                        "tandem": round(r["examples_per_sec"], 1), "peer": None, "ratio": None,
                        "pull_rows_per_sec": round(r["rows_pulled_per_sec"]),
                        "push_rows_per_sec": round(r["rows_pushed_per_sec"])})
    print(f"\nbest of {a.repeats} runs each; the machine is shared, numbers are noisy")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)
    for suffix in (".ids", ".labels"):
        os.remove(prefix + suffix)
    os.rmdir(tmp)

if __name__ == "__main__":
    main()
