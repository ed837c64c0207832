#!/usr/bin/env python3
"""The fixed CPU cost of one sweep trial, without and with the decoded cache, side by side.

  bench/sweep-search/trial_fixed_cost.py [--repeats 5] [--tandem build/bin/tandem]

Runs `tandem run` on the trial TrainingJob of examples/sweep-fashion-mnist.yaml cut to 1 pass of
64 training and 64 test examples (so nearly all of its cost is what every trial pays whatever
its passes: starting the trainer and pserver processes, loading Fashion-MNIST, one evaluation),
alternately with TANDEM_DATA_CACHE=off (the trainer inflates the gzip files) and with a warm
decoded cache in a temporary folder (trainer/data/decoded_cache.h), and prints the CPU seconds of
all processes (getrusage of the children: tandem, trainer, pserver) of each run, the median of
each side and their ratio. Needs python3-yaml.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def cpu_of(cmd, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        print(r.stdout[-2000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(cmd)} exited {r.returncode}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tandem", default=os.path.join(ROOT, "build", "bin", "tandem"))
    args = p.parse_args()
    with open(os.path.join(ROOT, "examples", "sweep-fashion-mnist.yaml")) as f:
        sweep = yaml.safe_load(f)
    spec = json.loads(json.dumps(sweep["spec"]["template"]["spec"]))
    spec["passes"] = 1
    spec["data"]["train"]["limit"] = 64
    spec["data"]["test"]["limit"] = 64
    work = tempfile.mkdtemp(prefix="tandem-fixed-cost-")
    try:
        job = os.path.join(work, "trial.yaml")
        with open(job, "w") as f:
            yaml.safe_dump({"apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob",
                            "metadata": {"name": "fixed-cost", "namespace": "default"}, "spec": spec}, f)
        cache = os.path.join(work, "cache")
        sides = {"inflate": dict(os.environ, TANDEM_DATA_CACHE="off"),
                 "cached": dict(os.environ, TANDEM_DATA_CACHE=cache)}
        run = lambda env, i: cpu_of([args.tandem, "run", job, "--run-dir", os.path.join(work, f"run-{i}")], env)
        first = run(sides["cached"], "warm")  # writes the cache's entries
        print(f"first run with an empty cache (writes it): {first:.3f} CPU s", flush=True)
        times = {k: [] for k in sides}
        for i in range(args.repeats):
            for name, env in sides.items():
                times[name].append(run(env, f"{name}-{i}"))
                print(f"{name} {i}: {times[name][-1]:.3f} CPU s", flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"median CPU s of a 1-pass, 64-example trial: inflating {med['inflate']:.3f}, "
              f"decoded cache {med['cached']:.3f}: {med['inflate'] / med['cached']:.2f}x less with the cache "
              f"(saves {med['inflate'] - med['cached']:.3f} s per trial)")
        with open("/proc/loadavg") as f:
            print(f"load average at the end: {f.read().split()[0]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
