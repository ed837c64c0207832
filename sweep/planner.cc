#include "sweep/planner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "sweep/early_stopping.h"

namespace tandem::sweep {

bool IsFinished(const api::TrialStatus& t) {
  return t.phase == api::kTrialSucceeded || t.phase == api::kTrialFailed || t.phase == api::kTrialStopped;
}

bool RecordValue(api::TrialStatus* t, int64_t pass, double value) {
  auto it = std::lower_bound(t->intermediate.begin(), t->intermediate.end(), pass,
                             [](const api::MetricPoint& m, int64_t p) { return m.pass < p; });
  bool changed = false;
  if (it != t->intermediate.end() && it->pass == pass) {
    if (it->value != value) {
      it->value = value;
      changed = true;
    }
  } else {
    t->intermediate.insert(it, {pass, value});
    changed = true;
  }
  const double newest = t->intermediate.back().value;
  if (!t->objective || *t->objective != newest) {
    t->objective = newest;
    changed = true;
  }
  return changed;
}

api::TrialCounts CountTrials(const std::vector<api::TrialStatus>& trials) {
  api::TrialCounts c;
  for (const api::TrialStatus& t : trials) {
    if (t.phase == api::kTrialPending) ++c.pending;
    else if (t.phase == api::kTrialRunning) ++c.running;
    else if (t.phase == api::kTrialSucceeded) ++c.succeeded;
    else if (t.phase == api::kTrialFailed) ++c.failed;
    else if (t.phase == api::kTrialStopped) ++c.stopped;
  }
  return c;
}

std::optional<api::BestTrial> FindBestTrial(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials) {
  const std::string goal = api::ObjectiveGoal(spec.objective);
  const api::TrialStatus* best = nullptr;
  for (bool succeeded_only : {true, false}) {
    for (const api::TrialStatus& t : trials) {
      if (!t.objective || t.intermediate.empty()) continue;
      if (succeeded_only && t.phase != api::kTrialSucceeded) continue;
      if (best == nullptr || api::IsBetter(goal, *t.objective, *best->objective)) best = &t;
    }
    if (best != nullptr) break;
  }
  if (best == nullptr) return std::nullopt;
  return api::BestTrial{best->name, best->parameters, *best->objective, best->intermediate.back().pass};
}

Plan PlanSweep(const api::SweepSpec& spec, int64_t passes, const std::vector<api::TrialStatus>& trials,
               const Sampler& sampler, const std::string& name_prefix) {
  Plan plan;
  const api::TrialCounts counts = CountTrials(trials);
  std::vector<size_t> active;
  for (size_t i = 0; i < trials.size(); ++i)
    if (!IsFinished(trials[i])) active.push_back(i);

  if (counts.failed > spec.max_failed_trials) {
    for (size_t i : active) plan.stop.push_back({i, "the sweep failed: too many failed trials"});
    plan.phase = api::kSweepFailed;
    plan.reason = "TooManyFailures";
    plan.message = absl::StrCat(counts.failed, " trials failed; spec.maxFailedTrials allows ", spec.max_failed_trials);
    return plan;
  }

  int64_t still_active = 0;
  for (size_t i : active) {
    const api::TrialStatus& t = trials[i];
    StopDecision d = t.phase == api::kTrialRunning ? JudgeTrial(spec, passes, t, trials) : StopDecision{};
    if (d.stop) plan.stop.push_back({i, d.reason});
    else ++still_active;
  }

  bool exhausted = false;
  int64_t next = static_cast<int64_t>(trials.size());
  std::vector<api::TrialStatus> seen = trials;
  while (still_active < spec.parallelism && next < spec.max_trials) {
    std::optional<nlohmann::json> params = sampler.Suggest(next, seen);
    if (!params) {
      exhausted = true;
      break;
    }
    api::TrialStatus t;
    t.index = next;
    t.name = absl::StrCat(name_prefix, next);
    t.parameters = std::move(*params);
    t.phase = api::kTrialPending;
    plan.start.push_back(t);
    seen.push_back(std::move(t));
    ++still_active;
    ++next;
  }
  if (next < spec.max_trials && !exhausted && still_active >= spec.parallelism) {
    plan.reason = "TrialsRunning";
    plan.message = absl::StrCat(still_active, " trials active, ", next, " of ", spec.max_trials, " started");
    return plan;
  }
  if (still_active > 0) {
    plan.reason = "TrialsRunning";
    plan.message = absl::StrCat(still_active, " trials active; all ", next, " trials started");
    return plan;
  }
  // Nothing active, nothing more to start: over.
  const bool any_value = FindBestTrial(spec, trials).has_value();
  plan.phase = any_value ? api::kSweepSucceeded : api::kSweepFailed;
  plan.reason = any_value ? "Completed" : "NoObjective";
  plan.message = any_value ? absl::StrCat("all ", trials.size(), " trials finished",
                                          exhausted ? " (the grid is exhausted)" : "")
                           : "no trial reported a value of the objective";
  return plan;
}

}  // namespace tandem::sweep
