#!/usr/bin/python3
"""bench/time-to-accuracy: the whole job, end to end. Tandem's `tandem run` of a manifest against
the same model trained by `torchrun --nproc-per-node 2` with DistributedDataParallel over gloo
(PyTorch 2.x, pinned), same global batch, optimizer, schedule and evaluation, alternating runs:

  bench/time-to-accuracy/run.py [--bin build/bin] [--jobs cnn,ctr] [--repeats 1] [--json out.json]

cnn: examples/fashion-mnist.yaml (the README's main job: seed CNN, 2 workers of 1 thread, batch
     64 each, momentum SGD 0.02 cosine, 2 passes); target test accuracy --target-accuracy (0.89).
ctr: examples/ctr-auc.yaml (26 hashed fields, one 1,451,594 x 16 table, MLP 416-256-128-1,
     Adagrad 0.05, 1 pass; Tandem keeps the table on its pservers, PyTorch replicates it and
     all-reduces sparse gradients); target test AUC = the generator's best AUC on the test log
     minus --auc-gap (0.02).

Both sides evaluate the whole test set at the end of every pass and nowhere else, so "time to
target" is the wall time from launching the command to the end of the first evaluation at or
above the target (the runner stamps each pass line as it appears: Tandem's rank-0 trainer log,
PyTorch's rank-0 stdout), or "not reached" within the job's passes; "total" is the command's
whole wall time. Both include process start-up and data loading.
ratio = Tandem / PyTorch wall time (lower is better; the issue's target is <= 0.6).
--json PATH writes {"name","unit","tandem","peer","ratio"} records: <job>_time_to_target_s,
<job>_wall_s (unit s) and <job>_final_accuracy / <job>_final_auc (ratio = Tandem / PyTorch).
--smoke runs tiny versions (a few hundred examples) only to check that everything runs.
"""
import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "peers"))
import torch_peers  # noqa: E402

PASS_RE = re.compile(r"pass (\d+) done: .*test_accuracy ([0-9.na]+)(?: test_auc ([0-9.na]+))?")


class Stamped:
    """Pass results of one run as (seconds since launch, pass, metric) tuples."""

    def __init__(self):
        self.passes = []
        self.wall = None


def run_tandem(bin_dir, manifest, metric, timeout):
    run_dir = tempfile.mkdtemp(prefix="tta-tandem-")
    log = os.path.join(run_dir, "logs", "worker-0-trainer.log")
    cmd = [os.path.join(bin_dir, "tandem"), "run", manifest, "--run-dir", run_dir,
           "--bin-dir", bin_dir]
    out = Stamped()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    captured = []
    reader = threading.Thread(target=lambda: captured.extend(proc.stdout), daemon=True)
    reader.start()
    seen, pos = set(), 0
    while True:  # poll rank 0's log for "pass N done" lines; 0.1 s resolution
        done = proc.poll() is not None
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                f.seek(pos)
                chunk = f.read()
            lines = chunk.split("\n")
            pos += len(chunk) - len(lines[-1])
            now = time.monotonic() - t0
            for line in lines[:-1]:
                m = PASS_RE.search(line)
                if m and int(m.group(1)) not in seen:
                    seen.add(int(m.group(1)))
                    value = m.group(3) if metric == "auc" else m.group(2)
                    out.passes.append((now, int(m.group(1)), float(value)))
        if done:
            break
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise RuntimeError(f"{' '.join(cmd)}: no end after {timeout} s")
        time.sleep(0.1)
    out.wall = time.monotonic() - t0
    reader.join(5)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{''.join(captured)[-3000:]}")
    subprocess.run(["rm", "-rf", run_dir])
    return out


