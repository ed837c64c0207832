#!/usr/bin/python3
"""bench/elastic-resize: what a resize costs an elastic job under `tandem run` (docs/elastic.md).

  bench/elastic-resize/run.py [--bin build/bin] [--seeds 1,2] [--limit 60000] [--passes 3]
                              [--json out.json]

For each data seed (the shuffle order: the run-to-run noise), two runs of a Fashion-MNIST MLP
(784-128-10, momentum 0.05, batch 32 per worker, spec.elastic.policy constantGlobalBatch, global
batch 64), one after the other:
- fixed: 2 workers from start to end;
- single: 1 worker with batch 64: the same examples in the same global batches, summed in
  another order (what a resize changes too): its distance to `fixed` is the rounding noise;
- resized: 2 workers, `tandem resize RUN 4` once rank 0 has done --grow-at steps, then
  `tandem resize RUN 3` --shrink-after steps later.
Reported per resize: the time from `tandem resize` to the `resized` event (the new trainers'
start, rendezvous and the state broadcast included), the survivors' pause (the event's
pauseSeconds: from the step boundary to training again), the steps lost (the event's lostSteps)
and the pause in steps (pause / the fixed run's mean step time). Per seed: the final test accuracy
of every run; two noises: the spread of the fixed runs' accuracies over the seeds, and the
largest |single - fixed| (same examples, another summation order).
There is no peer run: TorchElastic would restart every worker at each membership change
(rendezvous, then reload from a checkpoint), which this machine's PyTorch venv could run but this
runner does not yet; records carry "peer": null and "ratio": null.
--json PATH writes {"name","unit","tandem","peer","ratio"} records.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

JOB = """apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {{name: elastic-bench, namespace: default}}
spec:
  workers: {{count: 2, minCount: 1, maxCount: 4}}
  elastic: {{policy: constantGlobalBatch}}
  trainer: {{threads: 1}}
  passes: {passes}
  data:
    train: {{format: idx, limit: {limit}}}
    test: {{format: idx}}
    batchSize: 32
    seed: {seed}
  model:
    inputs:
      - {{name: image, source: features, shape: [1, 28, 28]}}
      - {{name: label, source: labels}}
    layers:
      - {{name: fc1, type: fc, input: image, size: 128}}
      - {{name: relu1, type: relu, input: fc1}}
      - {{name: fc2, type: fc, input: relu1, size: 10}}
      - {{name: cost, type: softmax_cross_entropy, inputs: [fc2, label]}}
  optimizer: {{type: momentum, learningRate: 0.05, momentum: 0.9}}
  checkpoint: {{intervalSteps: 100, keep: 2}}
