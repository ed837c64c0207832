// The operator's Sweep metrics (tandem_operator_sweep_*), registered once in the default registry.
#pragma once

#include <string>

#include "api/sweep.h"
#include "common/metrics.h"

namespace tandem::controller {

struct SweepMetrics {
  static SweepMetrics& Get();

  metrics::Family<metrics::Gauge>& trials;          // {namespace, sweep, phase}: trials by phase
  metrics::Family<metrics::Gauge>& best_objective;  // {namespace, sweep, metric}: the best trial's value
  metrics::Family<metrics::Counter>& created;       // trials created
  metrics::Family<metrics::Counter>& stopped;       // {policy}: trials stopped early
  metrics::Family<metrics::Gauge>& cpu_seconds;     // {namespace, sweep}: CPU charged to its trials so far
  metrics::Family<metrics::Gauge>& budget_cpu_seconds;  // {namespace, sweep}: spec.budget.cpuSeconds, if set
  metrics::Family<metrics::Gauge>& phase;  // {namespace, sweep, phase}: 1 for the sweep's phase, 0 for the others

  // Sets the per-sweep series from `status` (the budget gauge only for a sweep with a budget;
  // removed again if its spec drops the budget).
  void Observe(const api::Sweep& sweep, const api::SweepStatus& status);
  // Removes the series of a deleted sweep.
  void Forget(const std::string& ns, const std::string& name);
};

}  // namespace tandem::controller
