// The operator's Prometheus metrics (tandem_operator_*), registered once in the default registry.
// The Kubernetes client adds tandem_operator_api_requests_total / _api_errors_total and the work
// queue tandem_operator_workqueue_*.
#pragma once

#include "common/metrics.h"

namespace tandem::controller {

struct OperatorMetrics {
  static OperatorMetrics& Get();

  metrics::Family<metrics::Gauge>& jobs;              // {phase, queue}
  metrics::Family<metrics::Counter>& admissions;      // {queue}
  metrics::Family<metrics::Counter>& preemptions;     // {queue, reason} (the victim's queue)
  metrics::Family<metrics::Counter>& restarts;        // {queue}
  metrics::Family<metrics::Gauge>& queue_usage;       // {queue, resource}
  metrics::Family<metrics::Gauge>& queue_guarantee;   // {queue, resource}
  metrics::Family<metrics::Gauge>& queue_borrowed;    // {queue, resource}
  metrics::Family<metrics::Gauge>& queue_share;       // {queue}: weighted dominant share
  metrics::Family<metrics::Gauge>& queue_pending;     // {queue}
  metrics::Histogram* scheduling_pass;                // seconds
  metrics::Family<metrics::Histogram>& reconcile;     // {result}: seconds
  metrics::Family<metrics::Counter>& progress_scrapes;  // {result}: ok|timeout|unreachable|http_error|invalid
  // Per TrainingJob, refreshed every scheduling pass (series of deleted jobs are removed):
  metrics::Family<metrics::Gauge>& job_workers;       // {namespace, tandem_job, queue, state}: desired|running|ready
  metrics::Family<metrics::Gauge>& job_queued_since;  // {namespace, tandem_job, queue, reason}: unix time
  metrics::Gauge* leader;                             // 1 while this replica leads (or runs unelected)
  metrics::Family<metrics::Counter>& resizes;         // {direction, reason}: grow|shrink, elastic jobs
};

}  // namespace tandem::controller
