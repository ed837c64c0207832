#include "sweep/early_stopping.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace tandem::sweep {
namespace {

// The best value of `t` among its values at passes <= `pass`.
std::optional<double> BestUpTo(const api::TrialStatus& t, int64_t pass, const std::string& goal) {
  std::optional<double> best;
  for (const api::MetricPoint& m : t.intermediate)
    if (m.pass <= pass && (!best || api::IsBetter(goal, m.value, *best))) best = m.value;
  return best;
}

StopDecision JudgeMedian(const api::SweepSpec& spec, const api::TrialStatus& trial,
                         const std::vector<api::TrialStatus>& trials, const std::string& goal) {
  const int64_t pass = trial.intermediate.back().pass;
  if (pass < spec.early_stopping.min_passes) return {};
  std::vector<double> peers;
  for (const api::TrialStatus& t : trials) {
    if (t.index == trial.index || t.intermediate.empty() || t.intermediate.back().pass < pass) continue;
    if (std::optional<double> b = BestUpTo(t, pass, goal)) peers.push_back(*b);
  }
  if (static_cast<int64_t>(peers.size()) < spec.early_stopping.startup_trials) return {};
  std::sort(peers.begin(), peers.end());
  const size_t m = peers.size();
  const double median = m % 2 == 1 ? peers[m / 2] : 0.5 * (peers[m / 2 - 1] + peers[m / 2]);
  const double mine = *BestUpTo(trial, pass, goal);
  if (!api::IsBetter(goal, median, mine)) return {};
  return {true, absl::StrFormat("median: best %.4g up to pass %d is worse than the median %.4g of %d other trials",
                                mine, pass, median, m)};
}

}  // namespace

bool UsesRungs(const api::SweepEarlyStopping& es) {
  return es.policy == api::kStoppingAsha || es.policy == api::kStoppingSha;
}

std::vector<int64_t> AshaRungs(const api::SweepEarlyStopping& es, int64_t passes) {
  std::vector<int64_t> rungs;
  const int64_t eta = std::max<int64_t>(2, es.reduction_factor);
  for (int64_t r = std::max<int64_t>(1, es.min_passes); r < passes; r *= eta) rungs.push_back(r);
  return rungs;
}

int64_t NextStop(const api::SweepSpec& spec, int64_t passes, int64_t from) {
  if (UsesRungs(spec.early_stopping))
    for (int64_t rung : AshaRungs(spec.early_stopping, passes))
      if (rung > from) return rung;
  return passes;
}

std::optional<api::MetricPoint> ValueAt(const api::TrialStatus& t, int64_t pass) {
  for (const api::MetricPoint& m : t.intermediate)
    if (m.pass >= pass) return m;
  return std::nullopt;
}

std::optional<int64_t> AshaPauseRung(const api::SweepSpec& spec, int64_t passes, const api::TrialStatus& t) {
  for (int64_t r : AshaRungs(spec.early_stopping, passes)) {
    if (r <= t.promoted_from) continue;
    if (ValueAt(t, r)) return r;
    return std::nullopt;
  }
  return std::nullopt;
}

bool CountsAtRung(const api::TrialStatus& t, int64_t rung) {
  if (t.paused_at > 0 && t.paused_at < rung && (t.phase == api::kTrialPaused || t.phase == api::kTrialStopped))
    return false;
  return ValueAt(t, rung).has_value();
}

namespace {

// The trials counted at `rung`, best first (ties: lower index first): (value there, trial).
std::vector<std::pair<double, size_t>> RankedAt(const std::vector<api::TrialStatus>& trials, int64_t rung,
                                                const std::string& goal) {
  std::vector<std::pair<double, size_t>> at;
  for (size_t i = 0; i < trials.size(); ++i)
    if (CountsAtRung(trials[i], rung)) at.push_back({ValueAt(trials[i], rung)->value, i});
  std::stable_sort(at.begin(), at.end(),
                   [&](const auto& a, const auto& b) { return api::IsBetter(goal, a.first, b.first); });
  return at;
}

bool Taken(const std::vector<size_t>& taken, size_t i) {
  return std::find(taken.begin(), taken.end(), i) != taken.end();
}

}  // namespace

