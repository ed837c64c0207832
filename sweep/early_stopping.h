// Early stopping of a Sweep's trials (spec.earlyStopping), on the objective each trial reports
// after every pass (api::TrialStatus::intermediate). Pure and deterministic.
//
// asha    Asynchronous successive halving (Li et al., 2020), in its stopping form: rungs at
//         minPasses * eta^k passes (k = 0, 1, ...; below the template's passes). A trial is judged
//         at the highest rung it has reached, at every look until it reaches the next: with n
//         trials holding a value at that rung (itself included), it goes on only if its value is
//         among the best max(1, floor(n / eta)). The first trial at a rung goes on; a trial that
//         went on may still be stopped before its next rung when later trials do better there
//         (judging at every look, not once, makes the rule independent of how often progress is
//         seen: the operator samples it every few seconds, `tandem run` reads events as they come).
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

// The ASHA rungs below `passes`: minPasses * eta^k.
std::vector<int64_t> AshaRungs(const api::SweepEarlyStopping& es, int64_t passes);

// The first value of `t` at a pass >= `pass`, with the pass it was recorded at.
std::optional<api::MetricPoint> ValueAt(const api::TrialStatus& t, int64_t pass);

}  // namespace tandem::sweep
