#include "operator/controller/operator_metrics.h"

namespace tandem::controller {

OperatorMetrics& OperatorMetrics::Get() {
  static OperatorMetrics* m = [] {
    auto& r = metrics::Registry::Default();
    return new OperatorMetrics{
        r.AddGauge("tandem_operator_jobs", "TrainingJobs by phase and queue", {"phase", "queue"}),
        r.AddCounter("tandem_operator_admissions_total", "Jobs admitted by the scheduler", {"queue"}),
        r.AddCounter("tandem_operator_preemptions_total", "Jobs preempted, by the victim's queue and why",
                     {"queue", "reason"}),
        r.AddCounter("tandem_operator_job_restarts_total", "Gang restarts after worker failures", {"queue"}),
        r.AddGauge("tandem_operator_queue_usage", "Resources held by a queue's admitted jobs (cpu in cores, memory in bytes, GPUs)",
                   {"queue", "resource"}),
        r.AddGauge("tandem_operator_queue_guarantee", "A queue's guaranteed resources", {"queue", "resource"}),
        r.AddGauge("tandem_operator_queue_borrowed", "Usage beyond the guarantee", {"queue", "resource"}),
        r.AddGauge("tandem_operator_queue_weighted_share", "Weighted dominant share of borrowed capacity",
                   {"queue"}),
        r.AddGauge("tandem_operator_queue_pending_jobs", "Jobs waiting in a queue", {"queue"}),
        r.AddHistogram("tandem_operator_scheduling_pass_duration_seconds", "One fair-share scheduling pass",
                       {}, metrics::LatencyBuckets())
            .Get(),
        r.AddHistogram("tandem_operator_reconcile_duration_seconds", "One Reconcile(key), by result",
                       {"result"}, metrics::LatencyBuckets()),
        r.AddCounter("tandem_operator_progress_scrapes_total",
                     "Scrapes of rank-0 trainers' /metrics for status.progress, by result "
                     "(ok, timeout, unreachable, http_error, invalid)",
                     {"result"}),
        r.AddGauge("tandem_operator_job_workers",
                   "Workers of a TrainingJob by state: desired (the gang), running, ready",
                   {"namespace", "tandem_job", "queue", "state"}),
        r.AddGauge("tandem_operator_job_queued_since_timestamp_seconds",
                   "While a TrainingJob waits for admission: when it started waiting, with the "
                   "scheduler's reason (the Queued condition's reason)",
                   {"namespace", "tandem_job", "queue", "reason"}),
        r.AddGauge("tandem_operator_leader",
                   "1 while this replica holds the leader Lease and reconciles, else 0")
            .Get(),
        r.AddCounter("tandem_operator_resizes_total",
                     "Resizes of elastic TrainingJobs, by direction (grow, shrink) and reason "
                     "(Grow, ReclaimBorrowed, LowerPriority, WorkerFailed)",
                     {"direction", "reason"}),
    };
  }();
  return *m;
}

}  // namespace tandem::controller
