#!/usr/bin/env python3
"""Every Grafana panel query and alert expression, checked against a real Prometheus.

Starts, all on loopback (127.0.0.1; the Sweep trial's stand-in trainer on 127.0.0.2):
  * tandem-fake-apiserver with our CRDs, two Queues and a Node, and the real tandem-operator
    against it; the test then applies TrainingJobs so that the operator admits, preempts, leaves
    one waiting, sees a gang partly running and restarts one (every operator series exists); then
    a Sweep with spec.budget.cpuSeconds whose one trial runs (its rank 0's /metrics, a stand-in on
    127.0.0.2 serving tandem_trainer_test_* gauges, gives it a value of the objective) until the
    budget stops it (every tandem_operator_sweep_* series exists, the stopped counter's
    policy="budget" included);
  * a real `tandem run` of tests/charts/testdata/observability-job.yaml (2 trainers, 2 pservers:
    sparse rows through the pservers, dense gradients over the ring, checkpoints);
  * Debian's prometheus scraping the operator and every trainer and pserver (found in /proc by
    their TANDEM_* environment, written to a file_sd file with the labels the chart's PodMonitor
    sets: namespace, tandem_job, rank, role), every second, with the chart's rules loaded.
Then it runs every panel query of charts/tandem/dashboards/*.json (variables set to match all,
$__rate_interval to 5s) at one instant while everything ran, and every variable's label_values,
and requires each to parse and return at least one series. The DCGM panels are the exception:
no GPU exporter runs here, so they must parse and return nothing. Each alert and recording-rule
expression must parse. The operator's /metrics, once the Sweep ran, must pass `promtool check
metrics`. On success it leaves the run folder (with report.html) in
$TANDEM_BINARY_DIR/tests/charts/observability-run for the browser test.
"""
import glob
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import yaml

SRC = os.environ.get("TANDEM_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("TANDEM_BIN_DIR") or os.path.join(SRC, "build", "bin")
OUT = os.path.join(os.environ.get("TANDEM_BINARY_DIR") or os.path.join(SRC, "build"), "tests", "charts")
RATE = "5s"
JOB = "observability"

procs = []


def free_port():
    """One free port, by the project's one policy (scripts/tools/free-ports.py)."""
    return int(subprocess.check_output([os.path.join(SRC, "scripts", "tools", "free-ports.py"), "1"], text=True))


def start(argv, log, **kw):
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True, **kw)
    procs.append(p)
    return p


def stop_all():
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def eventually(fn, what, timeout=60, every=0.25):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # noqa: BLE001 - retried until the deadline
            pass
        time.sleep(every)
    raise SystemExit(f"FAIL: timed out waiting for {what}")


def kubectl(kubeconfig, *args, stdin=None):
    r = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: kubectl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def prom(base, path, **params):
    q = urllib.parse.urlencode(params, doseq=True)
    return json.loads(http_get(f"{base}{path}?{q}", timeout=30))


def workers(job, with_pid=False):
    """[(role, rank, metrics port)] of the live tandem-trainer/tandem-pserver processes of `job`."""
    found = []
    for env_path in glob.glob("/proc/[0-9]*/environ"):
        try:
            env = dict(kv.split("=", 1) for kv in open(env_path, "rb").read().decode(errors="replace").split("\0") if "=" in kv)
            exe = os.path.basename(os.readlink(env_path.replace("environ", "exe")))
        except OSError:
            continue
        if env.get("TANDEM_JOB_NAME") != job or "TANDEM_METRICS_PORT" not in env:
            continue
        role = {"tandem-trainer": "trainer", "tandem-pserver": "pserver"}.get(exe)
        if role:
            found.append((role, env.get("TANDEM_RANK", "0"), int(env["TANDEM_METRICS_PORT"]))
                         + ((int(env_path.split("/")[2]),) if with_pid else ()))
    return sorted(set(found))


def job_manifest(name, queue, cpu, count=2, priority=None):
    with open(os.path.join(SRC, "tests/operator/testing/testdata/trainingjob.yaml")) as f:
        j = yaml.safe_load(f)
    j["metadata"] = {"name": name, "namespace": "default"}
    j["spec"]["queue"] = queue
    j["spec"]["workers"] = {"count": count, "minCount": count, "maxCount": count}
    j["spec"]["trainer"]["resources"] = {"requests": {"cpu": cpu, "memory": "1Gi"}}
    j["spec"]["pserver"]["resources"] = {"requests": {"cpu": "500m", "memory": "512Mi"}}
    if priority is not None:
        j["spec"]["priority"] = priority
    return yaml.safe_dump(j)


