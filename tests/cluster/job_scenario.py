#!/usr/bin/env python3
"""Keeps the API server stand-in honest: ONE TrainingJob scenario, run by tandem-operator against
tandem-fake-apiserver and against the real control plane (the `cluster_up` fixture); each run
writes what it observed at every step, and any difference between the two fails the test, as
does any expectation either run misses.

  job_scenario.py --backend standin|real|both --bin-dir build/bin --source-dir . \
                  --state build/tests/cluster/state --work DIR [--operator-kubeconfig F]

The scenario: two 8-GPU nodes, a queue that owns them and one that borrows; job a (2 workers x 4
GPUs) is admitted, its worker pods, Service, Secret, ConfigMap, NetworkPolicy and checkpoint
claim are created and its pods run; `kubectl get tj` shows the printer columns; a worker fails
with exit code 137 and the gang restarts; suspend and resume; a borrower's job b is preempted by
the owner's priority-100 job c; job d succeeds and its TTL deletes it; deleting a cascades to its
children; an elastic job e grows into the idle GPUs and is shrunk (not preempted) when the
owner's job f reclaims them, f running once e's leaving workers have exited. Observations are
values, never timings.

What stands in for what: on the real control plane kwok runs the nodes and pods (Ready nodes,
bound pods Running, deleted pods removed after their grace period) and the operator runs as its
ServiceAccount; on the stand-in a small loop in this script plays kwok (nodes Ready, bound pods
Running), and the operator uses the stand-in's kubeconfig (no RBAC there).
"""
import argparse, difflib, http.client, json, os, signal, subprocess, sys, threading, time

NS = "scn"
TIMEOUT = float(os.environ.get("TANDEM_SCENARIO_TIMEOUT", "120"))


