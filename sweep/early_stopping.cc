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

StopDecision JudgeAsha(const api::SweepSpec& spec, int64_t passes, const api::TrialStatus& trial,
                       const std::vector<api::TrialStatus>& trials, const std::string& goal) {
  const int64_t newest = trial.intermediate.back().pass;
  const int64_t eta = std::max<int64_t>(2, spec.early_stopping.reduction_factor);
  // The highest rung the trial has reached: it is judged there until it reaches the next one.
  std::optional<int64_t> rung;
  for (int64_t r : AshaRungs(spec.early_stopping, passes))
    if (r <= newest) rung = r;
  if (!rung) return {};
  const api::MetricPoint at = *ValueAt(trial, *rung);
  std::vector<double> peers;
  for (const api::TrialStatus& t : trials) {
    if (t.index == trial.index) continue;
    if (std::optional<api::MetricPoint> v = ValueAt(t, *rung)) peers.push_back(v->value);
  }
  const int64_t n = static_cast<int64_t>(peers.size()) + 1;
  const int64_t keep = std::max<int64_t>(1, n / eta);
  int64_t better = 0;  // peers strictly better: ties go the trial's way
  for (double v : peers)
    if (api::IsBetter(goal, v, at.value)) ++better;
  if (better < keep) return {};
  std::sort(peers.begin(), peers.end(), [&](double a, double b) { return api::IsBetter(goal, a, b); });
  return {true, absl::StrFormat("asha: %.4g after pass %d is not among the best %d of %d trials at rung %d "
                                "(cutoff %.4g)",
                                at.value, at.pass, keep, n, *rung, peers[static_cast<size_t>(keep - 1)])};
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

std::vector<int64_t> AshaRungs(const api::SweepEarlyStopping& es, int64_t passes) {
  std::vector<int64_t> rungs;
  const int64_t eta = std::max<int64_t>(2, es.reduction_factor);
  for (int64_t r = std::max<int64_t>(1, es.min_passes); r < passes; r *= eta) rungs.push_back(r);
  return rungs;
}

std::optional<api::MetricPoint> ValueAt(const api::TrialStatus& t, int64_t pass) {
  for (const api::MetricPoint& m : t.intermediate)
    if (m.pass >= pass) return m;
  return std::nullopt;
}

StopDecision JudgeTrial(const api::SweepSpec& spec, int64_t passes, const api::TrialStatus& trial,
                        const std::vector<api::TrialStatus>& trials) {
  if (trial.intermediate.empty() || trial.intermediate.back().pass >= passes) return {};
  const std::string goal = api::ObjectiveGoal(spec.objective);
  if (spec.early_stopping.policy == api::kStoppingAsha) return JudgeAsha(spec, passes, trial, trials, goal);
  if (spec.early_stopping.policy == api::kStoppingMedian) return JudgeMedian(spec, trial, trials, goal);
  return {};
}

}  // namespace tandem::sweep
