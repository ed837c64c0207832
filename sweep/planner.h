// One step of a Sweep, as pure code over its trials: which trials to stop early, which to start
// (with the sampler's parameters), whether the sweep is over, and the best trial. The operator's
// Sweep reconciler and `tandem run`'s local sweep both call PlanSweep after refreshing the trials'
// phases and values, then carry the plan out (create or suspend TrainingJobs; start or stop local
// jobs), so the two run the same search.
//
//   std::unique_ptr<sweep::Sampler> sampler = sweep::NewSampler(spec);
//   sweep::Plan plan = sweep::PlanSweep(spec, passes, trials, *sampler, "fmnist-");
//   for (auto& [i, why] : plan.stop) ...   for (api::TrialStatus& t : plan.start) ...
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/sweep.h"
#include "sweep/sampler.h"

namespace tandem::sweep {

struct Plan {
  std::vector<api::TrialStatus> start;               // new trials, phase Pending, in index order
  std::vector<std::pair<size_t, std::string>> stop;  // index into `trials`, and why
  std::string phase = api::kSweepRunning;            // Running | Succeeded | Failed
  std::string reason;   // CamelCase, for the condition: TrialsRunning, Completed, TooManyFailures, ...
  std::string message;  // for people
};

// `trials`: every trial so far, index order (trials[i].index == i), with current phases and
// values. `passes`: the template's spec.passes. `name_prefix`: trial names are prefix + index.
// Rules: a trial fails the sweep when more than maxFailedTrials have failed (every active
// trial is then stopped); running trials are judged by spec.earlyStopping; new trials start
// while fewer than `parallelism` are active, fewer than maxTrials exist and the sampler has
// points left; the sweep is over when nothing is active and nothing can start (Succeeded if
// some trial has a value, else Failed).
Plan PlanSweep(const api::SweepSpec& spec, int64_t passes, const std::vector<api::TrialStatus>& trials,
               const Sampler& sampler, const std::string& name_prefix);

api::TrialCounts CountTrials(const std::vector<api::TrialStatus>& trials);

// The best trial: the best objective among Succeeded trials; while none has succeeded, among
// all trials with a value. nullopt when no trial has one.
std::optional<api::BestTrial> FindBestTrial(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials);

// Records the objective after `pass` (1-based) on `trial`: appended, or replacing a value of the
// same pass; `objective` follows the newest value. Returns true when anything changed.
bool RecordValue(api::TrialStatus* trial, int64_t pass, double value);

// True for Succeeded, Failed and Stopped.
bool IsFinished(const api::TrialStatus& trial);

}  // namespace tandem::sweep