class Backend:
    name = ""

    def __init__(self, a):
        self.a = a
        self.env = dict(os.environ)
        self.procs = []
        self.log = []  # (step, observation)
        self.failures = []

    # --- plumbing ---------------------------------------------------------------------------
    def kubectl(self, *args, stdin=None, check=True):
        r = subprocess.run(["kubectl", *args], input=stdin, env=self.env, text=True, capture_output=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def get_json(self, *args):
        out = self.kubectl("get", *args, "-o", "json", check=False)
        try:
            return json.loads(out)
        except ValueError:
            return None

    def observe(self, step, value):
        self.log.append(f"{step}: {value}")

    def expect(self, step, what, cond, timeout=TIMEOUT):
        """Waits until cond() returns a truthy value; records the outcome either way."""
        deadline = time.time() + timeout
        last = None
        while True:
            try:
                last = cond()
            except Exception as e:  # a transient kubectl failure is an observation too
                last = f"error: {e}"
                if time.time() > deadline:
                    break
                time.sleep(0.5)
                continue
            if last is True or (last and not isinstance(last, str)):
                self.observe(step, f"{what}: yes")
                return True
            if time.time() > deadline:
                break
            time.sleep(0.5)
        self.observe(step, f"{what}: NO")
        self.failures.append(f"[{self.name}] {step}: {what} (last seen: {last})")
        return False

    def start_operator(self, kubeconfig):
        log = open(os.path.join(self.a.work, f"operator-{self.name}.log"), "w")
        p = subprocess.Popen([os.path.join(self.a.bin_dir, "tandem-operator"), "--kubeconfig", kubeconfig,
                              "--metrics-host", "127.0.0.1", "--metrics-port", "0",
                              "--lease-namespace", "tandem-system", "--identity", f"scenario-{self.name}",
                              "--progress-interval", "0", "--schedule-interval", "1", "--termination-grace", "1"],
                             stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(p)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    # --- the objects of the scenario, the same YAML for both ---------------------------------
    def nodes_yaml(self):
        out = []
        for i in range(2):
            out.append(f"""---
apiVersion: v1
kind: Node
metadata:
  name: scn-{i}
  annotations: {{kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}}
  labels: {{type: kwok, kubernetes.io/hostname: scn-{i}, tandem.dev/test: scn}}
status:
  allocatable: {{cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "8"}}
  capacity: {{cpu: "32", memory: 256Gi, pods: "110", nvidia.com/gpu: "8"}}
""")
        return "".join(out)

    @staticmethod
    def job_yaml(name, queue, workers, gpus, priority=0, extra=""):
        return f"""apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {{name: {name}, namespace: {NS}}}
spec:
  queue: {queue}
  priority: {priority}
  image: tandem/tandem:0.1.0
  nodeSelector: {{tandem.dev/test: scn}}
  workers: {{count: {workers}}}
  trainer: {{resources: {{requests: {{cpu: "1", memory: 2Gi, nvidia.com/gpu: {gpus}}}}}}}
  pserver: {{resources: {{requests: {{cpu: 500m, memory: 1Gi}}}}}}
  passes: 1
  model: {{inputs: [{{name: image, source: features, shape: [1, 28, 28]}}, {{name: label, source: labels}}], layers: [{{name: fc1, type: fc, input: image, size: 10}}, {{name: cost, type: softmax_cross_entropy, inputs: [fc1, label]}}], cost: cost}}
  data: {{train: {{format: idx}}, test: {{format: idx}}, batchSize: 64}}
  restartPolicy: {{backoffLimit: 3, backoffSeconds: 1, retryableExitCodes: [75, 137, 143]}}
{extra}"""

    QUEUES = f"""apiVersion: tandem.dev/v1alpha1
kind: Queue
metadata: {{name: scn-owner}}
spec:
  weight: 1
  guaranteed: {{nvidia.com/gpu: 16, cpu: "64", memory: 512Gi}}
  namespaces: [{NS}]
  preemption: {{reclaimBorrowed: true, withinQueue: Never}}
---
apiVersion: tandem.dev/v1alpha1
kind: Queue
metadata: {{name: scn-borrower}}
spec:
  weight: 1
  namespaces: [{NS}]
"""

    # --- readings ----------------------------------------------------------------------------
    def job(self, name):
        return self.get_json("-n", NS, "trainingjob", name)

    def field(self, name, path):
        o = self.job(name)
        for p in path.split("."):
            if not isinstance(o, dict):
                return None
            o = o.get(p)
        return o

    def pods(self, job):
        lst = self.get_json("-n", NS, "pods", "-l", f"tandem.dev/job={job}")
        return [] if lst is None else lst["items"]

    def live_pods(self, job):
        return [p for p in self.pods(job) if not p["metadata"].get("deletionTimestamp")]

    def running(self, job, n):
        ps = self.live_pods(job)
        return (len(ps) == n and all(p.get("status", {}).get("phase") == "Running" for p in ps)
                and self.field(job, "status.phase") == "Running")

    def condition(self, job, ctype):
        for c in self.field(job, "status.conditions") or []:
            if c.get("type") == ctype:
                return c
        return {}

    def children(self, uid):
        kinds = "pods,services,secrets,configmaps,networkpolicies,persistentvolumeclaims"
        lst = self.get_json("-n", NS, kinds)
        out = []
        for i in (lst or {}).get("items", []):
            if any(r.get("uid") == uid for r in i["metadata"].get("ownerReferences", [])):
                out.append(f'{i["kind"]}/{i["metadata"]["name"]}')
        return sorted(out)

    def event_reasons(self, job):
        lst = self.get_json("-n", NS, "events", "--field-selector", f"involvedObject.name={job}")
        return sorted({e.get("reason", "") for e in (lst or {}).get("items", [])})

    def resizes(self, job):
        return [(r.get("from"), r.get("to"), r.get("reason"), r.get("epoch"))
                for r in self.field(job, "status.elastic.resizes") or []]

    def membership(self, job):
        cm = self.get_json("-n", NS, "configmap", f"{job}-membership")
        if cm is None:
            return None
        m = json.loads(cm.get("data", {}).get("membership.json", "{}") or "{}")
        return (m.get("epoch"), len(m.get("peers", [])))

    def printer_row(self, job):
        out = self.kubectl("-n", NS, "get", "tj", job).splitlines()
        # AGE (the last column) is a time: left out.
        return " | ".join([" ".join(out[0].split()[:-1]), " ".join(out[1].split()[:-1])])

    def set_pod_phase(self, pod, phase, exit_code):
        # A status for each container the pod has: the trainer alone for a job without pservers
        # (api::UsesPServers), as the jobs here are (dense sync over the ring).
        obj = self.get_json("-n", NS, "pod", pod) or {}
        names = [c["name"] for c in obj.get("spec", {}).get("containers", [])] or ["trainer"]
        statuses = [{"name": c, "ready": False, "restartCount": 0, "image": "tandem/tandem:0.1.0", "imageID": "",
                     "state": {"terminated": {"exitCode": exit_code if c == "trainer" else 0,
                                              "reason": "Error" if exit_code else "Completed"}}}
                    for c in names]
        self.kubectl("-n", NS, "patch", "pod", pod, "--subresource=status", "--type=merge", "-p",
                     json.dumps({"status": {"phase": phase, "containerStatuses": statuses}}))

    # --- the scenario --------------------------------------------------------------------------
    def scenario(self):
        self.kubectl("apply", "-f", "-", stdin=self.QUEUES)
        self.kubectl("apply", "-f", "-", stdin=self.job_yaml("a", "scn-owner", 2, 4))
        s = "1 admitted and running"
        if self.expect(s, "job a Running with 2 Running workers", lambda: self.running("a", 2)):
            ps = self.live_pods("a")
            self.observe(s, f'workers {sorted(p["metadata"]["name"] for p in ps)}')
            self.observe(s, f'bound to {sorted({p["spec"].get("nodeName", "") for p in ps})}')
            self.observe(s, f'status.workers {json.dumps(self.field("a", "status.workers"), sort_keys=True)}')
            self.observe(s, f'children {self.children(self.field("a", "metadata.uid"))}')
            self.expect(s, "printer columns", lambda: self.printer_row("a").startswith(
                "NAME PHASE READY WORKERS QUEUE PROGRESS | a Running 2 2 scn-owner"))
            self.observe(s, f'get tj: {self.printer_row("a")}')
            self.expect(s, "events Queued, Admitted, Running",
                        lambda: {"Queued", "Admitted", "Running"} <= set(self.event_reasons("a")))

        s = "2 worker fails with 137"
        before = {p["metadata"]["uid"] for p in self.live_pods("a")}
        victim = sorted(p["metadata"]["name"] for p in self.live_pods("a"))[:1]
        if victim:
            self.set_pod_phase(victim[0], "Failed", 137)
        self.expect(s, "restarts == 1", lambda: self.field("a", "status.restarts") == 1)
        self.expect(s, "a new gang Running", lambda: self.running("a", 2) and not (
            before & {p["metadata"]["uid"] for p in self.live_pods("a")}))
        self.observe(s, f'restart annotation {sorted(p["metadata"].get("annotations", {}).get("tandem.dev/restart", "") for p in self.live_pods("a"))}')
        self.expect(s, "events WorkerFailed, Restarted",
                    lambda: {"WorkerFailed", "Restarted"} <= set(self.event_reasons("a")))

        s = "3 suspend and resume"
        self.kubectl("-n", NS, "patch", "tj", "a", "--type=merge", "-p", '{"spec":{"suspend":true}}')
        self.expect(s, "Suspended with no workers",
                    lambda: self.field("a", "status.phase") == "Suspended" and not self.pods("a"))
        self.observe(s, f'placement {self.field("a", "status.placement")}')
        self.kubectl("-n", NS, "patch", "tj", "a", "--type=merge", "-p", '{"spec":{"suspend":false}}')
        self.expect(s, "Running again", lambda: self.running("a", 2))
        self.expect(s, "events Suspended, Resumed", lambda: {"Suspended", "Resumed"} <= set(self.event_reasons("a")))

        s = "4 preemption"
        self.kubectl("apply", "-f", "-", stdin=self.job_yaml("b", "scn-borrower", 2, 4))
        self.expect(s, "borrower's job b Running", lambda: self.running("b", 2))
        self.kubectl("apply", "-f", "-", stdin=self.job_yaml("c", "scn-owner", 2, 4, 100))
        self.expect(s, "owner's job c Running", lambda: self.running("c", 2))
        self.expect(s, "b Preempted and Queued", lambda: self.condition("b", "Preempted").get("status") == "True"
                    and self.field("b", "status.phase") == "Queued")
        self.observe(s, f'b Preempted reason {self.condition("b", "Preempted").get("reason")}')
        # Right after the preemption b's Queued reason is Preempted; the next pass finds it short of GPUs.
        self.expect(s, "b waits with reason InsufficientResources",
                    lambda: self.condition("b", "Queued").get("reason") == "InsufficientResources")
        self.expect(s, "b has no workers", lambda: not self.live_pods("b"))
        self.kubectl("-n", NS, "delete", "tj", "b", "c", "--wait=false")

        s = "5 success and TTL"
        self.expect(s, "b and c gone", lambda: self.job("b") is None and self.job("c") is None)
        self.kubectl("apply", "-f", "-", stdin=self.job_yaml("d", "scn-owner", 1, 1, 0, "  ttlSecondsAfterFinished: 2"))
        if self.expect(s, "job d Running", lambda: self.running("d", 1)):
            for p in self.live_pods("d"):
                self.set_pod_phase(p["metadata"]["name"], "Succeeded", 0)
        self.expect(s, "d Succeeded, then deleted by its TTL",
                    lambda: self.job("d") is None, timeout=TIMEOUT)

        s = "6 delete cascades"
        uid = self.field("a", "metadata.uid")
        self.kubectl("-n", NS, "delete", "tj", "a", "--wait=false")
        self.expect(s, "a's children gone", lambda: uid is not None and not self.children(uid))

        s = "7 elastic: grow into idle GPUs, shrink for a reclaim"
        self.kubectl("apply", "-f", "-", stdin=self.job_yaml("e", "scn-borrower", 2, 4, 0, "  elastic: {}").replace(
            "workers: {count: 2}", "workers: {count: 2, minCount: 1, maxCount: 4}"))
        self.expect(s, "e grown to 4 published workers", lambda: self.field("e", "status.elastic.workers") == 4
                    and self.running("e", 4))
        self.observe(s, f'e members {self.field("e", "status.elastic.members")} epoch {self.field("e", "status.elastic.epoch")}')
        self.observe(s, f'e resizes {self.resizes("e")}')
        self.expect(s, "e-membership at that epoch with 4 peers",
                    lambda: self.membership("e") == (self.field("e", "status.elastic.epoch"), 4))
        self.expect(s, "events Growing, Resized", lambda: {"Growing", "Resized"} <= set(self.event_reasons("e")))
        self.kubectl("apply", "-f", "-", stdin=self.job_yaml("f", "scn-owner", 2, 4))
        self.expect(s, "e shrunk to 2, not preempted", lambda: self.field("e", "status.elastic.workers") == 2
                    and not self.condition("e", "Preempted") and self.field("e", "status.phase") == "Running")
        self.observe(s, f'e resizes {self.resizes("e")}')
        self.expect(s, "e-membership with 2 peers", lambda: (self.membership("e") or (0, 0))[1] == 2)
        self.expect(s, "f waits for e's leaving workers", lambda: self.condition("f", "Queued").get("reason")
                    in ("Shrinking", "WaitingForPreemption"))
        for p in self.live_pods("e"):
            if p["metadata"]["labels"].get("tandem.dev/rank") in ("2", "3"):
                self.set_pod_phase(p["metadata"]["name"], "Succeeded", 0)
        self.expect(s, "f Running once they are gone", lambda: self.running("f", 2) and len(self.live_pods("e")) == 2)
        self.kubectl("-n", NS, "delete", "tj", "e", "f", "--wait=false")

    def run(self):
        try:
            self.setup()
            self.scenario()
        except Exception as e:
            self.failures.append(f"[{self.name}] scenario stopped: {e}")
            self.observe("stopped", str(e))
        finally:
            self.teardown()
            self.stop()
        return self.log


class StandIn(Backend):
    """tandem-fake-apiserver, and this script standing in for kwok."""
    name = "standin"

    def setup(self):
        d = os.path.join(self.a.work, "standin")
        os.makedirs(d, exist_ok=True)
        port_file, kc = os.path.join(d, "port"), os.path.join(d, "kubeconfig")
        for f in (port_file, kc):  # a file left by an earlier run must not be taken for this one's
            if os.path.exists(f):
                os.remove(f)
        self.procs.append(subprocess.Popen(
            [os.path.join(self.a.bin_dir, "tandem-fake-apiserver"), "--port", "0", "--port-file", port_file,
             "--kubeconfig-out", kc], stdout=open(os.path.join(d, "apiserver.log"), "w"), stderr=subprocess.STDOUT))
        deadline = time.time() + 30
        while not (os.path.exists(port_file) and os.path.getsize(port_file) and os.path.exists(kc)):
            if time.time() > deadline:
                raise RuntimeError("tandem-fake-apiserver did not start")
            time.sleep(0.1)
        self.port = int(open(port_file).read())
        self.env["KUBECONFIG"] = kc
        self.kubectl("apply", "-f", os.path.join(self.a.source_dir, "crds"))
        # kubectl sends built-in objects as protobuf, which the stand-in does not speak (docs/operator.md):
        # the namespaces and nodes go in as JSON.
        import yaml
        for n in (NS, "tandem-system"):
            self.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})
        for node in yaml.safe_load_all(self.nodes_yaml()):
            if node:
                status, body = self.request("POST", "/api/v1/nodes", node)
                if status != 201:
                    raise RuntimeError(f"creating node {node['metadata']['name']}: {status} {body[:200]}")
        self.stop_kwok = threading.Event()
        self.kwok = threading.Thread(target=self.play_kwok, daemon=True)
        self.kwok.start()
        self.start_operator(kc)

    def request(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
        c.request(method, path, body=None if body is None else json.dumps(body),
                  headers={"Content-Type": ctype} if body is not None else {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def play_kwok(self):
        """kwok's node-initialize and pod-ready stages: nodes Ready, bound pods Running and Ready."""
        while not self.stop_kwok.wait(0.2):
            try:
                _, b = self.request("GET", "/api/v1/nodes")
                for n in json.loads(b)["items"]:
                    if "kwok.x-k8s.io/node" in n["metadata"].get("annotations", {}) and not n.get("status", {}).get("conditions"):
                        self.request("PATCH", f'/api/v1/nodes/{n["metadata"]["name"]}/status',
                                     {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})
                _, b = self.request("GET", f"/api/v1/namespaces/{NS}/pods")
                for p in json.loads(b)["items"]:
                    st = p.get("status", {})
                    if p["spec"].get("nodeName") and st.get("phase", "Pending") == "Pending" \
                            and not p["metadata"].get("deletionTimestamp"):
                        self.request("PATCH", f'/api/v1/namespaces/{NS}/pods/{p["metadata"]["name"]}/status', {"status": {
                            "phase": "Running", "podIP": "127.128.0.10",
                            "conditions": [{"type": "Ready", "status": "True"}],
                            "containerStatuses": [{"name": c["name"], "ready": True, "restartCount": 0,
                                                   "image": c["image"], "imageID": "", "state": {"running": {}}}
                                                  for c in p["spec"]["containers"]]}})
            except (OSError, ValueError, KeyError, http.client.HTTPException):
                pass

    def teardown(self):
        if hasattr(self, "stop_kwok"):
            self.stop_kwok.set()
            self.kwok.join(5)


class Real(Backend):
    """The real control plane of the cluster_up fixture, kwok, the operator as its ServiceAccount."""
    name = "real"

    def setup(self):
        envsh = os.path.join(self.a.state, "env.sh")
        if not os.path.exists(envsh):
            raise RuntimeError(f"no control plane at {self.a.state} (the cluster_up fixture did not run)")
        self.env["KUBECONFIG"] = os.path.join(self.a.state, "admin.kubeconfig")
        self.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true")
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", os.path.join(self.a.source_dir, "crds"))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     "crd/trainingjobs.tandem.dev", "crd/queues.tandem.dev")
        self.kubectl("create", "namespace", NS)
        deadline = time.time() + 60
        while self.get_json("-n", NS, "serviceaccount", "default") is None:  # pods need it
            if time.time() > deadline:
                raise RuntimeError("no default ServiceAccount in the namespace")
            time.sleep(0.5)
        self.kubectl("apply", "--server-side", "-f", "-", stdin=self.nodes_yaml())
        self.expect("0 setup", "kwok nodes Ready", lambda: all(
            any(c.get("type") == "Ready" and c.get("status") == "True" for c in n.get("status", {}).get("conditions", []))
            for n in (self.get_json("nodes", "-l", "tandem.dev/test=scn") or {"items": [{}]})["items"]) and
            len((self.get_json("nodes", "-l", "tandem.dev/test=scn") or {"items": []})["items"]) == 2)
        self.log = [l for l in self.log if not l.startswith("0 setup")]  # the stand-in has no such step
        self.start_operator(self.a.operator_kubeconfig)

    def teardown(self):
        self.kubectl("delete", "namespace", NS, "--wait=false", "--ignore-not-found", check=False)
        self.kubectl("delete", "queue", "scn-owner", "scn-borrower", "--ignore-not-found", check=False)
        self.kubectl("delete", "nodes", "-l", "tandem.dev/test=scn", "--wait=false", check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["standin", "real", "both"], default="both")
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--state", default="")
    ap.add_argument("--operator-kubeconfig", default="")
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    runs = {}
    failures = []
    for cls in (StandIn, Real):
        if a.backend not in ("both", cls.name):
            continue
        b = cls(a)
        t = time.time()
        runs[cls.name] = b.run()
        failures += b.failures
        open(os.path.join(a.work, f"outcome-{cls.name}.txt"), "w").write("\n".join(runs[cls.name]) + "\n")
        print(f"--- {cls.name} ({time.time() - t:.0f}s) ---")
        print("\n".join(runs[cls.name]), flush=True)
    ok = not failures
    for f in failures:
        print("FAIL:", f)
    if len(runs) == 2:
        diff = list(difflib.unified_diff(runs["standin"], runs["real"], "stand-in", "real control plane", lineterm=""))
        if diff:
            ok = False
            print("FAIL: the stand-in and the real control plane disagree:")
            print("\n".join(diff))
        else:
            print("ok: the stand-in and the real control plane agree on every observation")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