bool RungComplete(const api::SweepSpec& spec, int64_t passes, const std::vector<api::TrialStatus>& trials,
                  int64_t rung, const std::vector<size_t>& taken, bool all_started) {
  if (!all_started) return false;
  for (const api::TrialStatus& t : trials) {
    if (t.phase == api::kTrialPending) return false;
    if (t.phase != api::kTrialRunning) continue;
    // A Running trial trains from max(its passes, the rung it was promoted from) to the next stop.
    const int64_t done = t.intermediate.empty() ? 0 : t.intermediate.back().pass;
    if (NextStop(spec, passes, std::max(done, t.promoted_from)) <= rung) return false;
  }
  const std::vector<int64_t> rungs = AshaRungs(spec.early_stopping, passes);
  const std::string goal = api::ObjectiveGoal(spec.objective);
  const int64_t eta = std::max<int64_t>(2, spec.early_stopping.reduction_factor);
  for (int64_t lower : rungs) {
    if (lower >= rung) break;
    const auto at = RankedAt(trials, lower, goal);
    const size_t top = at.size() / static_cast<size_t>(eta);
    for (size_t k = 0; k < top; ++k) {
      const api::TrialStatus& t = trials[at[k].second];
      if (t.phase == api::kTrialPaused && t.paused_at == lower && !Taken(taken, at[k].second)) return false;
    }
  }
  return true;
}

std::optional<Promotion> NextPromotion(const api::SweepSpec& spec, int64_t passes,
                                       const std::vector<api::TrialStatus>& trials,
                                       const std::vector<size_t>& taken, bool all_started) {
  const bool sha = spec.early_stopping.policy == api::kStoppingSha;
  if (!UsesRungs(spec.early_stopping)) return std::nullopt;
  const std::string goal = api::ObjectiveGoal(spec.objective);
  const int64_t eta = std::max<int64_t>(2, spec.early_stopping.reduction_factor);
  std::vector<int64_t> rungs = AshaRungs(spec.early_stopping, passes);
  // ASHA with bootstrapCount: nothing is promoted before that many trials count at the first rung.
  if (!sha && !all_started && !rungs.empty() &&
      static_cast<int64_t>(RankedAt(trials, rungs.front(), goal).size()) < spec.early_stopping.bootstrap_count)
    return std::nullopt;
  // ASHA: the highest rung first. SHA: the lowest first, and a rung only once it is complete
  // (a higher one is not complete before the lower ones have promoted).
  if (!sha) std::reverse(rungs.begin(), rungs.end());
  for (int64_t r : rungs) {
    if (sha && !RungComplete(spec, passes, trials, r, taken, all_started)) return std::nullopt;
    const auto at = RankedAt(trials, r, goal);
    const size_t n = at.size();
    const size_t top = n / static_cast<size_t>(eta);
    for (size_t k = 0; k < top; ++k) {
      const api::TrialStatus& t = trials[at[k].second];
      if (t.phase != api::kTrialPaused || t.paused_at != r) continue;
      if (Taken(taken, at[k].second)) continue;
      return Promotion{at[k].second, r,
                       absl::StrFormat("%s: %.4g at rung %d is number %d of %d there (the top %d are promoted)",
                                       sha ? "sha" : "asha", at[k].first, r, k + 1, n, top)};
    }
  }
  return std::nullopt;
}

StopDecision JudgeTrial(const api::SweepSpec& spec, int64_t passes, const api::TrialStatus& trial,
                        const std::vector<api::TrialStatus>& trials) {
  if (trial.intermediate.empty() || trial.intermediate.back().pass >= passes) return {};
  const std::string goal = api::ObjectiveGoal(spec.objective);
  if (spec.early_stopping.policy == api::kStoppingMedian) return JudgeMedian(spec, trial, trials, goal);
  return {};
}

}  // namespace tandem::sweep
