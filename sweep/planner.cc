#include "sweep/planner.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
    else if (t.phase == api::kTrialPaused) ++c.paused;
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

void ApplyRungSteps(const Plan& plan, std::vector<api::TrialStatus>* trials) {
  for (const RungStep& p : plan.pause) {
    api::TrialStatus& t = (*trials)[p.trial];
    t.phase = api::kTrialPaused;
    t.paused_at = p.rung;
    t.reason = p.reason;
  }
  for (const RungStep& r : plan.resume) {
    api::TrialStatus& t = (*trials)[r.trial];
    t.phase = api::kTrialRunning;
    t.promoted_from = r.rung;
    t.paused_at = 0;
    t.reason.clear();
  }
}

double SpentCpuSeconds(const std::vector<api::TrialStatus>& trials) {
  double spent = 0;
  for (const api::TrialStatus& t : trials) spent += t.cpu_seconds;
  return spent;
}

namespace {

// The passes a trial has trained: its newest value's pass.
int64_t PassesDone(const api::TrialStatus& t) { return t.intermediate.empty() ? 0 : t.intermediate.back().pass; }

}  // namespace

int64_t ShaPromotionPasses(const api::SweepSpec& spec, int64_t passes, int64_t trials) {
  const std::vector<int64_t> rungs = AshaRungs(spec.early_stopping, passes);
  const int64_t eta = std::max<int64_t>(2, spec.early_stopping.reduction_factor);
  int64_t n = trials, total = 0;
  for (size_t k = 0; k < rungs.size(); ++k) {
    n /= eta;  // promoted from rung k
    const int64_t to = k + 1 < rungs.size() ? rungs[k + 1] : passes;
    total += n * (to - rungs[k]);
  }
  return total;
}

namespace {

// spec.budget.cpuSeconds: what is spent, and what the trials that train now will still spend.
struct BudgetView {
  double limit = 0;       // 0: no budget
  double spent = 0;
  double committed = 0;   // expected, until each active trial's next stop
  double mean_rate = 0;   // CPU seconds per pass over the trials measured so far (0: none yet)
  double max_rate = 0;    // the costliest measured trial's
  std::map<size_t, double> rates;  // each measured trial's own

  double RateOf(size_t i) const {
    auto it = rates.find(i);
    return it != rates.end() ? it->second : mean_rate;
  }
  bool Fits(double more) const { return limit <= 0 || spent + committed + more <= limit; }
  // A new trial's expected CPU seconds per pass: the cost-aware sampler's additive model of log
  // cost (PredictedLogCosts) fitted to the measured trials' rates, back to seconds with Duan's
  // smearing factor (the mean of the fit's exp(residual)), so that a sweep whose parameters do
  // not set the cost gets the mean rate exactly. The mean rate until two trials are measured.
  double RateFor(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials,
                 const nlohmann::json& parameters) const {
    if (limit <= 0 || rates.size() < 2) return mean_rate;
    std::vector<api::TrialStatus> priced;
    std::vector<nlohmann::json> points;
    for (const auto& [i, rate] : rates) {
      api::TrialStatus t;
      t.parameters = trials[i].parameters;
      t.cost = rate;
      points.push_back(t.parameters);
      priced.push_back(std::move(t));
    }
    points.push_back(parameters);
    const std::vector<double> log_rate = PredictedLogCosts(spec, priced, points);
    double smear = 0;
    for (size_t k = 0; k < priced.size(); ++k) smear += priced[k].cost / std::exp(log_rate[k]);
    smear /= static_cast<double>(priced.size());
    return std::exp(log_rate.back()) * smear;
  }
};

BudgetView ViewBudget(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials) {
  BudgetView b;
  b.limit = spec.budget.cpu_seconds;
  if (b.limit <= 0) return b;  // no budget: nothing to price (every expected cost reads 0)
  b.spent = SpentCpuSeconds(trials);
  double rate_sum = 0;
  for (size_t i = 0; i < trials.size(); ++i) {
    const int64_t done = PassesDone(trials[i]);
    if (trials[i].cpu_seconds > 0 && done > 0) {
      b.rates[i] = trials[i].cpu_seconds / static_cast<double>(done);
      rate_sum += b.rates[i];
      b.max_rate = std::max(b.max_rate, b.rates[i]);
    }
  }
  if (!b.rates.empty()) b.mean_rate = rate_sum / static_cast<double>(b.rates.size());
  return b;
}

}  // namespace

