#!/usr/bin/env python3
"""Grid vs random vs TPE+ASHA on examples/sweep-fashion-mnist.yaml, at the same trial budget.

  bench/sweep-search/run.py [--seeds 1 2 3] [--train-limit 60000] [--test-limit 10000]
                            [--passes 9] [--parallelism 2]
                            [--searches grid random tpe+asha tpe-cost+asha tpe-eips+asha
                                        tpe-cost+asha+budget tpe-cost+asha3+budget
                                        tpe-cost+asha-b6+budget tpe-cost+asha-b9+budget
                                        tpe-mv-cost+asha tpe-mv-cost+asha+budget
                                        grid+sha random+sha tpe+sha tpe+sha+budget tpe-cost+sha
                                        tpe-cost+sha+budget]
                            [--budget-fraction 0.3333] [--budget-max-trials 27]
                            [--grid-cpu SEED=SECONDS ...] [--grid-from DIR]
                            [--out DIR] [--tandem build/bin/tandem] [--example SWEEP.yaml]

For each seed and each search it writes the example with the algorithm and early stopping set
(grid: the full 3x3x3 grid; random and tpe: maxTrials 27, the grid's size), the seed in spec.seed
and in the template's data.seed (so a seed changes the data order of every trial, grid included),
runs `tandem run` on it, and reads the run's sweep-summary.json. It prints one row per run and a
markdown table of the mean over seeds: the best test accuracy found, the CPU seconds of all trial
processes (getrusage of the children: what the search cost), the passes trained and the wall
time. tpe-cost+asha is TPE with algorithm.costAware on (its defaults: exponent 1, cost cooling);
tpe-eips+asha the same with cooling off (alpha stays 1); tpe-mv-* the multivariate TPE
(algorithm.multivariate); tpe+sha and tpe-cost+sha the TPE and the cost-aware TPE with
synchronous successive halving (earlyStopping.policy sha) instead of ASHA, grid+sha and
random+sha the same halving over the grid's 27 points and over 27 random ones. tpe-cost+asha+budget is tpe-cost+asha
with spec.budget.cpuSeconds set to --budget-fraction (1/3) of the grid's CPU seconds for the
same seed (so is every other *+budget search): measured by the grid run of this invocation (list grid first in --searches; it runs
first for each seed) or given by --grid-cpu; --budget-max-trials raises its maxTrials, so that the
CPU budget, not the trial count, ends it. Last, per seed, the
issue's target side by side with the grid (the peer): each TPE+ASHA search's best
against the grid's best and its CPU time as a fraction of the grid's (target: >= and <= 1/3).
ASHA's rungs are minPasses * reductionFactor^k below --passes (1, 3 with the default 9 passes:
printed first); with --passes 3 its only rung is pass 1.
Nothing is faked: a run that fails is reported as failed.
Needs python3-yaml. Measurements belong in docs/sweeps.md with the command, date and machine load.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

SEARCHES = [
    ("grid", {"name": "grid"}, {"policy": "none"}),
    ("random", {"name": "random"}, {"policy": "none"}),
    ("tpe+asha", {"name": "tpe", "startupTrials": 6}, {"policy": "asha", "minPasses": 1, "reductionFactor": 3}),
    # TPE with cost-aware acquisition at its documented defaults (exponent 1, cost cooling).
    ("tpe-cost+asha", {"name": "tpe", "startupTrials": 6, "costAware": {"enabled": True}},
     {"policy": "asha", "minPasses": 1, "reductionFactor": 3}),
    # The same without cost cooling: alpha stays 1 (Snoek et al.'s expected improvement per second).
    ("tpe-eips+asha", {"name": "tpe", "startupTrials": 6, "costAware": {"enabled": True, "cooling": False}},
     {"policy": "asha", "minPasses": 1, "reductionFactor": 3}),
    # Cost-aware TPE with a CPU budget of a fraction of the grid's CPU (spec.budget.cpuSeconds).
    ("tpe-cost+asha+budget", {"name": "tpe", "startupTrials": 6, "costAware": {"enabled": True}},
     {"policy": "asha", "minPasses": 1, "reductionFactor": 3}),
    # The budgeted cost-aware TPE with ASHA's first rung at pass 3 instead of 1 (rungs 3 and the last):
    # fewer, longer-judged trials, against successive halving's short-horizon bias.
    ("tpe-cost+asha3+budget", {"name": "tpe", "startupTrials": 6, "costAware": {"enabled": True}},
     {"policy": "asha", "minPasses": 3, "reductionFactor": 3}),
    # The budgeted cost-aware TPE with ASHA holding every promotion until 6 or 9 trials have a value
    # at its first rung (earlyStopping.bootstrapCount): no trial trains on on the strength of the
    # first two or three a rung has seen.
    ("tpe-cost+asha-b6+budget", {"name": "tpe", "startupTrials": 6, "costAware": {"enabled": True}},
     {"policy": "asha", "minPasses": 1, "reductionFactor": 3, "bootstrapCount": 6}),
    ("tpe-cost+asha-b9+budget", {"name": "tpe", "startupTrials": 6, "costAware": {"enabled": True}},
     {"policy": "asha", "minPasses": 1, "reductionFactor": 3, "bootstrapCount": 9}),
    # Multivariate TPE (one joint density over the parameters), cost-aware, with and without the budget.
    ("tpe-mv-cost+asha", {"name": "tpe", "startupTrials": 6, "multivariate": True, "costAware": {"enabled": True}},
     {"policy": "asha", "minPasses": 1, "reductionFactor": 3}),
    ("tpe-mv-cost+asha+budget", {"name": "tpe", "startupTrials": 6, "multivariate": True,
                                 "costAware": {"enabled": True}},
     {"policy": "asha", "minPasses": 1, "reductionFactor": 3}),
    # Cost-aware TPE with synchronous successive halving (earlyStopping.policy sha: every trial to
    # rung 1 before any promotion; a rung promotes once complete), without and with the budget.
    # Successive halving over samplers that do not learn: the grid's own 27 points, and random.
    ("grid+sha", {"name": "grid"}, {"policy": "sha", "minPasses": 1, "reductionFactor": 3}),
    ("random+sha", {"name": "random"}, {"policy": "sha", "minPasses": 1, "reductionFactor": 3}),
    ("tpe+sha", {"name": "tpe", "startupTrials": 6}, {"policy": "sha", "minPasses": 1, "reductionFactor": 3}),
    ("tpe+sha+budget", {"name": "tpe", "startupTrials": 6}, {"policy": "sha", "minPasses": 1, "reductionFactor": 3}),
    ("tpe-cost+sha", {"name": "tpe", "startupTrials": 6, "costAware": {"enabled": True}},
     {"policy": "sha", "minPasses": 1, "reductionFactor": 3}),
    ("tpe-cost+sha+budget", {"name": "tpe", "startupTrials": 6, "costAware": {"enabled": True}},
     {"policy": "sha", "minPasses": 1, "reductionFactor": 3}),
]
# The searches held against the grid for the target (the learning samplers with ASHA).
TARGETS = ["tpe+asha", "tpe-cost+asha", "tpe-eips+asha", "tpe-cost+asha+budget", "tpe-cost+asha3+budget",
           "tpe-cost+asha-b6+budget", "tpe-cost+asha-b9+budget",
           "tpe-mv-cost+asha", "tpe-mv-cost+asha+budget", "grid+sha", "random+sha", "tpe+sha", "tpe+sha+budget", "tpe-cost+sha",
           "tpe-cost+sha+budget"]


def manifest(base, search, algorithm, stopping, seed, args, budget=None):
    m = json.loads(json.dumps(base))
    spec = m["spec"]
    name = f"bench-{search.replace('+', '-')}-s{seed}"
    m["metadata"] = {"name": name, "namespace": "default"}
    spec["algorithm"] = algorithm
    spec["earlyStopping"] = stopping
    spec["seed"] = seed
    spec["maxTrials"] = 27
    spec["parallelism"] = args.parallelism
    t = spec["template"]["spec"]
    t["passes"] = args.passes
    t["data"]["seed"] = seed
    t["data"]["train"]["limit"] = args.train_limit
    t["data"]["test"]["limit"] = args.test_limit
    if budget is not None:
        spec["budget"] = {"cpuSeconds": budget}
        spec["maxTrials"] = args.budget_max_trials
    return name, m


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--searches", nargs="+", default=[s[0] for s in SEARCHES])
    p.add_argument("--train-limit", type=int, default=60000)
    p.add_argument("--test-limit", type=int, default=10000)
    p.add_argument("--passes", type=int, default=9)
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--out", default="runs/sweep-search-bench")
    p.add_argument("--tandem", default=os.path.join(ROOT, "build", "bin", "tandem"))
    p.add_argument("--budget-fraction", type=float, default=1 / 3,
                   help="tpe-cost+asha+budget: spec.budget.cpuSeconds as a fraction of the grid's CPU")
    p.add_argument("--budget-max-trials", type=int, default=27,
                   help="tpe-cost+asha+budget: its maxTrials (27: the grid's trial count too)")
    p.add_argument("--grid-cpu", nargs="+", default=[], metavar="SEED=SECONDS",
                   help="the grid's CPU seconds per seed, when the grid does not run in this invocation")
    p.add_argument("--grid-from", metavar="DIR",
                   help="take the grid's rows (best and CPU per seed) from an earlier run's --out DIR instead of "
                        "running it (its bench-grid-s<SEED>/sweep-summary.json; the same binaries' arithmetic)")
    p.add_argument("--example", default=os.path.join(ROOT, "examples", "sweep-fashion-mnist.yaml"),
                   help="the Sweep whose template, parameters and objective every search uses")
    args = p.parse_args()
    for g in args.grid_cpu:
        seed, _, cpu = g.partition("=")
        try:
            int(seed), float(cpu)
        except ValueError:
            p.error(f"--grid-cpu {g}: expected SEED=SECONDS, e.g. 1=159.9")
    with open(args.example) as f:
        base = yaml.safe_load(f)
    os.makedirs(args.out, exist_ok=True)
    for search, _, stopping in SEARCHES:
        if search in args.searches and stopping["policy"] in ("asha", "sha"):
            rungs, r = [], max(1, stopping["minPasses"])
            while r < args.passes:
                rungs.append(r)
                r *= stopping["reductionFactor"]
            print(f"{search}: rungs at passes {rungs}, the last pass {args.passes}", flush=True)
    rows = []
    if args.grid_from:
        for seed in args.seeds:
            path = os.path.join(args.grid_from, f"bench-grid-s{seed}", "sweep-summary.json")
            try:
                with open(path) as f:
                    s = json.load(f)
            except (OSError, ValueError) as e:
                p.error(f"--grid-from {args.grid_from}: seed {seed}: {e}")
            row = {"search": "grid", "seed": seed, "exit": 0, "phase": s.get("phase"),
                   "best": (s.get("bestTrial") or {}).get("objective"), "cpu_s": s.get("cpu_s"), "wall_s": None,
                   "passes": s.get("passesTrained"), "trials": len(s.get("trials", [])), "budget": None,
                   "message": f"from {path}", "stopped": (s.get("trialsByPhase") or {}).get("stopped"), "fc1": {}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for seed in args.seeds:
        for search, algorithm, stopping in SEARCHES:
            if search not in args.searches or (search == "grid" and args.grid_from):
                continue
            budget = None
            if search.endswith("+budget"):
                grid = [r["cpu_s"] for r in rows if r["search"] == "grid" and r["seed"] == seed and r["cpu_s"]]
                given = dict(g.split("=", 1) for g in args.grid_cpu if "=" in g)
                grid_cpu = grid[0] if grid else float(given[str(seed)]) if str(seed) in given else None
                if grid_cpu is None:
                    print(f"{search} seed {seed}: no grid CPU (run grid first, or give --grid-cpu {seed}=S); skipped",
                          file=sys.stderr)
                    continue
                budget = round(max(1.0, args.budget_fraction * grid_cpu), 1)
            name, m = manifest(base, search, algorithm, stopping, seed, args, budget)
            path = os.path.join(args.out, name + ".yaml")
            with open(path, "w") as f:
                yaml.safe_dump(m, f, sort_keys=False)
            run_dir = os.path.join(args.out, name)
            start = time.time()
            r = subprocess.run([args.tandem, "run", path, "--run-dir", run_dir], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            try:
                with open(os.path.join(run_dir, "sweep-summary.json")) as f:
                    s = json.load(f)
            except (OSError, ValueError):
                s = {}
            best = (s.get("bestTrial") or {}).get("objective")
            row = {"search": search, "seed": seed, "exit": r.returncode, "phase": s.get("phase"),
                   "best": best, "cpu_s": s.get("cpu_s"), "wall_s": round(time.time() - start, 1),
                   "passes": s.get("passesTrained"), "trials": len(s.get("trials", [])),
                   "budget": budget, "message": s.get("message"),
                   "stopped": (s.get("trialsByPhase") or {}).get("stopped"),
                   # How the trials spread over the hidden layer's width (the cost-setting
                   # parameter of the example): trials per fc1 value.
                   "fc1": {str(v): sum(1 for t in s.get("trials", []) if t.get("parameters", {}).get("fc1") == v)
                           for v in sorted({t.get("parameters", {}).get("fc1") for t in s.get("trials", [])}
                                           - {None})}}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if r.returncode != 0:
                print(r.stdout[-2000:], file=sys.stderr)
    print()
    print(f"| search | seeds | best test accuracy (mean; per seed) | CPU s (mean; per seed) | passes trained (mean; per seed) "
          f"| stopped early | wall s (mean) |")
    print("|---|---|---|---|---|---|---|")
    for search, _, _ in SEARCHES:
        rs = [r for r in rows if r["search"] == search and r["best"] is not None]
        if not rs:
            continue
        mean = lambda k: sum(r[k] for r in rs) / len(rs)
        per = lambda k, f: ", ".join(f.format(r[k]) for r in rs)
        print(f"| {search} | {len(rs)} | {mean('best'):.4f} ({per('best', '{:.4f}')}) | {mean('cpu_s'):.1f} "
              f"({per('cpu_s', '{:.1f}')}) | {mean('passes'):.0f} ({per('passes', '{}')}) | {per('stopped', '{}')} | "
              f"{sum(r['wall_s'] or 0 for r in rs) / len(rs):.0f} |")
    print()
    by = {(r["search"], r["seed"]): r for r in rows if r["best"] is not None}
    for seed in args.seeds:
        for target in TARGETS:
            g, t = by.get(("grid", seed)), by.get((target, seed))
            if g is None or t is None:
                continue
            ratio = t["cpu_s"] / g["cpu_s"]
            met = t["best"] >= g["best"] and ratio <= 1 / 3
            print(f"seed {seed}: {target} best {t['best']:.4f} vs grid {g['best']:.4f}, CPU {t['cpu_s']:.1f} s vs "
                  f"{g['cpu_s']:.1f} s = {ratio:.2f} of the grid's: target {'met' if met else 'not met'}")
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
