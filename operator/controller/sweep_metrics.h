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

  // Sets the per-sweep series from `status`.
  void Observe(const api::Sweep& sweep, const api::SweepStatus& status);
  // Removes the series of a deleted sweep.
  void Forget(const std::string& ns, const std::string& name);
};

}  // namespace tandem::controller