Plan PlanSweep(const api::SweepSpec& spec, int64_t passes, const std::vector<api::TrialStatus>& trials,
               const Sampler& sampler, const std::string& name_prefix) {
  Plan plan;
  const api::TrialCounts counts = CountTrials(trials);
  const bool asha = UsesRungs(spec.early_stopping);  // asha or sha: pauses at rungs, promotions
  const bool sha = spec.early_stopping.policy == api::kStoppingSha;
  BudgetView budget = ViewBudget(spec, trials);

  if (counts.failed > spec.max_failed_trials) {
    for (size_t i = 0; i < trials.size(); ++i)
      if (!IsFinished(trials[i])) plan.stop.push_back({i, "the sweep failed: too many failed trials"});
    plan.phase = api::kSweepFailed;
    plan.reason = "TooManyFailures";
    plan.message = absl::StrCat(counts.failed, " trials failed; spec.maxFailedTrials allows ", spec.max_failed_trials);
    return plan;
  }

  if (budget.limit > 0 && budget.spent >= budget.limit) {
    // The budget is spent: every trial still training or waiting stops where it is (a stopped
    // trial keeps its values), and the sweep is over.
    const std::string why = absl::StrFormat("budget: %.1f of spec.budget.cpuSeconds %.0f spent", budget.spent,
                                            budget.limit);
    std::vector<api::TrialStatus> view = trials;
    for (size_t i = 0; i < trials.size(); ++i) {
      if (IsFinished(trials[i])) continue;
      plan.stop.push_back({i, why});
      view[i].phase = api::kTrialStopped;
    }
    const bool any_value = FindBestTrial(spec, view).has_value();
    plan.phase = any_value ? api::kSweepSucceeded : api::kSweepFailed;
    plan.reason = "BudgetSpent";
    plan.message = absl::StrCat(why, " after ", trials.size(), " trials",
                                any_value ? "" : "; no trial reported a value of the objective");
    return plan;
  }

  // `view`: the trials as they are once this plan's pauses are carried out, which the
  // promotions are chosen from (a trial paused now may be the one promoted: it then goes on).
  std::vector<api::TrialStatus> view = trials;
  int64_t still_active = 0;
  for (size_t i = 0; i < trials.size(); ++i) {
    const api::TrialStatus& t = trials[i];
    if (IsFinished(t) || t.phase == api::kTrialPaused) continue;
    if (asha && t.phase == api::kTrialRunning) {
      if (std::optional<int64_t> rung = AshaPauseRung(spec, passes, t)) {
        const api::MetricPoint v = *ValueAt(t, *rung);
        plan.pause.push_back({i, *rung, absl::StrFormat("%s: paused at rung %d (%.4g after pass %d)", spec.early_stopping.policy, *rung,
                                                        v.value, v.pass)});
        view[i].phase = api::kTrialPaused;
        view[i].paused_at = *rung;
        continue;
      }
    }
    StopDecision d = t.phase == api::kTrialRunning ? JudgeTrial(spec, passes, t, trials) : StopDecision{};
    if (d.stop) {
      plan.stop.push_back({i, d.reason});
    } else {
      ++still_active;
      const int64_t done = PassesDone(t);
      budget.committed += budget.RateOf(i) * static_cast<double>(NextStop(spec, passes, std::max(done, t.promoted_from)) - done);
    }
  }

  bool exhausted = false;
  bool over_budget = false;  // the next trial would cross spec.budget.cpuSeconds
  bool refused = false;      // a promotion would have (it waits; a cheaper step may still fit)
  int64_t next = static_cast<int64_t>(trials.size());
  std::vector<api::TrialStatus> seen = trials;
  std::vector<size_t> promoted;  // promoted by this plan, or refused for the budget
  // SHA: once a rung has promoted, the bracket is closed: no trial starts after that (a look
  // after the promotions may find budget room that an earlier look did not).
  const bool bracket_closed =
      sha && std::any_of(trials.begin(), trials.end(), [](const api::TrialStatus& t) { return t.promoted_from > 0; });
  while (still_active < spec.parallelism) {
    // ASHA promotes before it starts a new trial; SHA starts every trial first, and promotes
    // only from complete rungs.
    const bool all_started = next >= spec.max_trials || exhausted || over_budget || bracket_closed;
    std::optional<Promotion> p;
    if (!sha || all_started) p = NextPromotion(spec, passes, view, promoted, all_started);
    if (p) {
      const double cost = budget.RateOf(p->trial) * static_cast<double>(NextStop(spec, passes, p->rung) - p->rung);
      promoted.push_back(p->trial);
      if (!budget.Fits(cost)) {
        // A costly trial's next rung may not fit where another promotion or a cheap new trial
        // does: the rest of the budget goes to those instead of ending the sweep with it unused.
        refused = true;
        continue;
      }
      budget.committed += cost;
      auto paused_now = std::find_if(plan.pause.begin(), plan.pause.end(),
                                     [&](const RungStep& s) { return s.trial == p->trial; });
      const bool running = paused_now != plan.pause.end();
      if (running) plan.pause.erase(paused_now);
      plan.resume.push_back({p->trial, p->rung, p->reason, running});
      if (sha) {  // it trains towards the next rung now: a higher rung is not complete before it arrives
        view[p->trial].phase = api::kTrialRunning;
        view[p->trial].promoted_from = p->rung;
        view[p->trial].paused_at = 0;
      }
      ++still_active;
      continue;
    }
    if (all_started) break;
    std::optional<nlohmann::json> params = sampler.Suggest(next, seen);
    if (!params) {
      exhausted = true;
      continue;  // SHA: every trial has started; its complete rungs may promote now
    }
    // Priced at the rate the trials' measured CPU predicts for its parameters (the cost-aware
    // sampler's model; a sweep whose parameters all cost the same gets the mean).
    const double cost = budget.RateFor(spec, trials, *params) * static_cast<double>(NextStop(spec, passes, 0));
    // SHA promotes only after the last trial has started: a start must leave room for the
    // promotions the bracket will then make (Hyperband sizes its brackets the same way), priced
    // at the costliest measured rate: the trials promoted are the best, and where a parameter sets
    // the cost the best are often the costly ones (at the mean rate, a budgeted sweep of 512-wide
    // trials promoted 8 to rung 3 and had too little left to train any to the last pass).
    const double reserve = sha ? budget.max_rate * static_cast<double>(ShaPromotionPasses(spec, passes, next + 1)) : 0;
    if (!budget.Fits(cost + reserve)) {
      over_budget = true;
      continue;
    }
    budget.committed += cost;
    api::TrialStatus t;
    t.index = next;
    t.name = absl::StrCat(name_prefix, next);
    t.parameters = std::move(*params);
    t.phase = api::kTrialPending;
    plan.start.push_back(t);
    view.push_back(t);  // Pending: a rung is not complete before it has reached it
    seen.push_back(std::move(t));
    ++still_active;
    ++next;
  }
  if (next < spec.max_trials && !exhausted && !over_budget && still_active >= spec.parallelism) {
    plan.reason = "TrialsRunning";
    plan.message = absl::StrCat(still_active, " trials active, ", next, " of ", spec.max_trials, " started");
    return plan;
  }
  over_budget = over_budget || refused;
  if (still_active > 0) {
    plan.reason = "TrialsRunning";
    plan.message = over_budget
                       ? absl::StrFormat("%d trials active; the budget (%.1f of %.0f CPU seconds spent, %.1f "
                                         "expected for them) leaves no room for another",
                                         still_active, budget.spent, budget.limit, budget.committed)
                       : absl::StrCat(still_active, " trials active; all ", next, " trials started");
    return plan;
  }
  // Nothing active, nothing to promote, nothing more to start: over. Trials still paused at a
  // rung were never promoted: they end stopped early there.
  for (size_t i = 0; i < view.size(); ++i) {
    if (view[i].phase != api::kTrialPaused) continue;
    const api::MetricPoint v = *ValueAt(view[i], view[i].paused_at);
    plan.stop.push_back({i, absl::StrFormat("%s: paused at rung %d (%.4g after pass %d) and not promoted "
                                            "before the sweep ended%s", spec.early_stopping.policy, view[i].paused_at, v.value, v.pass,
                                            over_budget ? " (the budget had no room left)" : "")});
  }
  for (const auto& [i, why] : plan.stop) {
    view[i].phase = api::kTrialStopped;
    view[i].reason = why;
  }
  const bool any_value = FindBestTrial(spec, view).has_value();
  plan.phase = any_value ? api::kSweepSucceeded : api::kSweepFailed;
  plan.reason = !any_value ? "NoObjective" : over_budget ? "BudgetSpent" : "Completed";
  plan.message = !any_value ? "no trial reported a value of the objective"
                 : over_budget
                     ? absl::StrFormat("all %d trials finished; %.1f of spec.budget.cpuSeconds %.0f spent, too "
                                       "little left for another trial or promotion (%.2f CPU seconds a pass)",
                                       trials.size(), budget.spent, budget.limit, budget.mean_rate)
                     : absl::StrCat("all ", trials.size(), " trials finished", exhausted ? " (the grid is exhausted)" : "");
  return plan;
}

}  // namespace tandem::sweep
