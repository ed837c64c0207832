// Early stopping of a Sweep's trials (spec.earlyStopping), on the objective each trial reports
// after every pass (api::TrialStatus::intermediate). Pure and deterministic.
//
// asha    Asynchronous successive halving as Li et al. (MLSys 2020, "A System for Massively
//         Parallel Hyperparameter Tuning", Algorithm 2) have it: rungs at minPasses * eta^k passes
//         (k = 0, 1, ...; below the template's passes). A trial that reaches its next rung is
//         paused there (its checkpoint kept); whenever a slot is free, the best trial of the
//         highest rung that has one in its top floor(n / eta) (n: trials with a value at that
//         rung) not yet promoted is promoted (resumed from its checkpoint); otherwise a new trial
//         starts. Trials still paused when the sweep ends are stopped. JudgeTrial never stops an
//         ASHA trial: the planner pauses (AshaPauseRung) and promotes (NextPromotion).
//         With bootstrapCount b: no promotion at all before b trials count at the first rung
//         (or no further trial will start), so that the first trials, which a rung has seen
//         alone, are ranked among b before any of them trains on (Optuna's bootstrap_count; Li
//         et al.'s mispromotions). The later rungs then promote as ASHA does.
// sha     Successive halving, synchronous (Jamieson & Talwalkar, AISTATS 2016; as one bracket of
//         Hyperband or BOHB): ASHA's rungs and pauses, but every trial (maxTrials) starts before
//         any promotion, and a rung promotes its top floor(n / eta) only once it is complete:
//         every trial that can still reach it has (RungComplete). ASHA promotes the best of the
//         few trials it has seen at a rung, and early in a sweep those are often not the best
//         of all (Li et al. call them mispromotions); a sweep with a CPU budget spends much of it
//         on them. SHA waits, and leaves slots idle at each rung's end instead.
// median  Median stopping (Golovin et al., 2017): from minPasses on, at each new pass, a trial stops
//         when its best value so far is worse than the median of the other trials' best values up
//         to the same pass, once at least `startupTrials` other trials have reached that pass.
//
// A trial's "value at pass r" is its first recorded value at a pass >= r: the operator samples
// progress every few seconds and may miss a pass; a trial that has not reached r has none.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "api/sweep.h"

namespace tandem::sweep {

struct StopDecision {
  bool stop = false;
  std::string reason;  // why it stops, with the figures: shown in status and events
};

// Judges `trial` (running) at its newest intermediate value, against every trial of the sweep
// (`trials`; `trial` may be among them, matched by index). `passes`: the template's spec.passes
// (no rung at or past the last pass: a trial that finishes is never stopped).
StopDecision JudgeTrial(const api::SweepSpec& spec, int64_t passes, const api::TrialStatus& trial,
                        const std::vector<api::TrialStatus>& trials);

// Whether the policy pauses trials at rungs and promotes them (asha, sha).
bool UsesRungs(const api::SweepEarlyStopping& es);

// The ASHA (and SHA) rungs below `passes`: minPasses * eta^k.
std::vector<int64_t> AshaRungs(const api::SweepEarlyStopping& es, int64_t passes);

// Where a trial that trains on from pass `from` stops next: the next rung above `from` (asha,
// sha), else the last pass.
int64_t NextStop(const api::SweepSpec& spec, int64_t passes, int64_t from);

// The first value of `t` at a pass >= `pass`, with the pass it was recorded at.
std::optional<api::MetricPoint> ValueAt(const api::TrialStatus& t, int64_t pass);

// ASHA: the rung a Running trial must pause at now: the lowest rung above the one it was last
// promoted from (t.promoted_from) at which it has a value; nullopt while it has not reached it
// (a trial then pauses at its next rung even if a late look shows it past a further one).
std::optional<int64_t> AshaPauseRung(const api::SweepSpec& spec, int64_t passes, const api::TrialStatus& t);

// Whether `t` counts at `rung`: it has a value there and was admitted to it (a Paused trial, or a
// Stopped one that was paused, counts only up to the rung it waits or waited at: values it
// reported past it while its pause reached it are not a promotion).
bool CountsAtRung(const api::TrialStatus& t, int64_t rung);

struct Promotion {
  size_t trial = 0;  // index into the trials
  int64_t rung = 0;  // the pass of the rung it is promoted from
  std::string reason;
};

// ASHA's get_job (Li et al., Algorithm 2): for each rung from the highest down, the trials counted
// there (CountsAtRung), best first (ties: lower index first); of its top floor(n / eta), the best
// that is Paused at this rung and not in `taken`. nullopt: nothing to promote (start a new trial).
// SHA: the same choice, from the lowest rung up and only at complete rungs (RungComplete; it
// needs `all_started`: no further trial will start). ASHA with bootstrapCount: nothing while
// fewer trials count at the first rung, unless `all_started`. `taken`: promoted (or refused) by
// the caller already.
std::optional<Promotion> NextPromotion(const api::SweepSpec& spec, int64_t passes,
                                       const std::vector<api::TrialStatus>& trials,
                                       const std::vector<size_t>& taken = {}, bool all_started = false);

// SHA: rung `rung` is complete when no further trial will start (`all_started`), no trial that
// is Pending, or Running towards a stop at or below the rung, may still add a value there, and
// every lower rung has promoted its top floor(n / eta) (or `taken` holds them). Trials that
// failed or were stopped on the way count as arrived: they never will.
bool RungComplete(const api::SweepSpec& spec, int64_t passes, const std::vector<api::TrialStatus>& trials,
                  int64_t rung, const std::vector<size_t>& taken, bool all_started);

}  // namespace tandem::sweep
