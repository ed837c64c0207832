#!/usr/bin/env python3
"""bench/cluster-scale: tandem-operator at cluster scale through a real kube-apiserver.

  python3 bench/cluster-scale/run.py [--build build] [--nodes 1000] [--gpus 8] [--queues 50]
                                     [--jobs 10000] [--seed 1] [--json F]

Starts its own control plane (tests/cluster/controlplane.sh, unthrottled as kwokctl's
--disable-qps-limits does), 1,000 kwok nodes x 8 GPUs, 50 queues (one namespace each, equal
guarantees), then tandem-operator as its ServiceAccount (deploy/rbac.yaml), and creates 10,000
TrainingJobs of 1-8 one-GPU workers at once (16 client threads). It measures, from the first
create until every admissible job is admitted and its worker pods are bound (the operator binds:
spec.nodeName) and nothing changes for --settle seconds:
  admissions_per_s   admitted jobs / time to the last admission            (jobs/s)
  pods_per_s         bound worker pods / time to the last pod creation     (pods/s)
  operator_peak_memory  VmHWM of tandem-operator                           (MiB)
and the operator's API request rate and the CPU seconds of every control-plane process, so it
shows which one is the limit. Peers' published figures are printed beside (same sources as
bench/scheduler-scale): Kueue ~40 workloads/s (derived from its CI performance test), YuniKorn
833.3 pods/s (KWOK).
"""
import argparse, base64, http.client, json, os, re, signal, socket, ssl, subprocess, sys
import shutil, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workload  # noqa: E402  (the workload, shared with memory.py)

KUEUE_WORKLOADS_PER_S = 40.0   # research/operator-anchors.md §8 (derived); as bench/scheduler-scale
YUNIKORN_PODS_PER_S = 833.3    # yunikorn-site "Evaluate YuniKorn Performance with KWOK", case 1

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Api:
    """A small HTTPS client for the test control plane (admin client certificate)."""

    def __init__(self, kubeconfig):
        import yaml
        kc = yaml.safe_load(open(kubeconfig))
        cl, user = kc["clusters"][0]["cluster"], kc["users"][0]["user"]
        m = re.match(r"https://([^:]+):(\d+)", cl["server"])
        self.host, self.port = m.group(1), int(m.group(2))
        d = tempfile.mkdtemp(prefix="cluster-scale-pki.")
        files = {}
        for k, name in (("certificate-authority-data", "ca"),):
            files[name] = os.path.join(d, name)
            open(files[name], "wb").write(base64.b64decode(cl[k]))
        for k, name in (("client-certificate-data", "crt"), ("client-key-data", "key")):
            files[name] = os.path.join(d, name)
            open(files[name], "wb").write(base64.b64decode(user[k]))
        self.ctx = ssl.create_default_context(cafile=files["ca"])
        self.ctx.load_cert_chain(files["crt"], files["key"])
        self.local = threading.local()

    def conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=120)
        return c

    def request(self, method, path, body=None, accept="application/json"):
        for attempt in range(5):
            try:
                c = self.conn()
                hdr = {"Accept": accept}
                if body is not None:
                    hdr["Content-Type"] = "application/json"
                c.request(method, path, body=json.dumps(body) if body is not None else None, headers=hdr)
                r = c.getresponse()
                data = r.read()
                if r.status == 429 or r.status >= 500:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                return r.status, data
            except (http.client.HTTPException, OSError):
                self.local.c = None
                time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"{method} {path}: no answer after 5 attempts")


def sh(*args, **kw):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kw).stdout


