#!/usr/bin/python3
"""bench/sparse-vs-pytorch: ONE command that trains the same CTR model with Tandem and with
PyTorch side by side, on the same synthetic click log, at 1 and 2 threads, best of --repeats:

  bench/sparse-vs-pytorch/run.py [--bin build/bin] [--examples 200000] [--json out.json]

Model: 26 categorical fields hashed into one 1,451,594 x 64 table, one Zipf(1.2) id per field,
summed per field (PyTorch: nn.EmbeddingBag(mode='sum', sparse=True)), concatenated into an MLP
1664-256-128-1, binary cross-entropy, plain SGD lr 0.05, batch 128, one pass.
The peer is PyTorch 2.x (pinned; scripts/install-bench-peers.sh installs it on first use) in
its best setting of --peer-settings (eager, or torch.compile of the MLP), each run interleaved
with Tandem's; Debian's PyTorch 1.13 (OPENBLAS_CORETYPE=SkylakeX, OPENBLAS_NUM_THREADS=1 at 2
threads) is the second column. Tandem single process keeps the table local; then the same
model runs with the table on 1, 2 and 4 in-process pservers (gRPC over loopback) and the pserver
pull/push rows per second are printed. Records (--json): ctr_t1, ctr_t2 (examples/s),
ctr_t1_peak_rss, ctr_t2_peak_rss (MiB), ctr_pserver_shards_{1,2,4} (examples/s; no peer);
"peer" is PyTorch 2.x's best, with "peer_setting", "peer_version", "torch113", "ratio_torch113"."""
import argparse, json, os, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))
import torch_peers  # noqa: E402
SETTINGS = {"eager": [], "compile": ["--compile"]}

run = torch_peers.run_json

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
    ap.add_argument("--peer-settings", default="eager,compile")
    ap.add_argument("--json")
    torch_peers.add_args(ap)
    a = ap.parse_args()
    peers = torch_peers.resolve(a)
    pt2, pt113 = peers[0], (peers[1] if len(peers) > 1 else None)
    settings = a.peer_settings.split(",")
    for s in settings:
        if s not in SETTINGS:
            sys.exit(f"--peer-settings: unknown setting {s!r} (known: {', '.join(SETTINGS)})")
    for peer in peers:
        print(f"peer: {peer.describe()}")
    tmp = tempfile.mkdtemp(prefix="sparse-bench-")
    prefix = os.path.join(tmp, "clicks")
    gen = run([os.path.join(a.bin, "tandem-ctr-gen"), "--examples", str(a.examples),
               "--seed", str(a.seed), "--out", prefix], dict(os.environ))
    print(f"data: {gen['examples']} examples x {gen['fields']} fields, click rate "
          f"{gen['click_rate']:.3f} (same examples as the trainer's synthetic-ctr seed {a.seed})")
    records = []
    print(f"{'name':8} {'tandem ex/s':>11} {'pt2 ex/s':>9} {'pt2 setting':>11} {'ratio':>6} "
          f"{'pt1.13 ex/s':>11} {'ratio':>6}   {'tandem MiB':>10} {'pt2 MiB':>8} {'ratio':>6} "
          f"{'load':>9}")
    for t in map(int, a.threads.split(",")):
        env_t = dict(os.environ, OMP_NUM_THREADS=str(t), OMP_WAIT_POLICY="passive")
        rt, r113, loads = [], [], []
        r2 = {s: [] for s in settings}
        for _ in range(a.repeats):  # alternate, so all see the same machine load
            loads.append(torch_peers.load_now())
            rt.append(run([os.path.join(a.bin, "tandem-bench-sparse"), "--threads", str(t),
                           "--examples", str(a.examples), "--seed", str(a.seed)], env_t))
            peer_args = ["--data", prefix, "--threads", str(t)]
            for s in settings:
                r2[s].append(run([pt2.python, os.path.join(HERE, "pytorch_ctr.py")] + peer_args +
                                 SETTINGS[s], pt2.env(t)))
            if pt113:
                r113.append(run([pt113.python, os.path.join(HERE, "pytorch_ctr.py")] + peer_args,
                                pt113.env(t)))
        win = max(settings, key=lambda s: best(r2[s])["examples_per_sec"])
        bt, bp = best(rt), best(r2[win])
        b113 = best(r113) if r113 else None
        name = f"ctr_t{t}"
        ratio = bt["examples_per_sec"] / bp["examples_per_sec"]
        ratio113 = b113 and bt["examples_per_sec"] / b113["examples_per_sec"]
        load = f"{min(loads):.1f}-{max(loads):.1f}"
        print(f"{name:8} {bt['examples_per_sec']:11.0f} {bp['examples_per_sec']:9.0f} {win:>11} "
              f"{ratio:6.2f} {(b113['examples_per_sec'] if b113 else float('nan')):11.0f} "
              f"{(ratio113 or float('nan')):6.2f}   {bt['peak_rss_mib']:10.0f} "
              f"{bp['peak_rss_mib']:8.0f} {bt['peak_rss_mib'] / bp['peak_rss_mib']:6.2f} "
              f"{load:>9}", flush=True)
        print(torch_peers.settings_line({s: best(r2[s]) for s in settings}, bp, b113), flush=True)
        rec = {"name": name, "unit": "examples/s", "tandem": round(bt["examples_per_sec"], 1),
               "peer": round(bp["examples_per_sec"], 1), "ratio": round(ratio, 3),
               "peer_setting": win, "peer_version": pt2.version, "load": load}
        mrec = {"name": name + "_peak_rss", "unit": "MiB", "tandem": round(bt["peak_rss_mib"], 1),
                "peer": round(bp["peak_rss_mib"], 1),
                "ratio": round(bt["peak_rss_mib"] / bp["peak_rss_mib"], 3),
                "peer_setting": win, "peer_version": pt2.version}
        if b113:
            rec.update(torch113=round(b113["examples_per_sec"], 1), ratio_torch113=round(ratio113, 3))
            mrec.update(torch113=round(b113["peak_rss_mib"], 1),
                        ratio_torch113=round(bt["peak_rss_mib"] / b113["peak_rss_mib"], 3))
        records += [rec, mrec]
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
