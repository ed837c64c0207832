#!/usr/bin/env python3
"""Writes Tandem's Grafana dashboards (charts/tandem/dashboards/*.json) from the panel lists below.

  scripts/tools/gen-dashboards.py            # rewrite the JSON files
  scripts/tools/gen-dashboards.py --check    # exit 1 when a committed file differs (ctest)

The dashboards are plain Grafana JSON, importable on their own (Dashboards > Import) or loaded by
the chart as sidecar ConfigMaps. Every query uses only metric names the code exports (the
chart_dashboards_prometheus test runs each one against a Prometheus that scraped a real
`tandem run` and a real operator), `$__rate_interval` for rates, and the variables datasource,
namespace, queue, sweep, job and rank. Series labels: namespace and tandem_job (the TrainingJob), rank
and role (trainer | pserver) on worker series, queue on the operator's, namespace and sweep on
the operator's per-Sweep series.
Python standard library only.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "charts", "tandem", "dashboards"))

DS = {"type": "prometheus", "uid": "${datasource}"}
# Worker series of the selected job(s) and rank(s).
W = 'namespace=~"$namespace", tandem_job=~"$job", rank=~"$rank"'
WJ = 'namespace=~"$namespace", tandem_job=~"$job"'
Q = 'queue=~"$queue"'
SW = 'sweep=~"$sweep"'
RI = "$__rate_interval"


def var_datasource():
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}


def var_query(name, label, query, multi=True, hide=0):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
            "refresh": 2, "includeAll": True, "allValue": ".*", "multi": multi, "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [],
            "hide": hide, "regex": ""}


VARS = {
    "namespace": lambda: var_query("namespace", "Namespace",
                                   "label_values(tandem_trainer_steps_total, namespace)"),
    "queue": lambda: var_query("queue", "Queue", "label_values(tandem_operator_queue_pending_jobs, queue)"),
    "sweep": lambda: var_query("sweep", "Sweep", "label_values(tandem_operator_sweep_trials, sweep)"),
    "job": lambda: var_query("job", "TrainingJob",
                             'label_values(tandem_trainer_steps_total{namespace=~"$namespace"}, tandem_job)'),
    "rank": lambda: var_query("rank", "Rank",
                              'label_values(tandem_trainer_steps_total{namespace=~"$namespace", tandem_job=~"$job"}, rank)'),
}

# Links between dashboards carry the time range and the variables, so queue -> job -> rank keep
# their selection.
LINK = "${__url_time_range}&${datasource:queryparam}"


def target(expr, legend="", instant=False, fmt="time_series", ref="A"):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": not instant,
         "instant": instant, "format": fmt}
    return t


class Board:
    def __init__(self, uid, title, description, variables, tags):
        self.uid, self.title, self.description = uid, title, description
        self.variables, self.tags = variables, tags
        self.panels, self.y, self.x, self.row_h, self.next_id = [], 0, 0, 0, 1

    def row(self, title):
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        self.panels.append({"id": self.next_id, "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.next_id += 1
        self.y += 1

    def panel(self, title, targets, kind="timeseries", unit="short", w=12, h=8, description="",
              stack=False, links=None, overrides=None, min_=None, max_=None):
        if self.x + w > 24:
            self.y += self.row_h
            self.x, self.row_h = 0, 0
        refs = "ABCDEFGH"
        for i, t in enumerate(targets):
            t["refId"] = refs[i]
        defaults = {"unit": unit, "links": links or []}
        if min_ is not None:
            defaults["min"] = min_
        if max_ is not None:
            defaults["max"] = max_
        if kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 20 if stack else 0,
                                  "showPoints": "never", "spanNulls": True,
                                  "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        p = {"id": self.next_id, "type": kind, "title": title, "description": description,
             "datasource": DS, "targets": targets,
             "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
             "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
             "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                         "tooltip": {"mode": "multi", "sort": "desc"}} if kind == "timeseries" else {}}
        if kind == "table":
            p["options"] = {"showHeader": True}
            p["transformations"] = [{"id": "labelsToFields", "options": {}}]
        if kind == "stat":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        self.panels.append(p)
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)

    def json(self, links):
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": self.tags,
            "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"}, "timezone": "utc",
            "templating": {"list": [var_datasource()] + [VARS[v]() for v in self.variables]},
            "annotations": {"list": []},
            "links": [{"title": t, "type": "link", "url": u, "keepTime": True, "includeVars": True,
                       "targetBlank": False, "asDropdown": False, "icon": "dashboard", "tags": []}
                      for t, u in links],
            "panels": self.panels,
        }


def cluster():
    b = Board("tandem-cluster", "Tandem / Cluster and queues",
              "TrainingJobs by phase, admissions, pending reasons, queue usage against guarantee and share, "
              "preemptions, Sweeps (trials by phase, best objective, trials created and stopped, CPU spent "
              "against the budget), and the operator's scheduling and reconcile latency.",
              ["queue", "sweep"], ["tandem"])
    b.row("Jobs")
    b.panel("TrainingJobs by phase", [target(f"sum by (phase) (tandem_operator_jobs{{{Q}}})", "{{phase}}")], stack=True)
    b.panel("Admissions per second", [target(f"sum by (queue) (rate(tandem_operator_admissions_total{{{Q}}}[{RI}]))", "{{queue}}")], unit="ops")
    b.panel("Waiting jobs by reason", [target(
        f"count by (queue, reason) (tandem_operator_job_queued_since_timestamp_seconds{{{Q}}})", "{{queue}}: {{reason}}")],
        stack=True, description="Jobs the scheduler has not admitted, by the reason of their Queued condition.")
    b.panel("Longest wait by reason", [target(
        f"max by (queue, reason) (time() - tandem_operator_job_queued_since_timestamp_seconds{{{Q}}})", "{{queue}}: {{reason}}")],
        unit="s", description="Alert TandemJobPendingTooLong fires above 30 minutes.")
    b.panel("Jobs (click for the job's dashboard)", [target(
        f'max by (namespace, tandem_job, queue, state) (tandem_operator_job_workers{{{Q}}})', "", instant=True, fmt="table")],
        kind="table", w=24, h=8, links=[{"title": "Job dashboard",
                                          "url": "/d/tandem-job/tandem-job?var-namespace=${__data.fields.namespace}&var-job=${__data.fields.tandem_job}&" + LINK}],
        description="Workers per job and state (desired, running, ready); a row links to the Job dashboard.")
    b.row("Queues")
    b.panel("Usage against guarantee (GPUs)", [
        target(f'sum by (queue) (tandem_operator_queue_usage{{{Q}, resource="nvidia.com/gpu"}})', "{{queue}} used"),
        target(f'sum by (queue) (tandem_operator_queue_guarantee{{{Q}, resource="nvidia.com/gpu"}})', "{{queue}} guaranteed")])
    b.panel("Usage against guarantee (CPU cores)", [
        target(f'sum by (queue) (tandem_operator_queue_usage{{{Q}, resource="cpu"}})', "{{queue}} used"),
        target(f'sum by (queue) (tandem_operator_queue_guarantee{{{Q}, resource="cpu"}})', "{{queue}} guaranteed")])
    b.panel("Borrowed beyond the guarantee", [target(f"tandem_operator_queue_borrowed{{{Q}}}", "{{queue}} {{resource}}")])
    b.panel("Weighted dominant share", [target(f"tandem_operator_queue_weighted_share{{{Q}}}", "{{queue}}")],
            unit="percentunit", description="Share of borrowed capacity divided by the queue's weight; fair share equalises it.")
    b.panel("Pending jobs per queue", [target(f"tandem_operator_queue_pending_jobs{{{Q}}}", "{{queue}}")])
    b.panel("Preemptions per second", [target(
        f"sum by (queue, reason) (rate(tandem_operator_preemptions_total{{{Q}}}[{RI}]))", "{{queue}}: {{reason}}")], unit="ops")
    b.panel("Gang restarts per second", [target(
        f"sum by (queue) (rate(tandem_operator_job_restarts_total{{{Q}}}[{RI}]))", "{{queue}}")], unit="ops")
    b.row("Sweeps")
    b.panel("Sweep trials by phase", [target(
        f"max by (namespace, sweep, phase) (tandem_operator_sweep_trials{{{SW}}})", "{{sweep}}: {{phase}}")],
        stack=True, description="Each Sweep's trials (TrainingJobs) by phase: Pending, Running, Paused (ASHA: "
                                "waiting at a rung), Succeeded, Failed, Stopped (early stopping or the budget).")
    b.panel("Best objective so far", [target(
        f"max by (namespace, sweep, metric) (tandem_operator_sweep_best_objective{{{SW}}})", "{{sweep}}: {{metric}}")],
        description="The objective (spec.objective.metric) of each Sweep's best trial so far; no series until "
                    "a trial reports a value.")
    b.panel("Trials created and stopped per second (all sweeps)", [
        target(f"sum (rate(tandem_operator_sweep_trials_created_total[{RI}]))", "created"),
        target(f"sum by (policy) (rate(tandem_operator_sweep_trials_stopped_total[{RI}]))", "stopped: {{policy}}")],
        unit="ops", description="Operator-wide counters (no sweep label): trials stopped by early-stopping policy "
                                "(asha, sha, median), by a failed sweep (none) or by a spent spec.budget (budget).")
    b.panel("CPU seconds spent against the budget", [
        target(f"max by (namespace, sweep) (tandem_operator_sweep_cpu_seconds{{{SW}}})", "{{sweep}} spent"),
        target(f"max by (namespace, sweep) (tandem_operator_sweep_budget_cpu_seconds{{{SW}}})", "{{sweep}} budget")],
        description="CPU seconds charged to each Sweep's trials (their workers' CPU requests while Running) "
                    "and its spec.budget.cpuSeconds (only for a sweep with a budget); the sweep ends "
                    "(BudgetSpent) when spent reaches the budget.")
    b.row("Operator")
    b.panel("Scheduling pass latency", [
        target(f"histogram_quantile(0.5, sum by (le) (rate(tandem_operator_scheduling_pass_duration_seconds_bucket[{RI}])))", "p50"),
        target(f"histogram_quantile(0.99, sum by (le) (rate(tandem_operator_scheduling_pass_duration_seconds_bucket[{RI}])))", "p99")],
        unit="s", w=8)
    b.panel("Reconcile latency (p99) by result", [target(
        f"histogram_quantile(0.99, sum by (le, result) (rate(tandem_operator_reconcile_duration_seconds_bucket[{RI}])))", "{{result}}")],
        unit="s", w=8)
    b.panel("Leader", [target("max by (pod, instance) (tandem_operator_leader)", "{{pod}}{{instance}}")], w=8,
            description="1 on the replica that holds the Lease; alert TandemOperatorNoLeader when none does.")
    b.panel("API requests per second by verb and code", [target(
        f"sum by (verb, code) (rate(tandem_operator_api_requests_total[{RI}]))", "{{verb}} {{code}}")], unit="reqps", w=8)
    b.panel("Work queue depth", [target("tandem_operator_workqueue_depth", "{{name}}")], w=8)
    b.panel("Progress scrapes of rank-0 trainers", [target(
        f"sum by (result) (rate(tandem_operator_progress_scrapes_total[{RI}]))", "{{result}}")], unit="ops", w=8)
    return b


def job():
    b = Board("tandem-job", "Tandem / Job",
              "One TrainingJob: throughput, loss and accuracy, the step time split into compute, data, all-reduce "
              "and pserver wait per rank, stragglers, restarts, lost steps and checkpoint age.",
              ["namespace", "job", "rank"], ["tandem"])
    b.row("Training")
    b.panel("Examples per second", [
        target(f"sum by (rank) (tandem_trainer_examples_per_second{{{W}}})", "rank {{rank}}")], stack=True, unit="none")
    b.panel("Loss", [target(f"tandem_trainer_loss{{{W}}}", "train, rank {{rank}}"),
                     target(f"tandem_trainer_test_loss{{{W}}}", "test, rank {{rank}}")], w=6)
    b.panel("Accuracy", [target(f"tandem_trainer_accuracy{{{W}}}", "train, rank {{rank}}"),
                         target(f"tandem_trainer_test_accuracy{{{W}}}", "test, rank {{rank}}")], unit="percentunit", w=6)
    b.panel("Steps per second", [target(f"sum by (rank) (rate(tandem_trainer_steps_total{{{W}}}[{RI}]))", "rank {{rank}}")], w=8)
    b.panel("Workers (operator)", [target(
        f'max by (state) (tandem_operator_job_workers{{namespace=~"$namespace", tandem_job=~"$job"}})', "{{state}}")], w=8)
    b.panel("Pass and learning rate", [target(f"max by (rank) (tandem_trainer_pass{{{W}}})", "pass, rank {{rank}}"),
                                       target(f"max by (rank) (tandem_trainer_learning_rate{{{W}}})", "lr, rank {{rank}}")], w=8)
    b.row("Step time")
    b.panel("Step time split per rank", [target(
        f"sum by (rank, phase) (rate(tandem_trainer_step_phase_seconds_total{{{W}}}[{RI}]))"
        f" / on (rank) group_left () sum by (rank) (rate(tandem_trainer_steps_total{{{W}}}[{RI}]))",
        "rank {{rank}} {{phase}}")], unit="s", stack=True,
        description="Seconds per step: compute (forward, backward, update), data (waiting for the next batch), "
                    "allreduce (waiting for gradients after backward), pserver (pulls and pushes).")
    b.panel("Step time p50 / p99 per rank", [
        target(f"histogram_quantile(0.5, sum by (rank, le) (rate(tandem_trainer_step_seconds_bucket{{{W}}}[{RI}])))", "p50 rank {{rank}}"),
        target(f"histogram_quantile(0.99, sum by (rank, le) (rate(tandem_trainer_step_seconds_bucket{{{W}}}[{RI}])))", "p99 rank {{rank}}")],
        unit="s")
    b.panel("Stragglers: busy time per step against the job's median", [target(
        f'(sum by (rank) (rate(tandem_trainer_step_phase_seconds_total{{{WJ}, phase=~"compute|data"}}[{RI}]))'
        f" / sum by (rank) (rate(tandem_trainer_steps_total{{{WJ}}}[{RI}])))"
        f' / scalar(quantile(0.5, sum by (rank) (rate(tandem_trainer_step_phase_seconds_total{{{WJ}, phase=~"compute|data"}}[{RI}]))'
        f" / sum by (rank) (rate(tandem_trainer_steps_total{{{WJ}}}[{RI}]))))", "rank {{rank}}")],
        unit="none", description="1 is the median rank; alert TandemStraggler fires above 1.5 for 15 minutes.",
        links=[{"title": "This rank", "url": "/d/tandem-job/tandem-job?var-namespace=${namespace}&var-job=${job}&var-rank=${__field.labels.rank}&" + LINK}])
    b.panel("All-reduce time p90 per rank", [target(
        f"histogram_quantile(0.9, sum by (rank, le) (rate(tandem_collective_allreduce_seconds_bucket{{{W}}}[{RI}])))", "rank {{rank}}")], unit="s", w=8)
    b.panel("All-reduce bus bandwidth", [target(f"tandem_collective_allreduce_bus_bandwidth_bytes_per_second{{{W}}}", "rank {{rank}}")], unit="Bps", w=8)
    b.panel("Waiting for peers (share of time)", [target(
        f"sum by (rank) (rate(tandem_collective_peer_wait_seconds_total{{{W}}}[{RI}]))", "rank {{rank}}")], unit="percentunit", w=8)
    b.row("Reliability")
    b.panel("Restarts per rank (last hour)", [target(
        f'changes(process_start_time_seconds{{{W}, role="trainer"}}[1h])', "rank {{rank}}")], w=6,
        description="Trainer process restarts, from the change of its start time.")
    b.panel("Steps lost to restarts", [target(f'max by (rank) (tandem_pserver_steps_lost{{{W}, role="pserver"}})', "shard {{rank}}")], w=6)
    b.panel("Checkpoint age", [target(
        f"time() - max by (rank) (tandem_trainer_last_checkpoint_timestamp_seconds{{{W}}} > 0)", "rank {{rank}}")], unit="s", w=6,
        description="Alert TandemCheckpointTooOld fires above an hour.")
    b.panel("Collective failures per second", [target(
        f"sum by (rank) (rate(tandem_collective_failures_total{{{W}}}[{RI}]))", "rank {{rank}}")], unit="ops", w=6)
    b.panel("Input: waiting for data (share of time)", [target(
        f"sum by (rank) (rate(tandem_trainer_data_input_wait_seconds_total{{{W}}}[{RI}]))", "rank {{rank}}")], unit="percentunit", w=8)
    b.panel("Input: examples read per second", [target(
        f"sum by (rank) (rate(tandem_trainer_data_examples_read_total{{{W}}}[{RI}]))", "rank {{rank}}")], w=8)
    b.panel("Memory per process", [target(
        f"process_resident_memory_bytes{{{W}}}", "{{role}} {{rank}}")], unit="bytes", w=8)
    return b


def pserver():
    b = Board("tandem-pserver", "Tandem / Parameter server",
              "The job's pserver shards: rows and bytes per second, RPC latency by method, shard balance, "
              "staleness, checkpoints and refused requests.",
              ["namespace", "job", "rank"], ["tandem"])
    S = f'{W}, role="pserver", side="server"'
    C = f'{W}, role="trainer", side="client"'
    b.row("Traffic")
    b.panel("Rows per second by shard and op", [target(
        f"sum by (rank, op) (rate(tandem_pserver_rows_total{{{S}}}[{RI}]))", "shard {{rank}} {{op}}")], stack=True)
    b.panel("Bytes per second by shard and op", [target(
        f"sum by (rank, op) (rate(tandem_pserver_bytes_total{{{S}}}[{RI}]))", "shard {{rank}} {{op}}")], unit="Bps", stack=True)
    b.row("Latency")
    for m, name in (("pull", "Pull"), ("push", "Push")):
        b.panel(f"{name} latency p99 (server) by kind", [target(
            f"histogram_quantile(0.99, sum by (kind, le) (rate(tandem_pserver_{m}_latency_seconds_bucket{{{S}}}[{RI}])))", "{{kind}}")],
            unit="s", w=6)
    for m, name in (("pull", "Pull"), ("push", "Push")):
        b.panel(f"{name} latency p99 (trainer, all shards) by kind", [target(
            f"histogram_quantile(0.99, sum by (kind, le) (rate(tandem_pserver_{m}_latency_seconds_bucket{{{C}}}[{RI}])))", "{{kind}}")],
            unit="s", w=6)
    b.row("Balance and staleness")
    b.panel("Shard balance (max / min rows per shard)", [target(
        f'max by (rank) (tandem_pserver_shard_balance_ratio{{{W}, role="trainer"}})', "trainer {{rank}}")], w=8,
        description="1 is perfect; above 2 one shard is a hot spot.")
    b.panel("Shard versions (spread = staleness between shards)", [target(
        f'tandem_pserver_version{{{W}, role="pserver"}}', "shard {{rank}}")], w=8)
    b.panel("Stale pushes dropped, ignored pushes per second", [
        target(f'sum by (rank) (rate(tandem_pserver_stale_gradients_dropped_total{{{W}, role="pserver"}}[{RI}]))', "stale, shard {{rank}}"),
        target(f'sum by (rank) (rate(tandem_pserver_ignored_pushes_total{{{W}, role="pserver"}}[{RI}]))', "ignored, shard {{rank}}")],
        unit="ops", w=8)
    b.row("Checkpoints and errors")
    b.panel("Shard checkpoints per second by result", [target(
        f'sum by (rank, result) (rate(tandem_pserver_checkpoints_total{{{W}, role="pserver"}}[{RI}]))', "shard {{rank}} {{result}}")],
        unit="ops", w=8)
    b.panel("Checkpoint duration p90", [target(
        f'histogram_quantile(0.9, sum by (rank, le) (rate(tandem_pserver_checkpoint_duration_seconds_bucket{{{W}, role="pserver"}}[{RI}])))',
        "shard {{rank}}")], unit="s", w=8)
    b.panel("Refused requests and client retries per second", [
        target(f'sum by (reason) (rate(tandem_pserver_rejected_requests_total{{{W}, role="pserver"}}[{RI}]))', "refused: {{reason}}"),
        target(f'sum by (rank) (rate(tandem_pserver_client_retries_total{{{W}, role="trainer"}}[{RI}]))', "retries, trainer {{rank}}")],
        unit="ops", w=8)
    b.panel("Rollbacks and aborted steps (restarts)", [
        target(f'sum by (rank) (increase(tandem_pserver_rollbacks_total{{{W}, role="pserver"}}[1h]))', "rollbacks, shard {{rank}}"),
        target(f'sum by (rank) (increase(tandem_pserver_aborted_steps_total{{{W}, role="pserver"}}[1h]))', "aborted, shard {{rank}}")],
        w=24)
    return b


def gpu():
    b = Board("tandem-gpu", "Tandem / GPU",
              "NVIDIA DCGM exporter profiling metrics for the job's pods (the exporter's Kubernetes pod mapping "
              "labels each GPU with namespace and pod) beside the job's own throughput and step split.",
              ["namespace", "job", "rank"], ["tandem", "gpu"])
    # dcgm-exporter labels GPU series with the pod that holds the GPU; worker pods are "<job>-worker-<rank>".
    G = 'namespace=~"$namespace", pod=~"($job)-worker-($rank)"'
    b.row("GPU (DCGM exporter)")
    b.panel("Graphics engine active", [target(f"avg by (pod, gpu) (DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{G}}})", "{{pod}} gpu {{gpu}}")],
            unit="percentunit", min_=0, max_=1, description="DCGM_FI_PROF_GR_ENGINE_ACTIVE: time the GPU was busy (more accurate than DCGM_FI_DEV_GPU_UTIL).")
    b.panel("SM active", [target(f"avg by (pod, gpu) (DCGM_FI_PROF_SM_ACTIVE{{{G}}})", "{{pod}} gpu {{gpu}}")], unit="percentunit", min_=0, max_=1)
    b.panel("Tensor pipe active", [target(f"avg by (pod, gpu) (DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{{G}}})", "{{pod}} gpu {{gpu}}")], unit="percentunit", min_=0, max_=1)
    b.panel("DRAM active", [target(f"avg by (pod, gpu) (DCGM_FI_PROF_DRAM_ACTIVE{{{G}}})", "{{pod}} gpu {{gpu}}")], unit="percentunit", min_=0, max_=1)
    b.panel("Framebuffer used", [target(f"sum by (pod, gpu) (DCGM_FI_DEV_FB_USED{{{G}}}) * 1024 * 1024", "{{pod}} gpu {{gpu}}")], unit="bytes", w=8)
    b.panel("Power", [target(f"sum by (pod, gpu) (DCGM_FI_DEV_POWER_USAGE{{{G}}})", "{{pod}} gpu {{gpu}}")], unit="watt", w=8)
    b.panel("XID errors and GPU utilisation (coarse)", [
        target(f"max by (pod, gpu) (DCGM_FI_DEV_XID_ERRORS{{{G}}})", "xid {{pod}} gpu {{gpu}}"),
        target(f"avg by (pod, gpu) (DCGM_FI_DEV_GPU_UTIL{{{G}}})", "util % {{pod}} gpu {{gpu}}")], w=8)
    b.row("The job (Tandem)")
    b.panel("Examples per second", [target(f"sum by (rank) (tandem_trainer_examples_per_second{{{W}}})", "rank {{rank}}")], stack=True, w=8)
    b.panel("Step time split per rank", [target(
        f"sum by (rank, phase) (rate(tandem_trainer_step_phase_seconds_total{{{W}}}[{RI}]))"
        f" / on (rank) group_left () sum by (rank) (rate(tandem_trainer_steps_total{{{W}}}[{RI}]))", "rank {{rank}} {{phase}}")],
        unit="s", stack=True, w=8)
    b.panel("All-reduce bus bandwidth", [target(f"tandem_collective_allreduce_bus_bandwidth_bytes_per_second{{{W}}}", "rank {{rank}}")], unit="Bps", w=8)
    return b


LINKS = [("Cluster and queues", "/d/tandem-cluster/tandem-cluster"), ("Job", "/d/tandem-job/tandem-job"),
         ("Parameter server", "/d/tandem-pserver/tandem-pserver"), ("GPU", "/d/tandem-gpu/tandem-gpu")]
BOARDS = {"cluster.json": cluster, "job.json": job, "pserver.json": pserver, "gpu.json": gpu}


def render():
    return {name: json.dumps(fn().json(LINKS), indent=2, sort_keys=False) + "\n" for name, fn in BOARDS.items()}


def main(argv):
    check = "--check" in argv
    stale = []
    for name, text in render().items():
        path = os.path.join(OUT, name)
        old = open(path).read() if os.path.exists(path) else None
        if old == text:
            continue
        if check:
            stale.append(path)
        else:
            os.makedirs(OUT, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            print("wrote", path)
    if stale:
        print("out of date (run scripts/tools/gen-dashboards.py):", " ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
