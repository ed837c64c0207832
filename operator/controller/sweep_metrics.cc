#include "operator/controller/sweep_metrics.h"

#include "sweep/planner.h"

namespace tandem::controller {
namespace {

constexpr const char* kPhases[] = {api::kTrialPending, api::kTrialRunning, api::kTrialSucceeded,
                                   api::kTrialFailed, api::kTrialStopped, api::kTrialPaused};
constexpr const char* kSweepPhases[] = {api::kSweepRunning, api::kSweepSucceeded, api::kSweepFailed};
constexpr const char* kMetrics[] = {api::kMetricTestAccuracy, api::kMetricTestLoss, api::kMetricTestAuc};

}  // namespace

SweepMetrics& SweepMetrics::Get() {
  static SweepMetrics* m = [] {
    auto& r = metrics::Registry::Default();
    return new SweepMetrics{
        r.AddGauge("tandem_operator_sweep_trials", "Trials of a Sweep by phase", {"namespace", "sweep", "phase"}),
        r.AddGauge("tandem_operator_sweep_best_objective", "The objective of a Sweep's best trial so far",
                   {"namespace", "sweep", "metric"}),
        r.AddCounter("tandem_operator_sweep_trials_created_total", "Trial TrainingJobs created by Sweeps", {}),
        r.AddCounter("tandem_operator_sweep_trials_stopped_total",
                     "Trials stopped early, by early-stopping policy (asha, median; none: the sweep failed; budget: spec.budget was spent)",
                     {"policy"}),
        r.AddGauge("tandem_operator_sweep_cpu_seconds",
                   "CPU seconds charged to a Sweep's trials so far (their workers' CPU requests "
                   "while Running; what spec.budget.cpuSeconds counts)",
                   {"namespace", "sweep"}),
        r.AddGauge("tandem_operator_sweep_budget_cpu_seconds",
                   "A Sweep's spec.budget.cpuSeconds (only for a sweep with a budget)", {"namespace", "sweep"}),
        r.AddGauge("tandem_operator_sweep_phase",
                   "A Sweep's status.phase: 1 for its phase (Running, Succeeded, Failed), 0 for the others",
                   {"namespace", "sweep", "phase"}),
    };
  }();
  return *m;
}

void SweepMetrics::Observe(const api::Sweep& sweep, const api::SweepStatus& st) {
  const std::string& ns = sweep.metadata.namespace_;
  const std::string& name = sweep.metadata.name;
  const api::TrialCounts& c = st.trial_counts;
  const int64_t counts[] = {c.pending, c.running, c.succeeded, c.failed, c.stopped, c.paused};
  for (size_t i = 0; i < std::size(kPhases); ++i)
    trials.WithLabels({ns, name, kPhases[i]})->Set(static_cast<double>(counts[i]));
  if (st.best_trial) best_objective.WithLabels({ns, name, sweep.spec.objective.metric})->Set(st.best_trial->objective);
  for (const char* p : kSweepPhases) phase.WithLabels({ns, name, p})->Set(st.phase == p ? 1 : 0);
  cpu_seconds.WithLabels({ns, name})->Set(sweep::SpentCpuSeconds(st.trials));
  if (sweep.spec.budget.cpu_seconds > 0)
    budget_cpu_seconds.WithLabels({ns, name})->Set(sweep.spec.budget.cpu_seconds);
  else
    budget_cpu_seconds.Remove({ns, name});
}

void SweepMetrics::Forget(const std::string& ns, const std::string& name) {
  for (const char* phase : kPhases) trials.Remove({ns, name, phase});
  for (const char* metric : kMetrics) best_objective.Remove({ns, name, metric});
  cpu_seconds.Remove({ns, name});
  budget_cpu_seconds.Remove({ns, name});
  for (const char* p : kSweepPhases) phase.Remove({ns, name, p});
}

}  // namespace tandem::controller