"""


def steps_done(run_dir):
    try:
        with open(os.path.join(run_dir, "checkpoints", "trainer-0", "last-step"), "rb") as f:
            data = f.read()
        return struct.unpack("<q", data)[0] if len(data) == 8 else 0
    except OSError:
        return 0


def events(run_dir, kind):
    out = []
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") == kind:
                    out.append(e)
    except OSError:
        pass
    return out


def start(bin_dir, manifest, run_dir):
    return subprocess.Popen([os.path.join(bin_dir, "tandem"), "run", manifest, "--run-dir", run_dir,
                             "--bin-dir", bin_dir], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def summary(run_dir):
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


def wait_until(proc, cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def resize(bin_dir, run_dir, n):
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(bin_dir, "tandem"), "resize", run_dir, str(n)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("tandem resize %d failed: %s" % (n, r.stderr))
    return t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "bin"))
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--limit", type=int, default=60000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--grow-at", type=int, default=50)
    ap.add_argument("--shrink-after", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="elastic-bench-")
    rows, resizes = [], []
    for seed in [int(s) for s in args.seeds.split(",")]:
        manifest = os.path.join(work, "job-%d.yaml" % seed)
        with open(manifest, "w") as f:
            f.write(JOB.format(passes=args.passes, limit=args.limit, seed=seed))
        fixed_dir = os.path.join(work, "fixed-%d" % seed)
        p = start(args.bin, manifest, fixed_dir)
        if p.wait(timeout=3600) != 0:
            sys.exit("fixed run failed: see %s" % fixed_dir)
        fixed = summary(fixed_dir)
        step_s = fixed["wall_s"] / max(1, fixed["steps"])
        single_manifest = os.path.join(work, "single-%d.yaml" % seed)
        with open(single_manifest, "w") as f:
            f.write(JOB.format(passes=args.passes, limit=args.limit, seed=seed)
                    .replace("count: 2,", "count: 1,").replace("batchSize: 32", "batchSize: 64"))
        single_dir = os.path.join(work, "single-%d" % seed)
        p = start(args.bin, single_manifest, single_dir)
        if p.wait(timeout=3600) != 0:
            sys.exit("single run failed: see %s" % single_dir)
        single = summary(single_dir)

        run_dir = os.path.join(work, "resized-%d" % seed)
        p = start(args.bin, manifest, run_dir)
        if not wait_until(p, lambda: steps_done(run_dir) >= args.grow_at, 600):
            sys.exit("the resized run never reached step %d" % args.grow_at)
        marks = []
        for target, n_events in ((4, 1), (3, 2)):
            if target == 3:
                at = steps_done(run_dir)
                wait_until(p, lambda: steps_done(run_dir) >= at + args.shrink_after, 600)
            t0 = resize(args.bin, run_dir, target)
            if not wait_until(p, lambda: len(events(run_dir, "resized")) >= n_events, 600):
                sys.exit("no resized event for %d workers" % target)
            marks.append(time.monotonic() - t0)
        if p.wait(timeout=3600) != 0:
            sys.exit("resized run failed: see %s" % run_dir)
        resized = summary(run_dir)
        for e, took in zip(events(run_dir, "resized"), marks):
            resizes.append({"seed": seed, "from": e["from"], "to": e["to"], "step": e["step"],
                            "request_to_resized_s": took, "pause_s": e["pauseSeconds"],
                            "lost_steps": e["lostSteps"], "pause_in_steps": e["pauseSeconds"] / step_s})
        rows.append({"seed": seed, "fixed_accuracy": fixed["test_accuracy"],
                     "single_accuracy": single["test_accuracy"],
                     "resized_accuracy": resized["test_accuracy"], "fixed_wall_s": fixed["wall_s"],
                     "resized_wall_s": resized["wall_s"], "steps": resized["steps"],
                     "fixed_steps": fixed["steps"], "step_s": step_s})
    print("load average: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    print("%-6s %-10s %-10s %-12s %-14s %-14s %-10s" % ("seed", "fixed acc", "single acc",
                                                       "resized acc", "resized-fixed",
                                                       "single-fixed", "steps"))
    for r in rows:
        print("%-6d %-10.4f %-10.4f %-12.4f %+-14.4f %+-14.4f %d/%d" % (
            r["seed"], r["fixed_accuracy"], r["single_accuracy"], r["resized_accuracy"],
            r["resized_accuracy"] - r["fixed_accuracy"], r["single_accuracy"] - r["fixed_accuracy"],
            r["steps"], r["fixed_steps"]))
    fixed_accs = [r["fixed_accuracy"] for r in rows]
    noise = max(fixed_accs) - min(fixed_accs) if len(fixed_accs) > 1 else float("nan")
    rounding = max(abs(r["single_accuracy"] - r["fixed_accuracy"]) for r in rows)
    print("run-to-run noise: spread of the fixed runs over seeds %.4f; largest |single - fixed| %.4f"
          % (noise, rounding))
    print("%-6s %-8s %-6s %-22s %-10s %-6s %-8s" % ("seed", "resize", "step", "request->resized s",
                                                    "pause s", "lost", "pause/steps"))
    for z in resizes:
        print("%-6d %d->%-5d %-6d %-22.2f %-10.3f %-6d %-8.1f" % (
            z["seed"], z["from"], z["to"], z["step"], z["request_to_resized_s"], z["pause_s"],
            z["lost_steps"], z["pause_in_steps"]))
    if args.json:
        records = []
        for z in resizes:
            name = "resize_%d_to_%d_seed%d" % (z["from"], z["to"], z["seed"])
            records.append({"name": name + "_request_to_resized", "unit": "s",
                            "tandem": z["request_to_resized_s"], "peer": None, "ratio": None})
            records.append({"name": name + "_pause", "unit": "s", "tandem": z["pause_s"],
                            "peer": None, "ratio": None})
            records.append({"name": name + "_lost_steps", "unit": "steps",
                            "tandem": z["lost_steps"], "peer": None, "ratio": None})
        for r in rows:
            records.append({"name": "accuracy_resized_minus_fixed_seed%d" % r["seed"], "unit": "accuracy",
                            "tandem": r["resized_accuracy"] - r["fixed_accuracy"], "peer": None,
                            "ratio": None})
        records.append({"name": "accuracy_noise_fixed_runs", "unit": "accuracy", "tandem": noise,
                        "peer": None, "ratio": None})
        records.append({"name": "accuracy_noise_single_vs_fixed", "unit": "accuracy",
                        "tandem": rounding, "peer": None, "ratio": None})
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
