#!/usr/bin/python3
"""bench/seq2seq-vs-pytorch: sequence-to-sequence training, Tandem and PyTorch side by side on the
same models, shapes, batch (64), optimizer and thread count, alternating runs, best of --repeats:

  bench/seq2seq-vs-pytorch/run_bench.py [--bin build/bin/seq2seq_bench] [--json out.json]

Models (seq2seq_bench.cc): `rnn`, the seed's RNN setting (batch 64, embedding = hidden = 256,
dictionary 10,000, an LSTM encoder-decoder), and `attention`, examples/nmt-attention.yaml's
character model with dot-product attention. The peer is the pinned PyTorch 2.x
(scripts/install-bench-peers.sh) at its best: eager and torch.compile, each in its own process,
the faster kept; Debian's PyTorch 1.13 runs eagerly as a second column (--no-torch113 skips it).
Printed and recorded: examples/s and the time per 100 batches of each side, and the ratio
Tandem / PyTorch 2.x of throughput (higher is better).
--json records: {"name","unit","tandem","peer","ratio"} (examples/s) plus "peer_setting",
"peer_version", "tandem_s_per_100_batches", "peer_s_per_100_batches", "load",
"tandem_cpu_ms_per_step" / "peer_cpu_ms_per_step" (the least CPU time per step of any run, the
peer over both settings) and "cpu_ratio" (peer / tandem: the load-robust comparison at 1 thread;
with more threads CPU time also counts waiting threads) and, with the 1.13 column, "torch113" and
"ratio_torch113".
"""
import argparse, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))
import torch_peers  # noqa: E402

STEPS = {"rnn": (6, 2), "attention": (20, 3)}
SETTINGS = {"eager": [], "compile": ["--compile"]}


run = torch_peers.run_json


better = torch_peers.faster


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=os.path.join(HERE, "../../build/bin/seq2seq_bench"))
    p.add_argument("--models", default="rnn,attention")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the step counts")
    p.add_argument("--peer-settings", default="eager,compile")
    p.add_argument("--json")
    torch_peers.add_args(p)
    a = p.parse_args()
    peers = torch_peers.resolve(a)
    pt2 = peers[0]
    pt113 = peers[1] if len(peers) > 1 else None
    script = os.path.join(HERE, "pytorch_seq2seq.py")
    settings = a.peer_settings.split(",")
    for s in settings:
        if s not in SETTINGS:
            sys.exit(f"--peer-settings: unknown setting {s!r} (known: {', '.join(SETTINGS)})")
    print(f"tandem: {a.bin} (OMP_WAIT_POLICY=passive, as for the peers)")
    for peer in peers:
        print(f"peer:   {peer.describe()}")
    records = []
    print(f"{'name':13} {'tandem ex/s':>11} {'s/100b':>7} {'pt2 ex/s':>9} {'s/100b':>7} "
          f"{'setting':>8} {'ratio':>6} {'pt1.13 ex/s':>11} {'ratio':>6} {'load':>9} "
          f"{'cpu ms/step t/pt2':>17} {'cpu ratio':>9}")
    for model in a.models.split(","):
        steps, warmup = STEPS[model]
        steps = max(2, int(steps * a.scale))
        for t in map(int, a.threads.split(",")):
            args = ["--model", model, "--threads", str(t), "--steps", str(steps),
                    "--warmup", str(warmup)]
            env_t = dict(os.environ, OMP_NUM_THREADS=str(t), OMP_WAIT_POLICY="passive")
            best_t, best_113 = None, None
            best_2 = {s: None for s in settings}
            loads = []
            cpu_t, cpu_2 = [], []  # CPU ms per step of every run (the least is kept)
            for _ in range(a.repeats):  # interleaved: every side sees the same load
                loads.append(torch_peers.load_now())
                r = run([a.bin] + args, env_t)
                cpu_t.append(r["cpu_ms_per_step"])
                best_t = better(best_t, r)
                for s in settings:
                    r = run([pt2.python, script] + args + SETTINGS[s], pt2.env(t))
                    cpu_2.append(r["cpu_ms_per_step"])
                    best_2[s] = better(best_2[s], r)
                if pt113:
                    best_113 = better(best_113, run([pt113.python, script] + args, pt113.env(t)))
            win = max(settings, key=lambda s: best_2[s]["examples_per_sec"])
            bp = best_2[win]
            name = f"{model}_t{t}"
            speed = best_t["examples_per_sec"] / bp["examples_per_sec"]
            r113 = best_113 and best_t["examples_per_sec"] / best_113["examples_per_sec"]
            load = f"{min(loads):.1f}-{max(loads):.1f}"
            # At 1 thread, CPU time per step is the work itself, whatever the load took from the
            # wall clock: its ratio is the load-robust figure. With more threads it also counts
            # waiting threads, so it is printed but is no throughput ratio.
            cpu_ratio = min(cpu_2) / min(cpu_t)
            print(f"{name:13} {best_t['examples_per_sec']:11.1f} "
                  f"{best_t['ms_per_100_batches'] / 1000:7.1f} {bp['examples_per_sec']:9.1f} "
                  f"{bp['ms_per_100_batches'] / 1000:7.1f} {win:>8} {speed:6.2f} "
                  f"{(best_113['examples_per_sec'] if best_113 else float('nan')):11.1f} "
                  f"{(r113 or float('nan')):6.2f} {load:>9} "
                  f"{min(cpu_t):8.1f}/{min(cpu_2):8.1f} {cpu_ratio:9.2f}", flush=True)
            rec = {"name": name, "unit": "examples/s", "tandem": best_t["examples_per_sec"],
                   "peer": bp["examples_per_sec"], "ratio": round(speed, 3),
                   "peer_setting": win, "peer_version": pt2.version,
                   "peer_by_setting": {s: best_2[s]["examples_per_sec"] for s in settings},
                   "tandem_s_per_100_batches": round(best_t["ms_per_100_batches"] / 1000, 2),
                   "peer_s_per_100_batches": round(bp["ms_per_100_batches"] / 1000, 2),
                   "load": load, "tandem_cpu_ms_per_step": min(cpu_t),
                   "peer_cpu_ms_per_step": min(cpu_2), "cpu_ratio": round(cpu_ratio, 3)}
            if best_113:
                rec.update(torch113=best_113["examples_per_sec"], ratio_torch113=round(r113, 3))
            records.append(rec)
    print(f"best of {a.repeats} interleaved runs each; s/100b = seconds per 100 batches of 64; "
          "load = 1-minute load average at each repeat's start (2 cores: above 2 the figures "
          "are noisy)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
