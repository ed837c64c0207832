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

// ASHA: a trial to pause at a rung, or to promote from one.
struct RungStep {
  size_t trial = 0;     // index into `trials`
  int64_t rung = 0;     // the rung's pass
  std::string reason;
  bool running = false;  // resume only: it is Running (reached the rung in this look and is
                         // promoted at once): it goes on without pausing
};

struct Plan {
  std::vector<api::TrialStatus> start;               // new trials, phase Pending, in index order
  // Trials to end Stopped, and why: judged by median stopping; every active or Paused trial when
  // the sweep fails; Paused trials never promoted when it is over (their jobs are already
  // suspended: only their phase changes).
  std::vector<std::pair<size_t, std::string>> stop;
  std::vector<RungStep> pause;   // ASHA: Running trials to pause (phase Paused, paused_at = rung)
  std::vector<RungStep> resume;  // ASHA: Paused trials promoted (phase Running, promoted_from = rung)
  std::string phase = api::kSweepRunning;            // Running | Succeeded | Failed
  std::string reason;   // CamelCase, for the condition: TrialsRunning, Completed, TooManyFailures, ...
  std::string message;  // for people
};

// `trials`: every trial so far, index order (trials[i].index == i), with current phases and
// values. `passes`: the template's spec.passes. `name_prefix`: trial names are prefix + index.
// Rules: a trial fails the sweep when more than maxFailedTrials have failed (every active or
// paused trial is then stopped); running trials are judged by spec.earlyStopping (ASHA: a
// Running trial at its next rung is paused; median: stopped); while fewer than `parallelism`
// are active (Pending or Running), each free slot goes to ASHA's next promotion
// (NextPromotion), else to a new trial while fewer than maxTrials exist and the sampler has
// points left; the sweep is over when nothing is active, nothing can be promoted and nothing
// can start (Paused trials are then stopped; Succeeded if some trial has a value, else Failed).
// spec.budget.cpuSeconds: once the trials' cpuSeconds add up to it, every unfinished trial is
// stopped and the sweep ends (reason BudgetSpent); before, a promotion or a new trial starts only
// if what is spent, plus what the active trials are expected to spend until their next stop (a
// rung or the last pass), plus its own expected cost fits (CPU seconds per pass: the trial's own
// when measured, else the mean of the measured trials; nothing is expected before any trial is);
// with SHA a new trial also needs room for the bracket's promotions (ShaPromotionPasses), and none
// starts once a rung has promoted.
// ApplyRungSteps writes a plan's pauses and promotions into the trials (both executors call it;
// stops they record themselves, when the trial's processes or pods are gone).
Plan PlanSweep(const api::SweepSpec& spec, int64_t passes, const std::vector<api::TrialStatus>& trials,
               const Sampler& sampler, const std::string& name_prefix);

// SHA: the trial passes one bracket of `trials` trials spends on promotions: floor(n/eta) trials
// promoted from each rung (n: those at it) train to the next rung or the last pass. With rungs 1
// and 3 of 9 passes and eta 3, 27 trials: 9 x 2 + 3 x 6 = 36. PlanSweep keeps that much (at the
// costliest measured trial's rate) free of a budget before it starts another trial.
int64_t ShaPromotionPasses(const api::SweepSpec& spec, int64_t passes, int64_t trials);

// Sets phase, reason, paused_at and promoted_from of the trials a plan pauses and resumes (not
// its stops, nor its new trials: the caller appends them once started).
void ApplyRungSteps(const Plan& plan, std::vector<api::TrialStatus>* trials);

api::TrialCounts CountTrials(const std::vector<api::TrialStatus>& trials);

// The best trial: the best objective among Succeeded trials; while none has succeeded, among
// all trials with a value. nullopt when no trial has one.
std::optional<api::BestTrial> FindBestTrial(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials);

// Records the objective after `pass` (1-based) on `trial`: appended, or replacing a value of the
// same pass; `objective` follows the newest value. Returns true when anything changed.
bool RecordValue(api::TrialStatus* trial, int64_t pass, double value);

// The CPU seconds the trials have used together (their cpuSeconds): what spec.budget counts.
double SpentCpuSeconds(const std::vector<api::TrialStatus>& trials);

// True for Succeeded, Failed and Stopped.
bool IsFinished(const api::TrialStatus& trial);

}  // namespace tandem::sweep
