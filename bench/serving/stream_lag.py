#!/usr/bin/env python3
"""bench/serving/stream_lag.py: how long after records arrive in a stream a served model has
learned from them (issue 17's "lag from a record arriving in the stream to a served model that
has learned from it").

  bench/serving/stream_lag.py [--bin build/bin] [--probes 8] [--records-per-file 2048] [--json out]

It runs the streaming CTR job (examples/ctr-streaming.yaml: 2 trainers following a directory,
rank 0 publishing every --publish-every steps) with `tandem run --serve`, so that tandem-serve
follows the published versions, and then, probe after probe, moves one file of records into the
stream (one rename: the file appears whole, at a known time t_arrive) and watches:

  t_consumed  every trainer's tandem_trainer_stream_records_total has counted the new records
              (the batches holding them are being trained);
  s_last      the trainers' step once they are idle again (no records left): the first step
              whose weights include every new record;
  t_served    tandem-serve's tandem_serve_model_step first reaches s_last (a version at or after
              that step is loaded and answering).

lag = t_served - t_arrive, split into read (t_consumed - t_arrive) and train + publish + load
(t_served - t_consumed). Probes are paced (the next file comes once the previous one is served),
so the figures are the pipeline's latency, not a queue that builds up. Every sample is a scrape
of /metrics every --scrape-ms; the lag is therefore exact to about that. The ports are read from
the processes the run started (/proc/PID/environ and the serve log): nothing is changed in the
binaries for this measurement. Prints each probe, p50 and max, and `uptime`; --json writes
{"name","unit","tandem"} records (no peer: nothing else here trains on a stream).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def scrape(port):
    """{metric name: summed value} of one /metrics page (labels summed away)."""
    out = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        for line in r.read().decode().splitlines():
            if not line or line[0] == "#":
                continue
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if m:
                try:
                    out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
                except ValueError:
                    pass
    return out


def children(pid):
    """Every descendant pid of `pid`."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        found += kids
        todo += kids
    return found


def environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return dict(kv.split("=", 1) for kv in f.read().decode(errors="replace").split("\0") if "=" in kv)
    except OSError:
        return {}


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def make_job(path, stream_dir, publish_every, workers):
    import yaml  # Debian's python3-yaml (scripts/install-deps.sh)
    job = yaml.safe_load(open(os.path.join(ROOT, "examples", "ctr-streaming.yaml")))
    s = job["spec"]
    job["metadata"]["name"] = "ctr-stream-lag"
    s["workers"] = {"count": workers}
    st = s["data"]["train"]["stream"]
    st["dir"] = stream_dir
    st["endMarker"] = "_END"
    st["pollSeconds"] = 0.2
    st["rollingEval"] = {"windowRecords": 4096, "intervalSteps": 1000}
    s["publish"] = {"everySteps": publish_every, "keep": 3}
    s["checkpoint"] = {"intervalSteps": 100000, "keep": 1}
    yaml.safe_dump(job, open(path, "w"), sort_keys=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--records-per-file", type=int, default=2048)
    ap.add_argument("--publish-every", type=int, default=1, help="spec.publish.everySteps")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scrape-ms", type=float, default=20)
    ap.add_argument("--timeout", type=float, default=120, help="seconds a probe may take")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="tandem-stream-lag-")
    pool, stream = os.path.join(work, "pool"), os.path.join(work, "stream")
    os.makedirs(stream)
    # Every file the run will see, generated up front (file 0 warms the job up).
    subprocess.run([os.path.join(a.bin, "tandem-ctr-stream-gen"), "--dir", pool, "--files", str(a.probes + 1),
                    "--records-per-file", str(a.records_per_file), "--interval-ms", "0"],
                   check=True, stdout=subprocess.DEVNULL)
    files = sorted(f for f in os.listdir(pool) if f.endswith(".svm"))
    assert len(files) == a.probes + 1, files
    job = os.path.join(work, "job.yaml")
    make_job(job, stream, a.publish_every, a.workers)
    os.rename(os.path.join(pool, files[0]), os.path.join(stream, files[0]))

    run_dir = os.path.join(work, "run")
    log = open(os.path.join(work, "run.log"), "w")
    run = subprocess.Popen([os.path.join(a.bin, "tandem"), "run", job, "--run-dir", run_dir, "--serve", "0"],
                           stdout=log, stderr=subprocess.STDOUT)
    probes = []
    try:
        # The trainers' metrics ports (their contract) and tandem-serve's port (its log).
        deadline = time.time() + 120
        trainers, serve_port = {}, None
        while time.time() < deadline and (len(trainers) < a.workers or serve_port is None):
            if run.poll() is not None:
                sys.exit(f"tandem run exited with {run.returncode}: {open(log.name).read()[-3000:]}")
            for pid in children(run.pid):
                cmd = cmdline(pid)
                if cmd and os.path.basename(cmd[0]) == "tandem-trainer":
                    env = environ(pid)
                    if "TANDEM_METRICS_PORT" in env:
                        trainers[env.get("TANDEM_RANK", "?")] = int(env["TANDEM_METRICS_PORT"])
            serve_log = os.path.join(run_dir, "logs", "serve.log")
            if serve_port is None and os.path.exists(serve_log):
                m = re.search(r"listening on port (\d+)", open(serve_log).read())
                if m:
                    serve_port = int(m.group(1))
            time.sleep(0.2)
        if len(trainers) < a.workers or serve_port is None:
            sys.exit(f"did not find the trainers' ({trainers}) and tandem-serve's ({serve_port}) ports")

        def records():
            return sum(scrape(p).get("tandem_trainer_stream_records_total", 0) for p in trainers.values())

        def steps():
            return max(scrape(p).get("tandem_trainer_steps_total", 0) for p in trainers.values())

        def served_step():
            try:
                return scrape(serve_port).get("tandem_serve_model_step", -1)
            except OSError:
                return -1

        def wait(cond, what):
            end = time.time() + a.timeout
            while time.time() < end:
                v = cond()
                if v:
                    return v
                time.sleep(a.scrape_ms / 1000)
            sys.exit(f"timed out waiting for {what}: {open(log.name).read()[-2000:]}")

        def idle_step(timeline=None):
            """The trainers' step once it has not moved for a second (they wait for records);
            the served step keeps being sampled into `timeline` meanwhile."""
            last, since = steps(), time.time()
            while time.time() - since < 1.0:
                time.sleep(a.scrape_ms / 1000)
                if timeline is not None:
                    timeline.append((time.time(), served_step()))
                s = steps()
                if s != last:
                    last, since = s, time.time()
            return int(last)

        expected = a.records_per_file  # every record of a file is some trainer's
        wait(lambda: records() >= expected, "the warm-up file to be read")
        s0 = idle_step()
        wait(lambda: served_step() >= s0, f"a served model at step {s0}")
        for i, name in enumerate(files[1:], 1):
            expected += a.records_per_file
            before = records()
            t_arrive = time.time()
            os.rename(os.path.join(pool, name), os.path.join(stream, name))
            timeline = []  # (time, served step)

            def consumed():
                timeline.append((time.time(), served_step()))
                return records() >= expected

            wait(consumed, f"file {name} to be read")
            t_consumed = time.time()
            s_last = idle_step(timeline)
            timeline.append((time.time(), served_step()))
            wait(lambda: timeline.append((time.time(), served_step())) or timeline[-1][1] >= s_last,
                 f"a served model at step {s_last}")
            t_served = next(t for t, s in timeline if s >= s_last)
            p = {"probe": i, "records": int(expected - before), "step": s_last,
                 "read_s": t_consumed - t_arrive, "train_publish_load_s": max(0.0, t_served - t_consumed),
                 "lag_s": t_served - t_arrive}
            probes.append(p)
            print(f"probe {i}: {p['records']} records, served at step {s_last}: lag {p['lag_s']:.3f} s "
                  f"(read {p['read_s']:.3f} s, train + publish + load {p['train_publish_load_s']:.3f} s)",
                  flush=True)
        open(os.path.join(stream, "_END"), "w").close()
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.terminate()
            try:
                run.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.kill()
        log.close()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder: {work}")

    lags = [p["lag_s"] for p in probes]
    load = open("/proc/loadavg").read().split()[:3]
    print(f"record -> served model lag over {len(lags)} probes: p50 {statistics.median(lags):.3f} s, "
          f"max {max(lags):.3f} s (publish every {a.publish_every} steps, {a.workers} trainers, "
          f"{a.records_per_file} records per file); load average {' '.join(load)}")
    if a.json:
        recs = [{"name": "stream_record_to_served_lag_p50", "unit": "s", "tandem": statistics.median(lags)},
                {"name": "stream_record_to_served_lag_max", "unit": "s", "tandem": max(lags)},
                {"name": "stream_read_p50", "unit": "s", "tandem": statistics.median(p["read_s"] for p in probes)},
                {"name": "stream_train_publish_load_p50", "unit": "s",
                 "tandem": statistics.median(p["train_publish_load_s"] for p in probes)}]
        json.dump({"records": recs, "probes": probes, "loadavg": load}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