SWEEP = "obs-sweep"
TRIAL = SWEEP + "-0"


def sweep_manifest():
    """A Sweep of one trial at a time in queue team (within its guarantee, beside job-c), with a CPU
    budget of 3 CPU seconds: the trial's one worker requests 500m, so the budget stops it after
    about 6 seconds of running."""
    with open(os.path.join(SRC, "tests/operator/testing/testdata/trainingjob.yaml")) as f:
        j = yaml.safe_load(f)
    spec = j["spec"]
    spec["queue"] = "team"
    spec["workers"] = {"count": 1, "minCount": 1, "maxCount": 1}
    spec["trainer"]["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"}}
    spec["pserver"]["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}}
    return yaml.safe_dump({
        "apiVersion": "tandem.dev/v1alpha1", "kind": "Sweep",
        "metadata": {"name": SWEEP, "namespace": "default"},
        "spec": {"template": {"spec": spec},
                 "parameters": [{"name": "lr", "path": "spec.optimizer.learningRate", "type": "float",
                                 "min": 0.01, "max": 0.5, "scale": "log"}],
                 "objective": {"metric": "test_accuracy"}, "algorithm": {"name": "random"},
                 "earlyStopping": {"policy": "none"}, "parallelism": 1, "maxTrials": 2, "seed": 1,
                 "budget": {"cpuSeconds": 3}}})


def serve_trial_metrics(port):
    """The trial's rank-0 trainer as the operator's progress scrape sees it: its tandem_trainer_*
    gauges after one pass (test accuracy 0.8), on 127.0.0.2 (the trial pod's IP here), so that
    job-a's rank 0 on 127.0.0.1 stays unreachable."""
    body = "".join(f'{name}{{job="{TRIAL}"}} {v}\n' for name, v in (
        ("tandem_trainer_steps_total", 100), ("tandem_trainer_pass", 1), ("tandem_trainer_test_pass", 1),
        ("tandem_trainer_test_accuracy", 0.8), ("tandem_trainer_test_loss", 0.5))).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server interface
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def sweep_field(kubeconfig, path):
    s = json.loads(kubectl(kubeconfig, "get", "sweep", SWEEP, "-n", "default", "-o", "json"))
    for key in path.split("."):
        s = s.get(key, {}) if isinstance(s, dict) else {}
    return s


def phase(kubeconfig, name):
    out = kubectl(kubeconfig, "get", "trainingjob", name, "-n", "default", "-o", "json")
    return json.loads(out).get("status", {}).get("phase", "")


def panel_queries():
    out = []
    for f in sorted(glob.glob(os.path.join(SRC, "charts/tandem/dashboards/*.json"))):
        d = json.load(open(f))
        for p in d["panels"]:
            for t in p.get("targets", []):
                out.append((os.path.basename(f), p["title"], t["expr"]))
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                out.append((os.path.basename(f), f"variable {v['name']}", v["query"]["query"]))
    return out


def substitute(expr):
    for var in ("namespace", "job", "rank", "queue", "sweep"):
        expr = expr.replace("$" + var, ".*")
    return expr.replace("$__rate_interval", RATE)


def use_built_kubectl():
    """Puts the kubectl built with the control plane (scripts/tools/build-k8s.sh, cached; run by
    scripts/test.sh before ctest) first on PATH: Debian's is too old, and may not be there at all."""
    r = subprocess.run([os.path.join(SRC, "scripts/tools/build-k8s.sh")], capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines or not os.access(os.path.join(lines[-1], "kubectl"), os.X_OK):
        raise SystemExit(f"FAIL: no kubectl from scripts/tools/build-k8s.sh: {r.stderr.strip()[-500:]}")
    os.environ["PATH"] = lines[-1] + os.pathsep + os.environ.get("PATH", "")


def main():
    use_built_kubectl()
    for tool in ("prometheus", "promtool", "kubectl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"FAIL: {tool} is not installed (scripts/install-deps.sh installs it)")
    work = tempfile.mkdtemp(prefix="tandem-observability-")
    os.makedirs(OUT, exist_ok=True)
    try:
        return run(work)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


def run(work):
    t_start = time.time()
    # 1. API server stand-in, CRDs, queues, node; the operator.
    kubeconfig = os.path.join(work, "kubeconfig")
    start([f"{BIN}/tandem-fake-apiserver", "--port", "0", "--port-file", f"{work}/api-port",
           "--kubeconfig-out", kubeconfig], f"{work}/apiserver.log")
    eventually(lambda: os.path.exists(kubeconfig) and os.path.getsize(f"{work}/api-port") > 0, "the API server")
    kubectl(kubeconfig, "apply", "-f", os.path.join(SRC, "crds"))
    kubectl(kubeconfig, "apply", "-f", os.path.join(SRC, "tests/charts/testdata/operator-scenario.yaml"))
    op_port, trainer_metrics_port = free_port(), free_port()
    start([f"{BIN}/tandem-operator", "--kubeconfig", kubeconfig, "--metrics-host", "127.0.0.1",
           "--metrics-port", str(op_port), "--identity", "op-1", "--schedule-interval", "0.5",
           "--progress-interval", "1", "--trainer-metrics-port", str(trainer_metrics_port)], f"{work}/operator.log")
    eventually(lambda: "tandem_operator_leader 1" in http_get(f"http://127.0.0.1:{op_port}/metrics"), "the operator to lead")

    # 2. Prometheus: the operator (honor_labels, as the chart's ServiceMonitor) and the workers.
    sd = os.path.join(work, "workers.json")
    json.dump([], open(sd, "w"))
    shutil.copy(os.path.join(SRC, "charts/tandem/files/alerts.yaml"), os.path.join(work, "alerts.yaml"))
    prom_port = free_port()
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yaml"],
            "scrape_configs": [
                {"job_name": "tandem-operator", "honor_labels": True,
                 "static_configs": [{"targets": [f"127.0.0.1:{op_port}"], "labels": {"pod": "op-1"}}]},
                {"job_name": "tandem-workers", "file_sd_configs": [{"files": [sd], "refresh_interval": "1s"}]},
            ]}, f)
    start(["prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/tsdb",
           f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=1h"],
          f"{work}/prometheus.log", cwd=work)
    base = f"http://127.0.0.1:{prom_port}"
    eventually(lambda: http_get(f"{base}/-/ready").strip() != "", "Prometheus to be ready")

    # 3. The operator scenario: admit a and b (default queue, borrowing), then c in team reclaims its
    # guarantee (preempting one of them), d does not fit (waits), one of a's pods runs, one fails.
    kubectl(kubeconfig, "apply", "-f", "-", stdin=job_manifest("job-a", "default", "1"))
    kubectl(kubeconfig, "apply", "-f", "-", stdin=job_manifest("job-b", "default", "1"))
    eventually(lambda: phase(kubeconfig, "job-a") == "Admitted" and phase(kubeconfig, "job-b") == "Admitted", "jobs a and b admitted")
    eventually(lambda: len(json.loads(kubectl(kubeconfig, "get", "pods", "-n", "default", "-l", "tandem.dev/job=job-a",
                                              "-o", "json"))["items"]) == 2, "job-a's worker pods")
    # The children the operator built for a job pass the Kubernetes schemas (its NetworkPolicy,
    # pods, Service, ConfigMap, Secret, claim), and its pods the restricted Pod Security level.
    children = os.path.join(work, "children.yaml")
    with open(children, "w") as f:
        for kind in ("networkpolicy", "pods", "service", "configmap", "secret", "pvc"):
            items = json.loads(kubectl(kubeconfig, "get", kind, "-n", "default", "-l", "tandem.dev/job=job-a", "-o", "json"))["items"]
            if not items:
                raise SystemExit(f"FAIL: the operator created no {kind} for job-a")
            for it in items:
                it.pop("status", None)
                it["metadata"] = {key: it["metadata"][key] for key in ("name", "namespace", "labels", "annotations", "ownerReferences") if key in it["metadata"]}
                f.write("---\n" + yaml.safe_dump(it))
    openapi = subprocess.run([os.path.join(SRC, "scripts/tools/k8s-openapi.sh")], capture_output=True, text=True, check=True).stdout.strip()
    v = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "scripts/tools/validate-k8s.py"), "--openapi", openapi,
                        "--restricted", children], capture_output=True, text=True)
    print(v.stdout + v.stderr, end="")
    if v.returncode != 0:
        raise SystemExit("FAIL: the operator's children of job-a do not pass the Kubernetes schemas")
    kubectl(kubeconfig, "patch", "pod", "job-a-worker-0", "-n", "default", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"phase": "Running", "podIP": "127.0.0.1"}}))
    # The operator scrapes the running rank 0 for status.progress (nothing listens: "unreachable").
    eventually(lambda: "tandem_operator_progress_scrapes_total{" in http_get(f"http://127.0.0.1:{op_port}/metrics"),
               "a progress scrape of job-a's rank 0", timeout=60)
    kubectl(kubeconfig, "patch", "pod", "job-a-worker-1", "-n", "default", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"phase": "Failed", "containerStatuses": [
                {"name": "trainer", "ready": False, "restartCount": 0, "image": "i", "imageID": "", "started": False,
                 "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}))
    kubectl(kubeconfig, "apply", "-f", "-", stdin=job_manifest("job-c", "team", "1500m"))
    kubectl(kubeconfig, "apply", "-f", "-", stdin=job_manifest("job-d", "default", "16"))

    eventually(lambda: prom(base, "/api/v1/query", query="tandem_operator_preemptions_total")["data"]["result"],
               "a preemption", timeout=60)
    eventually(lambda: prom(base, "/api/v1/query", query="tandem_operator_job_restarts_total")["data"]["result"],
               "a gang restart", timeout=60)

    # The Sweep: its trial is admitted in team (500m beside job-c's 3 CPUs, within the guarantee
    # of 4), runs (the kubelet's part, as for job-a) and reports test accuracy 0.8 after pass 1;
    # the budget then stops it and the sweep succeeds (BudgetSpent).
    serve_trial_metrics(trainer_metrics_port)
    kubectl(kubeconfig, "apply", "-f", "-", stdin=sweep_manifest())
    # Listed by label, not got by name: `kubectl get` of a name exits non-zero (the test's end)
    # until the sweep created it.
    def items(kind, selector):
        return json.loads(kubectl(kubeconfig, "get", kind, "-n", "default", "-l", selector, "-o", "json"))["items"]
    eventually(lambda: [j for j in items("trainingjobs", f"tandem.dev/sweep={SWEEP}")
                        if j["metadata"]["name"] == TRIAL and j.get("status", {}).get("phase") == "Admitted"],
               f"trial {TRIAL} admitted", timeout=60)
    eventually(lambda: items("pods", f"tandem.dev/job={TRIAL}"), f"trial {TRIAL}'s worker pod")
    kubectl(kubeconfig, "patch", "pod", f"{TRIAL}-worker-0", "-n", "default", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"phase": "Running", "podIP": "127.0.0.2",
                                         "conditions": [{"type": "Ready", "status": "True"}]}}))
    eventually(lambda: sweep_field(kubeconfig, "status.phase") in ("Succeeded", "Failed"),
               f"sweep {SWEEP} to spend its budget", timeout=90)
    st = sweep_field(kubeconfig, "status")
    best = st.get("bestTrial", {})
    if st.get("phase") != "Succeeded" or best.get("name") != TRIAL or best.get("objective") != 0.8:
        raise SystemExit(f"FAIL: sweep {SWEEP} did not succeed with {TRIAL} at 0.8 as its best: {json.dumps(st)}")
    # The operator's metrics, every tandem_operator_sweep_* series now among them, pass promtool's lint.
    text = http_get(f"http://127.0.0.1:{op_port}/metrics")
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    if lint.returncode != 0 or "tandem_operator_sweep_budget_cpu_seconds{" not in text:
        raise SystemExit(f"FAIL: promtool check metrics on the operator's metrics: {lint.stdout}{lint.stderr}")

    # 4. The training run, and its processes as scrape targets.
    run_dir = os.path.join(work, "run")
    tandem = start([f"{BIN}/tandem", "run", os.path.join(SRC, "tests/charts/testdata/observability-job.yaml"),
                    "--run-dir", run_dir], f"{work}/tandem-run.log")

    def write_targets():
        ws = workers(JOB)
        groups = [{"targets": [f"127.0.0.1:{port}"],
                   "labels": {"namespace": "local", "tandem_job": JOB, "rank": rank, "role": role}}
                  for role, rank, port in ws]
        tmp = sd + ".tmp"
        json.dump(groups, open(tmp, "w"))
        os.replace(tmp, sd)
        return len(ws)

    eventually(lambda: write_targets() == 4, "2 trainers and 2 pservers", timeout=120)

    def trainers_stepping():
        write_targets()
        r = prom(base, "/api/v1/query", query=f"count(rate(tandem_trainer_steps_total[{RATE}]) > 0)")
        res = r["data"]["result"]
        return res and float(res[0]["value"][1]) >= 2

    eventually(trainers_stepping, "both trainers stepping in Prometheus", timeout=180, every=1)
    time.sleep(6)  # a few more scrapes, so that every rate window holds several samples
    at = time.time() - 1
    if tandem.poll() is not None:
        raise SystemExit(f"FAIL: tandem run ended before the queries ({open(work + '/tandem-run.log').read()[-2000:]})")

    # 5. Every panel query and variable.
    failures, checked = [], 0
    for board, title, expr in panel_queries():
        q = substitute(expr)
        dcgm = "DCGM_FI_" in q
        m = re.match(r"^label_values\((.*),\s*(\w+)\)$", q)
        try:
            if m:
                r = prom(base, f"/api/v1/label/{m.group(2)}/values", **{"match[]": m.group(1), "start": at - 60, "end": at})
                n = len(r["data"])
            else:
                r = prom(base, "/api/v1/query", query=q, time=at)
                n = len(r["data"]["result"])
        except urllib.error.HTTPError as e:
            failures.append(f"{board}: {title}: does not parse: {e.read().decode()[:300]}\n    {q}")
            continue
        checked += 1
        if dcgm:
            if n != 0:
                failures.append(f"{board}: {title}: DCGM series without a GPU exporter?")
            else:
                print(f"ok    parses, no series (no DCGM exporter here)  {board}: {title}")
        elif n == 0:
            failures.append(f"{board}: {title}: no series\n    {q}")
        else:
            print(f"ok  {n:3d} series  {board}: {title}")
    # 6. Alert and recording-rule expressions parse (their behaviour is promtool test rules').
    rules = yaml.safe_load(open(os.path.join(SRC, "charts/tandem/files/alerts.yaml")))
    for g in rules["groups"]:
        for rule in g["rules"]:
            try:
                prom(base, "/api/v1/query", query=rule["expr"], time=at)
                checked += 1
            except urllib.error.HTTPError as e:
                failures.append(f"rule {rule.get('alert') or rule.get('record')}: {e.read().decode()[:300]}")
    loaded = prom(base, "/api/v1/rules")["data"]["groups"]
    if sum(len(g["rules"]) for g in loaded) != sum(len(g["rules"]) for g in rules["groups"]):
        failures.append("Prometheus did not load every rule of alerts.yaml")

    # 7. A fault drill, so that the report shows a restart: kill -9 trainer rank 1; tandem run
    # restarts it from the last checkpoint. The run then ends by itself; its folder (with
    # report.html) is kept for the browser test.
    # The job has more passes than the test needs, so that it is still training whatever the
    # machine's speed; once the restarted trainer runs again the test stops it as Ctrl-C would
    # (SIGINT: checkpoint, stop, summary.json and report.html written).
    def trainer1():
        return [pid for role, rank, _, pid in workers(JOB, with_pid=True) if role == "trainer" and rank == "1"]
    victim = trainer1()
    if not victim or tandem.poll() is not None:
        raise SystemExit(f"FAIL: no trainer rank 1 to kill ({open(work + '/tandem-run.log').read()[-2000:]})")
    os.kill(victim[0], signal.SIGKILL)
    print(f"killed trainer rank 1 (pid {victim[0]})")
    eventually(lambda: any(p != victim[0] for p in trainer1()), "trainer rank 1 restarted", timeout=120, every=0.5)
    time.sleep(3)
    os.kill(tandem.pid, signal.SIGINT)
    rc = tandem.wait(timeout=600)
    log = open(work + '/tandem-run.log').read()
    if rc != 0 and f"job {JOB} stopped" not in log:
        failures.append(f"tandem run exited {rc} without stopping cleanly: {log[-2000:]}")
    keep = os.path.join(OUT, "observability-run")
    shutil.rmtree(keep, ignore_errors=True)
    if os.path.isdir(run_dir):
        shutil.copytree(run_dir, keep, ignore=shutil.ignore_patterns("checkpoints", "model"))
        summary = json.load(open(os.path.join(run_dir, "summary.json")))
        if victim and summary.get("restarts", 0) < 1:
            failures.append(f"the killed trainer was not restarted: {summary}")
    for f in failures:
        print("FAIL", f)
    print(f"{checked} queries and expressions checked against Prometheus, {len(failures)} failures "
          f"({time.time() - t_start:.0f} s)")
    if failures:
        for log in ("operator.log", "prometheus.log"):
            print(f"--- {log} (tail)\n" + open(os.path.join(work, log)).read()[-1500:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