def cpu_seconds(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def vm_hwm_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--queues", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--settle", type=float, default=20.0, help="seconds without change that end the run")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--operator-workers", type=int, default=8)
    ap.add_argument("--api-concurrency", type=int, default=64,
                    help="the operator's --api-concurrency (API requests in flight at once)")
    ap.add_argument("--create-threads", type=int, default=16, help="client threads creating the jobs")
    ap.add_argument("--operator", default=None, help="tandem-operator binary (default: <build>/bin)")
    ap.add_argument("--state", default=None, help="control-plane state dir (default: a temp dir)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--pprof", default="go tool pprof",
                    help="the pprof command (go tool pprof builds it on first use: minutes on a loaded machine)")
    ap.add_argument("--profile", type=float, default=0,
                    help="seconds of CPU profile from job creation on: kube-apiserver's /debug/pprof "
                         "(go tool pprof -top) and the operator's (perf record, when perf is installed)")
    a = ap.parse_args()
    state = a.state or tempfile.mkdtemp(prefix="cluster-scale.")
    cp = os.path.join(ROOT, "tests/cluster/controlplane.sh")
    env = dict(os.environ)
    env["TANDEM_APISERVER_EXTRA_ARGS"] = ("--max-requests-inflight=0 --max-mutating-requests-inflight=0 "
                                          "--enable-priority-and-fairness=false" + (" --profiling=true" if a.profile else ""))
    env["TANDEM_KCM_QPS"], env["TANDEM_KCM_BURST"] = "5000", "10000"
    print(f"control plane in {state}", flush=True)
    subprocess.run(["bash", cp, "up", state], check=True, env=env)
    op = None
    try:
        env["KUBECONFIG"] = os.path.join(state, "admin.kubeconfig")
        envsh = open(os.path.join(state, "env.sh")).read()
        env["PATH"] = re.search(r'export PATH="([^$]*)\$PATH"', envsh).group(1) + env["PATH"]
        kubectl = lambda *x, **kw: subprocess.run(["kubectl", *x], check=True, env=env, text=True,
                                                  capture_output=True, **kw).stdout
        api = Api(env["KUBECONFIG"])
        kubectl("apply", "--server-side", "-f", os.path.join(ROOT, "crds"))
        kubectl("wait", "--for=condition=Established", "crd/trainingjobs.tandem.dev", "crd/queues.tandem.dev")
        kubectl("apply", "--server-side", "-f", os.path.join(ROOT, "deploy/rbac.yaml"))

        # Nodes, queues, namespaces.
        t = time.time()
        node = lambda i: workload.node_object(i, a.gpus)
        with ThreadPoolExecutor(16) as ex:
            for s, _ in ex.map(lambda i: api.request("POST", "/api/v1/nodes", node(i)), range(a.nodes)):
                assert s in (201, 409), s
        for ns_obj, queue_obj in workload.queue_objects(a.nodes, a.gpus, a.queues):
            api.request("POST", "/api/v1/namespaces", ns_obj)
            s, b = api.request("POST", "/apis/tandem.dev/v1alpha1/queues", queue_obj)
            assert s in (201, 409), (s, b[:300])
        while True:
            s, b = api.request("GET", "/api/v1/nodes", accept="application/json;as=Table;g=meta.k8s.io;v=v1")
            ready = sum(1 for r in json.loads(b)["rows"] if r["cells"][1] == "Ready")
            if ready >= a.nodes:
                break
            time.sleep(1)
        for q in range(a.queues):  # the ServiceAccount admission needs each namespace's default SA
            while api.request("GET", f"/api/v1/namespaces/q{q:02d}/serviceaccounts/default")[0] != 200:
                time.sleep(0.5)
        print(f"{a.nodes} nodes Ready, {a.queues} queues, in {time.time() - t:.0f}s", flush=True)

        # The operator, as its ServiceAccount.
        token = kubectl("create", "token", "tandem-operator", "-n", "tandem-system", "--duration=4h").strip()
        import yaml
        kc = yaml.safe_load(open(env["KUBECONFIG"]))
        kc["users"] = [{"name": "op", "user": {"token": token}}]
        kc["contexts"][0]["context"]["user"] = "op"
        opkc = os.path.join(state, "operator.kubeconfig")
        yaml.safe_dump(kc, open(opkc, "w"))
        mport = free_port()
        oplog = open(os.path.join(state, "logs", "operator.log"), "w")
        op = subprocess.Popen([a.operator or os.path.join(a.build, "bin", "tandem-operator"), "--kubeconfig", opkc,
                               "--api-concurrency", str(a.api_concurrency),
                               "--metrics-host", "127.0.0.1", "--metrics-port", str(mport),
                               "--lease-namespace", "tandem-system", "--identity", "bench",
                               "--progress-interval", "0", "--workers", str(a.operator_workers),
                               "--schedule-interval", "2"], stdout=oplog, stderr=subprocess.STDOUT)
        while True:
            s, b = api.request("GET", "/apis/coordination.k8s.io/v1/namespaces/tandem-system/leases/tandem-operator")
            if s == 200 and json.loads(b)["spec"].get("holderIdentity") == "bench":
                break
            if op.poll() is not None:
                raise RuntimeError("tandem-operator exited; see " + oplog.name)
            time.sleep(0.5)

        pids = {n: int(open(os.path.join(state, "pids", f"{n}.pid")).read())
                for n in ("etcd", "kube-apiserver", "kube-controller-manager", "kwok")}
        pids["tandem-operator"] = op.pid
        cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}

        def operator_metrics():
            try:
                c = http.client.HTTPConnection("127.0.0.1", mport, timeout=5)
                c.request("GET", "/metrics"); return c.getresponse().read().decode()
            except OSError:
                return ""

        def metric_sum(text, prefix):
            return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(prefix))

        def scrape():
            text = operator_metrics()
            return metric_sum(text, "tandem_operator_api_requests_total{") if text else float("nan")

        def apiserver_durations():
            """kube-apiserver's own apiserver_request_duration_seconds (sum, count) by verb, all clients."""
            s, b = api.request("GET", "/metrics", accept="text/plain")
            out = {}
            for l in b.decode().splitlines():
                m = re.match(r'apiserver_request_duration_seconds_(sum|count)\{(.*)\} (\S+)$', l)
                if not m:
                    continue
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
                if labels.get("verb") in ("WATCH", "CONNECT"):
                    continue
                k = labels.get("verb", "?")
                out.setdefault(k, [0.0, 0.0])[0 if m.group(1) == "sum" else 1] += float(m.group(3))
            return out
        req0 = scrape()
        dur0 = apiserver_durations()

        # 10,000 jobs of 1-8 one-GPU workers, created at once.
        jobs = workload.job_mix(a.seed, a.jobs, a.queues)
        workers_of = {(ns, n): w for ns, n, w in jobs}

        def create(j):
            ns, name, w = j
            o = workload.job_object(ns, name, w)
            s, b = api.request("POST", f"/apis/tandem.dev/v1alpha1/namespaces/{ns}/trainingjobs", o)
            assert s == 201, (s, b[:300])
        profilers = []
        if a.profile:
            def apiserver_profile():
                s, b = api.request("GET", f"/debug/pprof/profile?seconds={int(a.profile)}", accept="*/*")
                if s == 200:
                    open(os.path.join(state, "apiserver.pprof"), "wb").write(b)
            profilers.append(threading.Thread(target=apiserver_profile))
            if shutil.which("perf"):
                profilers.append(subprocess.Popen(
                    ["perf", "record", "-F", "99", "-g", "-p", str(op.pid), "-o",
                     os.path.join(state, "operator.perf.data"), "--", "sleep", str(int(a.profile))],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for p in profilers:
                if isinstance(p, threading.Thread): p.start()
        load_start = os.getloadavg()
        t0 = time.time()
        with ThreadPoolExecutor(a.create_threads) as ex:
            list(ex.map(create, jobs))
        t_created = time.time() - t0
        print(f"{a.jobs} TrainingJobs created in {t_created:.1f}s ({a.jobs / t_created:.0f}/s)", flush=True)

        # Poll: admitted jobs (Table, Phase column) and bound worker pods (metadata only).
        last = (-1, -1); t_adm = t_pods = t_change = time.time()
        admitted = pods = 0; admitted_workers = 0
        while True:
            s, b = api.request("GET", "/apis/tandem.dev/v1alpha1/trainingjobs",
                               accept="application/json;as=Table;g=meta.k8s.io;v=v1")
            tb = json.loads(b)
            col = [c["name"] for c in tb["columnDefinitions"]].index("Phase")
            adm = [(r["object"]["metadata"]["namespace"], r["object"]["metadata"]["name"]) for r in tb["rows"]
                   if r["cells"][col] in ("Admitted", "Running")]
            admitted, admitted_workers = len(adm), sum(workers_of[k] for k in adm)
            s, b = api.request("GET", "/api/v1/pods?labelSelector=tandem.dev%2Fjob",
                               accept="application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
            pods = len(json.loads(b).get("items") or [])  # null while there are none
            now = time.time()
            if admitted != last[0]: t_adm = now
            if pods != last[1]: t_pods = now
            if (admitted, pods) != last: t_change = now
            last = (admitted, pods)
            print(f"  t={now - t0:6.1f}s admitted={admitted} pods={pods}/{admitted_workers}", flush=True)
            if admitted > 0 and pods >= admitted_workers and now - t_change >= a.settle:
                break
            if now - t0 > a.timeout:
                print("timeout: the run did not settle", flush=True)
                break
            if op.poll() is not None:
                raise RuntimeError("tandem-operator exited; see " + oplog.name)
            time.sleep(2)
        t_end = t_change - t0
        for p in profilers:
            p.join() if isinstance(p, threading.Thread) else p.wait()
        cpu = {n: cpu_seconds(p) - cpu0[n] for n, p in pids.items()}
        reqs = scrape() - req0
        peak = vm_hwm_mib(op.pid)
        opm = operator_metrics()
        dur1 = apiserver_durations()
        gpus_used = admitted_workers
        adm_s = admitted / max(t_adm - t0, 1e-9)
        pods_s = pods / max(t_pods - t0, 1e-9)

        print(f"\ncluster: {a.nodes} kwok nodes x {a.gpus} GPUs, {a.queues} queues, {a.jobs} TrainingJobs "
              f"of 1-8 workers (seed {a.seed}); machine: {os.cpu_count()} cores, load (1 min) "
              f"{load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
        print(f"admitted {admitted} jobs ({pods} worker pods bound, {gpus_used} of {a.nodes * a.gpus} GPUs) "
              f"in {t_end:.1f}s from the first create; creating the jobs took {t_created:.1f}s")
        print(f"operator API requests: {reqs:.0f} ({reqs / max(t_end, 1e-9):.0f}/s)")
        print("CPU seconds during the run (cores busy on average):")
        for n, c in sorted(cpu.items(), key=lambda x: -x[1]):
            print(f"  {n:24s} {c:8.1f}s  ({c / max(t_end, 1e-9):.2f} cores)")
        # The apiserver's own time per request of the operator (audit log: received -> complete):
        # with the operator's few workers each waiting on one request, this latency bounds it.
        import datetime
        ts = lambda x: datetime.datetime.fromisoformat(x.replace("Z", "+00:00"))
        lat = []
        for line in open(os.path.join(state, "logs", "audit.log")):
            e = json.loads(line)
            if e.get("stage") == "ResponseComplete" and e["verb"] != "watch":
                lat.append((ts(e["stageTimestamp"]) - ts(e["requestReceivedTimestamp"])).total_seconds())
        lat.sort()
        med = lat[len(lat) // 2] * 1000 if lat else float("nan")
        p90 = lat[int(len(lat) * 0.9)] * 1000 if lat else float("nan")
        print(f"apiserver time per operator request (audit log, {len(lat)} requests): "
              f"median {med:.1f} ms, p90 {p90:.1f} ms; with {a.operator_workers} workers that bounds the "
              f"operator at ~{a.operator_workers / max(med / 1000, 1e-9):.0f} requests/s")
        # kube-apiserver's view (its /metrics, every client): time spent per request, by verb.
        print("kube-apiserver apiserver_request_duration_seconds during the run (all clients, by verb):")
        busy = 0.0
        for verb in sorted(dur1):
            ds = dur1[verb][0] - dur0.get(verb, [0, 0])[0]
            dc = dur1[verb][1] - dur0.get(verb, [0, 0])[1]
            if dc > 0:
                busy += ds
                print(f"  {verb:8s} {dc:9.0f} requests  mean {1000 * ds / dc:7.1f} ms")
        print(f"  requests in progress on average: {busy / max(t_end, 1e-9):.1f}")
        # The operator's own timers.
        for name in ("tandem_operator_scheduling_pass_duration_seconds", "tandem_operator_reconcile_duration_seconds"):
            tot, n = metric_sum(opm, name + "_sum"), metric_sum(opm, name + "_count")
            if n:
                print(f"operator {name[16:]}: {n:.0f} x, mean {1000 * tot / n:.1f} ms, total {tot:.1f}s")
        if a.profile:
            # Which process is the limit: the apiserver's hottest functions (Go pprof) and the
            # operator's (perf), over the first --profile seconds.
            pp = os.path.join(state, "apiserver.pprof")
            if os.path.exists(pp):
                top = subprocess.run(a.pprof.split() + ["-top", "-cum", "-nodecount=300", pp], text=True,
                                     capture_output=True).stdout.splitlines()
                # The header, then where the time goes by handler and storage call, and the GC.
                keep = [l for l in top[:6]] + [l for l in top[6:] if re.search(
                    r"handlers\.|StatusREST|registry\.\(\*Store\)\.(Create|Update|Delete)|gcBgMarkWorker$|"
                    r"cacher\.\(\*Cacher\)\.(Watch|GetList)|ServeHTTP$", l)][:30]
                print("kube-apiserver CPU profile (" + a.pprof + " -top -cum " + pp + ", selected):\n" + "\n".join(keep))
            pd = os.path.join(state, "operator.perf.data")
            if os.path.exists(pd):
                rep = subprocess.run(["perf", "report", "-i", pd, "--no-children", "--stdio", "--sort", "dso,symbol",
                                      "--percent-limit", "1.5", "-g", "none"], text=True, capture_output=True).stdout
                lines = [re.sub(r"\s+(-\s+)*$", "", l)[:160] for l in rep.splitlines()
                         if l.strip() and not l.startswith("#")]
                print("tandem-operator CPU profile (perf report -i " + pd + "):\n" + "\n".join(lines))
        rows = [("pods_per_s", "pods/s", pods_s, YUNIKORN_PODS_PER_S, False, "YuniKorn 833 pods/s (KWOK)"),
                ("admissions_per_s", "jobs/s", adm_s, KUEUE_WORKLOADS_PER_S, False, "Kueue ~40 workloads/s (derived, CI perf test)"),
                ("operator_peak_memory", "MiB", peak, 0, True, "target <= 500 MiB (VmHWM)"),
                ("operator_api_requests_per_s", "req/s", reqs / max(t_end, 1e-9), 0, False, ""),
                ("apiserver_cpu_cores", "cores", cpu["kube-apiserver"] / max(t_end, 1e-9), 0, True, "average over the run"),
                ("operator_cpu_cores", "cores", cpu["tandem-operator"] / max(t_end, 1e-9), 0, True, "average over the run"),
                ("apiserver_request_median", "ms", med, 0, True, "server time per operator request (audit)")]
        print(f"\n{'name':28s} {'unit':8s} {'tandem':>10s} {'peer':>10s} {'ratio':>8s}  peer source")
        records = []
        for name, unit, v, peer, lower, src in rows:
            rec = {"name": name, "unit": unit, "tandem": v, "peer": peer or None, "ratio": None, "peer_source": src or None}
            if peer:
                rec["ratio"] = peer / v if lower else v / peer
                print(f"{name:28s} {unit:8s} {v:10.1f} {peer:10.1f} {rec['ratio']:7.2f}x  {src}")
            else:
                print(f"{name:28s} {unit:8s} {v:10.1f} {'-':>10s} {'-':>8s}  {src}")
            records.append(rec)
        if a.json:
            json.dump(records, open(a.json, "w"), indent=2)
    finally:
        if op is not None and op.poll() is None:
            op.send_signal(signal.SIGTERM)
            try: op.wait(20)
            except subprocess.TimeoutExpired: op.kill()
        subprocess.run(["bash", cp, "down", state], env=env)


if __name__ == "__main__":
    main()