def run_torch(peer, script, args, metric, timeout):
    torchrun = os.path.join(os.path.dirname(peer.python), "torchrun")
    # --standalone: a rendezvous on a free loopback port; 1 thread per rank, as Tandem's workers.
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", script] + args
    out = Stamped()
    settings = {}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=peer.env(1))
    errors = []
    err_reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    err_reader.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    for line in proc.stdout:
        now = time.monotonic() - t0
        line = line.strip()
        if not line.startswith("{"):
            continue
        ev = json.loads(line)
        if ev.get("event") == "pass":
            out.passes.append((now, ev["pass"], ev["test_" + metric]))
        elif ev.get("event") == "settings":
            settings = ev
    proc.wait()
    timer.cancel()
    out.wall = time.monotonic() - t0
    err_reader.join(5)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{''.join(errors)[-3000:]}")
    out.settings = settings
    return out


def first_reaching(stamped, target):
    for t, _, v in stamped.passes:
        if v >= target:
            return t
    return None


def fmt(x, spec=".1f"):
    return "not reached" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin"))
    ap.add_argument("--jobs", default="cnn,ctr")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--target-accuracy", type=float, default=0.89)
    ap.add_argument("--auc-gap", type=float, default=0.02)
    ap.add_argument("--peer-setting", default="eager", choices=["eager", "channels_last", "compile"],
                    help="the PyTorch CNN's setting (bench/training-vs-pytorch reports which wins)")
    ap.add_argument("--passes", type=int, help="override spec.passes on both sides")
    ap.add_argument("--smoke", action="store_true", help="tiny data: checks that it runs, no figures")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json")
    torch_peers.add_args(ap, torch113_default=False)
    a = ap.parse_args()
    peer = torch_peers.resolve(a)[0]
    tmp = tempfile.mkdtemp(prefix="tta-")
    records, failures = [], []
    print(f"peer: {peer.describe()}; torchrun --nproc-per-node 2, DDP over gloo, 1 thread per rank")
    print("tandem: tandem run (2 trainers, plus 2 pservers for a job with tables on them; 1 thread each, OMP_WAIT_POLICY=passive)")
    for job in a.jobs.split(","):
        if job == "cnn":
            manifest = yaml.safe_load(open(os.path.join(REPO, "examples", "fashion-mnist.yaml")))
            metric, target = "accuracy", a.target_accuracy
            spec = manifest["spec"]
            if a.smoke:
                spec["data"]["train"]["limit"] = 512
                spec["data"]["test"]["limit"] = 256
            peer_script = os.path.join(HERE, "pytorch_ddp_cnn.py")
            o = spec["optimizer"]
            peer_args = ["--lr", str(o["learningRate"]), "--batch", str(spec["data"]["batchSize"]),
                         "--seed", str(spec["data"].get("seed", 1))]
            if a.smoke:
                peer_args += ["--train-limit", "512", "--test-limit", "256"]
            if a.peer_setting != "eager":
                peer_args.append("--" + a.peer_setting.replace("_", "-"))
        elif job == "ctr":
            manifest = yaml.safe_load(open(os.path.join(REPO, "examples", "ctr-auc.yaml")))
            metric = "auc"
            spec = manifest["spec"]
            tr, te = spec["data"]["train"], spec["data"]["test"]
            if a.smoke:
                tr["examples"], te["examples"] = 4000, 2000
            gen = os.path.join(a.bin, "tandem-ctr-gen")
            common = ["--fields", str(tr["numFields"]), "--zipf", str(tr["zipf"]),
                      "--seed", str(tr["seed"])]
            subprocess.run([gen, "--examples", str(tr["examples"]), "--out",
                            os.path.join(tmp, "train")] + common, check=True,
                           stdout=subprocess.DEVNULL)
            g = subprocess.run([gen, "--examples", str(te["examples"]), "--test", "--out",
                                os.path.join(tmp, "test")] + common, check=True,
                               capture_output=True, text=True)
            best_auc = json.loads(g.stdout.strip().splitlines()[-1])["best_auc"]
            target = best_auc - a.auc_gap
            print(f"ctr: the generator's best test AUC {best_auc:.4f}; target {target:.4f}")
            peer_script = os.path.join(HERE, "pytorch_ddp_ctr.py")
            peer_args = ["--train", os.path.join(tmp, "train"), "--test", os.path.join(tmp, "test"),
                         "--lr", str(spec["optimizer"]["learningRate"]),
                         "--batch", str(spec["data"]["batchSize"])]
        else:
            sys.exit(f"--jobs: unknown job {job!r} (known: cnn, ctr)")
        if a.passes:
            spec["passes"] = a.passes
        passes = spec.get("passes", 1)
        peer_args += ["--passes", str(passes)]
        manifest_path = os.path.join(tmp, f"{job}.yaml")
        with open(manifest_path, "w") as f:
            yaml.safe_dump(manifest, f)
        runs_t, runs_p = [], []
        for r in range(a.repeats):  # alternate, so both see the same machine load
            load = torch_peers.load_now()
            try:
                runs_t.append(run_tandem(a.bin, manifest_path, metric, a.timeout))
                runs_p.append(run_torch(peer, peer_script, peer_args, metric, a.timeout))
            except RuntimeError as e:  # report, and go on with the next job
                failures.append(f"{job} run {r + 1}: {e}")
                print(f"{job} run {r + 1} FAILED: {str(e)[-2000:]}", file=sys.stderr, flush=True)
                break
            for name, s in (("tandem", runs_t[-1]), ("pytorch", runs_p[-1])):
                per_pass = ", ".join(f"pass {p}: {v:.4f} at {t:.1f} s" for t, p, v in s.passes)
                print(f"{job} run {r + 1} {name:8} wall {s.wall:7.1f} s  {per_pass}  "
                      f"(load at start {load:.1f})", flush=True)
        if len(runs_t) != a.repeats or len(runs_p) != a.repeats:
            continue
        if not runs_t[-1].passes or not runs_p[-1].passes:
            failures.append(f"{job}: a side printed no pass result")
            continue
        # Best (shortest) of the repeats for each side, as every other benchmark here.
        bt = min(runs_t, key=lambda s: s.wall)
        bp = min(runs_p, key=lambda s: s.wall)
        tt, tp = first_reaching(bt, target), first_reaching(bp, target)
        ft, fp = bt.passes[-1][2], bp.passes[-1][2]
        print(f"{job}: settings {json.dumps(bp.settings)}")
        print(f"{job:4} {'':16} {'tandem':>12} {'pytorch':>12} {'ratio':>6}")
        ratio_t = None if tt is None or tp is None else tt / tp
        print(f"{job:4} {'time to ' + format(target, '.4f'):16} {fmt(tt):>12} {fmt(tp):>12} "
              f"{fmt(ratio_t, '.2f'):>6}")
        print(f"{job:4} {'wall':16} {bt.wall:12.1f} {bp.wall:12.1f} {bt.wall / bp.wall:6.2f}")
        print(f"{job:4} {'final ' + metric:16} {ft:12.4f} {fp:12.4f} {ft / fp:6.3f}  "
              f"(after {passes} passes)", flush=True)
        records += [
            {"name": f"{job}_time_to_target_s", "unit": "s", "tandem": tt, "peer": tp,
             "ratio": None if ratio_t is None else round(ratio_t, 3), "target": target},
            {"name": f"{job}_wall_s", "unit": "s", "tandem": round(bt.wall, 2),
             "peer": round(bp.wall, 2), "ratio": round(bt.wall / bp.wall, 3)},
            {"name": f"{job}_final_{metric}", "unit": metric, "tandem": ft, "peer": fp,
             "ratio": round(ft / fp, 4), "passes": passes}]
        if a.json:  # after every job, so a later failure keeps what was measured
            with open(a.json, "w") as f:
                json.dump(records, f, indent=1)
    subprocess.run(["rm", "-rf", tmp])
    if a.smoke:
        print("smoke run: tiny data, the figures mean nothing")
    if failures:
        print("failed:\n  " + "\n  ".join(f.splitlines()[0] for f in failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
