// The Sweep reconciler: level-based, like the TrainingJob reconciler. Reconcile(key) reads the
// Sweep and its trial TrainingJobs from the cache, refreshes each trial from its job (phase, and
// the objective after each pass from status.progress.test*), asks sweep::PlanSweep what to do,
// and does it: trials to stop early are suspended (spec.suspend: true; their workers go, their
// record and checkpoints stay), new trials are created as TrainingJobs owned by the Sweep (owner
// reference with controller: true, so deleting the Sweep deletes them, and labels
// tandem.dev/sweep and tandem.dev/trial). A trial is an ordinary TrainingJob: it is admitted by
// the fair-share scheduler under the template's spec.queue, so a Sweep's trials count against
// that queue and never starve other tenants. Every trial transition records an Event on the
// Sweep; status is written at most once per pass.
//
// The Sweep's status is the search's memory (which parameters each trial got, its values per
// pass); a trial job whose record was lost (the status write failed after the create) is adopted
// from its tandem.dev/parameters annotation. Metrics: tandem_operator_sweep_*.
//
// Thread-safe for different keys (the controller never runs one key twice at once).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "api/section_validator.h"
#include "api/sweep.h"
#include "operator/controller/cluster_cache.h"
#include "operator/controller/trainingjob_reconciler.h"
#include "operator/kube/event_recorder.h"
#include "operator/kube/kube_api.h"

namespace tandem::controller {

struct SweepReconcilerOptions {
  // The checks of the template's spec.model/data/optimizer. Unset: the trainer's.
  std::optional<api::SectionValidators> validators;
  // The clock (seconds since the epoch); injectable for tests.
  std::function<double()> now{};
};

class SweepReconciler {
 public:
  SweepReconciler(kube::KubeApi* api, const ClusterCache* cache, kube::EventRecorder* events,
                  SweepReconcilerOptions options = {});

  ReconcileResult Reconcile(const std::string& key);

  // "ns/<sweep>" for a trial TrainingJob (its tandem.dev/sweep label), or "" when not a trial.
  static std::string SweepKeyOf(const nlohmann::json& job);

 private:
  std::string NowText() const;
  void Event(const nlohmann::json& obj, const std::string& type, const std::string& reason,
             const std::string& message);

  kube::KubeApi* api_;
  const ClusterCache* cache_;
  kube::EventRecorder* events_;
  const SweepReconcilerOptions options_;
  const api::SectionValidators validators_;
};

// The objective `metric` of a trial job's status.progress: (pass, value), or nullopt while it
// has none (no evaluation yet, or no AUC for a cost without one).
std::optional<api::MetricPoint> TrialObjective(const api::TrainingJob& job, const std::string& metric);

}  // namespace tandem::controller
