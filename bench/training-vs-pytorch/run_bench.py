#!/usr/bin/python3
"""bench/training-vs-pytorch: Tandem's trainer and PyTorch side by side on the same models, data,
batch, optimizer and thread count (1 and 2), alternating runs, best of --repeats:

  bench/training-vs-pytorch/run_bench.py [--bin build/bin/training_bench] [--json out.json]

The peer is PyTorch 2.x (pinned; scripts/install-bench-peers.sh installs it into the project's
venv on first use) at its best on this machine: every setting in --peer-settings is run
(eager; channels_last for the CNN; torch.compile), each in its own process, interleaved with
Tandem's runs so that all see the same machine load, and the fastest one is the peer (its name
is printed and recorded). Debian's PyTorch 1.13 runs eagerly as a second column (--no-torch113
skips it). Ratios: Tandem / PyTorch 2.x for throughput (higher is better) and for peak RSS
(lower is better), the RSS being that of the winning setting's run.
--json records: {"name","unit","tandem","peer","ratio"} plus "peer_setting", "peer_version" and,
with the 1.13 column, "torch113" and "ratio_torch113".
"""
import argparse, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))
import torch_peers  # noqa: E402

STEPS = {"cnn": (40, 5), "mlp": (400, 20), "lstm": (8, 2)}
SETTINGS = {"eager": [], "channels_last": ["--channels-last"], "compile": ["--compile"]}


run = torch_peers.run_json


better = torch_peers.faster


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=os.path.join(HERE, "../../build/bin/training_bench"))
    p.add_argument("--models", default="cnn,mlp,lstm")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the step counts")
    p.add_argument("--peer-settings", default="eager,channels_last,compile",
                   help="PyTorch 2.x settings to try (channels_last only applies to the CNN)")
    p.add_argument("--json")
    torch_peers.add_args(p)
    a = p.parse_args()
    peers = torch_peers.resolve(a)
    pt2 = peers[0]
    pt113 = peers[1] if len(peers) > 1 else None
    script = os.path.join(HERE, "pytorch_bench.py")
    for s in a.peer_settings.split(","):
        if s not in SETTINGS:
            sys.exit(f"--peer-settings: unknown setting {s!r} (known: {', '.join(SETTINGS)})")
    print(f"tandem: {a.bin} (OMP_WAIT_POLICY=passive, as for the peers)")
    for peer in peers:
        print(f"peer:   {peer.describe()}")
    records = []
    print(f"{'name':8} {'tandem ex/s':>11} {'pt2 ex/s':>10} {'pt2 setting':>13} {'ratio':>6} "
          f"{'pt1.13 ex/s':>11} {'ratio':>6}   {'tandem MiB':>10} {'pt2 MiB':>8} {'ratio':>6} "
          f"{'load':>5}")
    for model in a.models.split(","):
        steps, warmup = STEPS[model]
        steps = max(2, int(steps * a.scale))
        settings = [s for s in a.peer_settings.split(",") if s != "channels_last" or model == "cnn"]
        for t in map(int, a.threads.split(",")):
            args = ["--model", model, "--threads", str(t), "--steps", str(steps),
                    "--warmup", str(warmup)]
            env_t = dict(os.environ, OMP_NUM_THREADS=str(t), OMP_WAIT_POLICY="passive")
            best_t, best_113 = None, None
            best_2 = {s: None for s in settings}
            loads = []
            for _ in range(a.repeats):  # interleaved: every side sees the same load
                loads.append(torch_peers.load_now())
                best_t = better(best_t, run([a.bin] + args, env_t))
                for s in settings:
                    best_2[s] = better(best_2[s], run([pt2.python, script] + args + SETTINGS[s],
                                                      pt2.env(t)))
                if pt113:
                    best_113 = better(best_113, run([pt113.python, script] + args, pt113.env(t)))
            win = max(settings, key=lambda s: best_2[s]["examples_per_sec"])
            bp = best_2[win]
            name = f"{model}_t{t}"
            speed = best_t["examples_per_sec"] / bp["examples_per_sec"]
            mem = best_t["peak_rss_mib"] / bp["peak_rss_mib"]
            r113 = best_113 and best_t["examples_per_sec"] / best_113["examples_per_sec"]
            load = f"{min(loads):.1f}-{max(loads):.1f}"
            print(f"{name:8} {best_t['examples_per_sec']:11.1f} {bp['examples_per_sec']:10.1f} "
                  f"{win:>13} {speed:6.2f} "
                  f"{(best_113['examples_per_sec'] if best_113 else float('nan')):11.1f} "
                  f"{(r113 or float('nan')):6.2f}   {best_t['peak_rss_mib']:10.1f} "
                  f"{bp['peak_rss_mib']:8.1f} {mem:6.2f} {load:>5}", flush=True)
            print(torch_peers.settings_line(best_2, bp, best_113), flush=True)
            rec = {"name": name, "unit": "examples/s", "tandem": best_t["examples_per_sec"],
                   "peer": bp["examples_per_sec"], "ratio": round(speed, 3),
                   "peer_setting": win, "peer_version": pt2.version,
                   "peer_by_setting": {s: best_2[s]["examples_per_sec"] for s in settings},
                   "load": load}
            mrec = {"name": name + "_peak_rss", "unit": "MiB", "tandem": best_t["peak_rss_mib"],
                    "peer": bp["peak_rss_mib"], "ratio": round(mem, 3), "peer_setting": win,
                    "peer_version": pt2.version, "peer_import_rss": bp["import_rss_mib"]}
            if best_113:
                rec.update(torch113=best_113["examples_per_sec"], ratio_torch113=round(r113, 3))
                mrec.update(torch113=best_113["peak_rss_mib"],
                            ratio_torch113=round(best_t["peak_rss_mib"] / best_113["peak_rss_mib"], 3))
            records += [rec, mrec]
    print(f"best of {a.repeats} interleaved runs each; load = 1-minute load average at each "
          "repeat's start (2 cores: above 2 the figures are noisy)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
