#!/usr/bin/env python3
"""bench/cluster-scale/memory.py: tandem-operator's memory and writes at the issue's full size,
against the in-repo API server stand-in (tandem-fake-apiserver), which holds 10,000 jobs on this
machine where the real control plane cannot admit them within a session.

  python3 bench/cluster-scale/memory.py [--build build] [--operator BIN] [--nodes 1000]
                                        [--queues 50] [--jobs 10000] [--json F]

Same world as bench/cluster-scale/run.py (1,000 nodes x 8 GPUs, 50 queues with equal guarantees,
10,000 TrainingJobs of 1-8 one-GPU workers, the same manifest), created before the operator
starts, so it lists everything at once. Waits until every GPU is admitted, every admitted job's
worker pods exist and nothing changes for --settle seconds, then records:
  operator_peak_memory   VmHWM of tandem-operator                                  (MiB)
  operator_rss           VmRSS at the end                                          (MiB)
  operator_status_writes the operator's status writes to jobs and queues
                         (tandem_operator_api_requests_total{verb="update_status"})  (requests)
and the scheduling passes and their mean time. The stand-in has no kubelet: pods stay Pending,
which changes nothing the operator caches per job. `--operator BIN` runs another build (main's).
"""
import argparse, http.client, json, os, signal, socket, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workload  # noqa: E402  (the workload, shared with run.py)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


class Api:
    def __init__(self, port):
        self.port = port
        import threading
        self.local = threading.local()

    def request(self, method, path, body=None, attempts=3):
        for attempt in range(attempts):
            c = getattr(self.local, "c", None)
            if c is None:
                c = self.local.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            try:
                c.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers={"Content-Type": "application/json", "Accept": "application/json"})
                r = c.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.local.c = None
                if attempt + 1 == attempts:
                    raise
                time.sleep(0.2)


def status_of(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--operator", default=None)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--queues", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import yaml
    d = tempfile.mkdtemp(prefix="cluster-memory.")
    port = free_port()
    api_log = open(os.path.join(d, "apiserver.log"), "w")
    srv = subprocess.Popen([os.path.join(a.build, "bin", "tandem-fake-apiserver"), "--port", str(port),
                            "--kubeconfig-out", os.path.join(d, "kubeconfig")], stdout=api_log, stderr=subprocess.STDOUT)
    op = None
    try:
        api = Api(port)
        for _ in range(100):
            try:
                api.request("GET", "/version", attempts=1); break
            except (http.client.HTTPException, OSError):
                time.sleep(0.1)
        for f in sorted(os.listdir(os.path.join(ROOT, "crds"))):
            for doc in yaml.safe_load_all(open(os.path.join(ROOT, "crds", f))):
                s, b = api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc)
                assert s in (200, 201), (f, s, b[:300])
        node = lambda i: workload.node_object(i, a.gpus, ready_condition=True)
        with ThreadPoolExecutor(8) as ex:
            for s, b in ex.map(lambda i: api.request("POST", "/api/v1/nodes", node(i)), range(a.nodes)):
                assert s == 201, (s, b[:200])
        for ns_obj, queue_obj in workload.queue_objects(a.nodes, a.gpus, a.queues):
            api.request("POST", "/api/v1/namespaces", ns_obj)
            s, b = api.request("POST", "/apis/tandem.dev/v1alpha1/queues", queue_obj)
            assert s == 201, (s, b[:300])
        jobs = workload.job_mix(a.seed, a.jobs, a.queues)
        workers_of = {(ns, n): w for ns, n, w in jobs}

        def create(j):
            ns, name, w = j
            o = workload.job_object(ns, name, w, last_applied=True)  # as kubectl apply leaves it
            s, b = api.request("POST", f"/apis/tandem.dev/v1alpha1/namespaces/{ns}/trainingjobs", o)
            assert s == 201, (s, b[:300])
        t = time.time()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(create, jobs))
        print(f"{a.nodes} nodes, {a.queues} queues, {a.jobs} TrainingJobs in the stand-in ({time.time() - t:.0f}s)", flush=True)

        mport = free_port()
        oplog = open(os.path.join(d, "operator.log"), "w")
        op = subprocess.Popen([a.operator or os.path.join(a.build, "bin", "tandem-operator"), "--kubeconfig",
                               os.path.join(d, "kubeconfig"), "--metrics-host", "127.0.0.1", "--metrics-port", str(mport),
                               "--identity", "bench", "--progress-interval", "0", "--workers", "8",
                               "--schedule-interval", "2"], stdout=oplog, stderr=subprocess.STDOUT)

        def metrics():
            try:
                c = http.client.HTTPConnection("127.0.0.1", mport, timeout=10)
                c.request("GET", "/metrics"); return c.getresponse().read().decode()
            except OSError:
                return ""

        def msum(text, prefix, must=""):
            return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(prefix) and must in l)

        t0 = time.time(); last = None; t_change = t0
        while True:
            s, b = api.request("GET", "/apis/tandem.dev/v1alpha1/trainingjobs")
            items = json.loads(b)["items"]
            adm = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items
                   if o.get("status", {}).get("phase") in ("Admitted", "Running")]
            s, b = api.request("GET", "/api/v1/pods")
            pods = len(json.loads(b)["items"])
            want = sum(workers_of[k] for k in adm)
            now = time.time()
            cur = (len(adm), pods)
            if cur != last: t_change = now
            last = cur
            print(f"  t={now - t0:6.1f}s admitted={len(adm)} pods={pods}/{want} "
                  f"rss={status_of(op.pid, 'VmRSS'):.0f} MiB", flush=True)
            if adm and pods >= want and now - t_change >= a.settle:
                break
            if now - t0 > a.timeout:
                print("timeout: the run did not settle", flush=True); break
            if op.poll() is not None:
                raise RuntimeError("tandem-operator exited; see " + oplog.name)
            time.sleep(3)
        m = metrics()
        peak, rss = status_of(op.pid, "VmHWM"), status_of(op.pid, "VmRSS")
        status_puts = msum(m, "tandem_operator_api_requests_total{", 'verb="update_status"')
        all_reqs = msum(m, "tandem_operator_api_requests_total{")
        passes = msum(m, "tandem_operator_scheduling_pass_duration_seconds_count")
        pass_s = msum(m, "tandem_operator_scheduling_pass_duration_seconds_sum")
        print(f"\n{a.nodes} nodes x {a.gpus} GPUs, {a.queues} queues, {a.jobs} jobs; admitted {last[0]} jobs, "
              f"{last[1]} pods, settled {t_change - t0:.0f}s after the operator started; load {os.getloadavg()[0]:.1f}")
        print(f"operator API requests: {all_reqs:.0f}, of them status writes: {status_puts:.0f}")
        for l in m.splitlines():
            if l.startswith("tandem_operator_api_requests_total{"):
                print("  " + l)
        if passes:
            print(f"scheduling passes: {passes:.0f}, mean {1000 * pass_s / passes:.0f} ms")
        rows = [("operator_peak_memory", "MiB", peak), ("operator_rss", "MiB", rss),
                ("operator_status_writes", "requests", status_puts),
                ("operator_api_requests", "requests", all_reqs)]
        for n, u, v in rows:
            print(f"{n:30s} {u:9s} {v:10.1f}")
        if a.json:
            json.dump([{"name": n, "unit": u, "tandem": v} for n, u, v in rows], open(a.json, "w"), indent=2)
    finally:
        for p in (op, srv):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try: p.wait(20)
                except subprocess.TimeoutExpired: p.kill()


if __name__ == "__main__":
    main()
