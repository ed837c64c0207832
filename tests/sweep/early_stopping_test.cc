#include "sweep/early_stopping.h"

#include "gtest/gtest.h"
#include "tests/sweep/sweep_spec.h"

namespace tandem::sweep {
namespace {

using testing::TestSpec;
using testing::Trial;

api::SweepSpec Asha(int64_t min_passes, int64_t eta) {
  api::SweepSpec s = TestSpec();
  s.early_stopping.policy = api::kStoppingAsha;
  s.early_stopping.min_passes = min_passes;
  s.early_stopping.reduction_factor = eta;
  return s;
}

TEST(AshaTest, RungsAreGeometricAndBelowTheLastPass) {
  api::SweepEarlyStopping es{.policy = api::kStoppingAsha, .min_passes = 1, .reduction_factor = 3};
  EXPECT_EQ(AshaRungs(es, 10), (std::vector<int64_t>{1, 3, 9}));
  EXPECT_EQ(AshaRungs(es, 9), (std::vector<int64_t>{1, 3}));
  es.min_passes = 2;
  es.reduction_factor = 2;
  EXPECT_EQ(AshaRungs(es, 9), (std::vector<int64_t>{2, 4, 8}));
  EXPECT_TRUE(AshaRungs(es, 2).empty());
}

// A trial of a promotion table: its phase, its values, the rung it waits at (Paused) and the
// rung it was promoted from.
struct T {
  std::string phase;
  std::vector<api::MetricPoint> values;
  int64_t paused_at = 0;
  int64_t promoted_from = 0;
};

// The trials of a table row: trial i has index i.
std::vector<api::TrialStatus> TrialsOf(const std::vector<T>& rows) {
  std::vector<api::TrialStatus> trials;
  for (size_t i = 0; i < rows.size(); ++i) {
    api::TrialStatus t = Trial(static_cast<int64_t>(i), rows[i].phase, rows[i].values);
    t.paused_at = rows[i].paused_at;
    t.promoted_from = rows[i].promoted_from;
    trials.push_back(t);
  }
  return trials;
}

struct PromotionCase {
  const char* name;
  std::vector<T> trials;  // trial i has index i
  int64_t promote;        // the trial promoted, or -1: none (a free slot starts a new trial)
  int64_t rung = 0;       // the rung it is promoted from
  std::vector<size_t> taken = {};  // already promoted in this plan
};

const std::string P = api::kTrialPaused, R = api::kTrialRunning, S = api::kTrialSucceeded,
                  X = api::kTrialStopped, F = api::kTrialFailed;

// Checks NextPromotion's answer `p` against a table row: `promote` < 0 means none.
void ExpectPromotion(const char* name, const std::optional<Promotion>& p, int64_t promote, int64_t rung) {
  if (promote < 0) {
    EXPECT_FALSE(p.has_value()) << name << ": promoted " << p->trial << " (" << p->reason << ")";
    return;
  }
  ASSERT_TRUE(p.has_value()) << name;
  EXPECT_EQ(static_cast<int64_t>(p->trial), promote) << name << ": " << p->reason;
  EXPECT_EQ(p->rung, rung) << name;
}

// ASHA's get_job (Li et al. 2020, Algorithm 2), 9 passes, eta 3: rungs at passes 1 and 3. Of the
// n trials with a value at a rung, the top floor(n/3) are promotable; the best of them waiting
// (Paused) at that rung is promoted, the highest rung first; none: a new trial.
TEST(AshaTest, PromotionRule) {
  const std::vector<PromotionCase> cases = {
      {"nothing yet", {}, -1},
      {"alone at a rung: floor(1/3) = 0, nothing is promoted (the first trial does not go on)",
       {{P, {{1, 0.9}}, 1}}, -1},
      {"two at a rung: still none", {{P, {{1, 0.9}}, 1}, {P, {{1, 0.5}}, 1}}, -1},
      {"three: the best is promoted", {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}}, 1, 1},
      {"three, the best already promoted (Running past the rung): none",
       {{P, {{1, 0.5}}, 1}, {R, {{1, 0.9}, {2, 0.91}}, 0, 1}, {P, {{1, 0.7}}, 1}}, -1},
      {"six: the top two, the second once the first is promoted",
       {{P, {{1, 0.1}}, 1}, {R, {{1, 0.9}}, 0, 1}, {P, {{1, 0.8}}, 1}, {P, {{1, 0.3}}, 1}, {P, {{1, 0.2}}, 1},
        {P, {{1, 0.4}}, 1}},
       2, 1},
      {"asynchronous: trials still running before the rung do not count there",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {R, {}}, {R, {}}, {R, {}}}, -1},
      {"asynchronous: a failed trial's value counts at its rung, it is never promoted",
       {{F, {{1, 0.99}}}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.5}}, 1}, {P, {{1, 0.4}}, 1}, {P, {{1, 0.3}}, 1}},
       -1},
      {"with six the top two: the failed one and the next",
       {{F, {{1, 0.99}}}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.5}}, 1}, {P, {{1, 0.4}}, 1}, {P, {{1, 0.3}}, 1},
        {X, {{1, 0.1}}, 1}},
       1, 1},
      {"the highest rung first: rung 3 has a promotable trial, rung 1 a better one",
       {{P, {{1, 0.5}, {3, 0.8}}, 3, 1}, {S, {{1, 0.6}, {3, 0.7}, {9, 0.75}}, 0, 3},
        {P, {{1, 0.4}, {3, 0.6}}, 3, 1}, {P, {{1, 0.95}}, 1}, {P, {{1, 0.1}}, 1}, {P, {{1, 0.2}}, 1}},
       0, 3},
      {"rung 3 has none in its top third: rung 1's best",
       {{P, {{1, 0.5}, {3, 0.6}}, 3, 1}, {S, {{1, 0.6}, {3, 0.7}, {9, 0.75}}, 0, 3},
        {P, {{1, 0.4}, {3, 0.65}}, 3, 1}, {P, {{1, 0.95}}, 1}, {P, {{1, 0.1}}, 1}, {P, {{1, 0.2}}, 1}},
       3, 1},
      {"a paused trial's values past its rung (seen while its pause reached it) do not count higher up",
       {{P, {{1, 0.9}, {2, 0.9}, {3, 0.99}}, 1}, {P, {{1, 0.8}, {3, 0.5}}, 3, 1}, {P, {{1, 0.7}, {3, 0.4}}, 3, 1},
        {P, {{1, 0.6}, {3, 0.3}}, 3, 1}, {P, {{1, 0.1}}, 1}, {P, {{1, 0.2}}, 1}},
       1, 3},
      {"taken in this plan already: the next one",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}, {P, {{1, 0.8}}, 1}, {P, {{1, 0.1}}, 1},
        {P, {{1, 0.2}}, 1}},
       3, 1, {1}},
      {"ties: the lower index first",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.9}}, 1}}, 1, 1},
  };
  const api::SweepSpec s = Asha(1, 3);
  for (const PromotionCase& c : cases) {
    ExpectPromotion(c.name, NextPromotion(s, 9, TrialsOf(c.trials), c.taken), c.promote, c.rung);
  }
}

// SHA (synchronous successive halving), 9 passes, eta 3: ASHA's choice, but only from a complete
// rung (every trial started, none still training towards it, the lower rungs' top thirds
// promoted), and the lowest rung first. `all_started`: no further trial will start.
TEST(ShaTest, PromotesOnlyFromCompleteRungsLowestFirst) {
  struct ShaCase {
    const char* name;
    std::vector<T> trials;
    bool all_started;
    int64_t promote;
    int64_t rung = 0;
    std::vector<size_t> taken = {};
  };
  const std::vector<ShaCase> cases = {
      {"three at rung 1, but more trials are to start: none (ASHA would promote the 0.9)",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}}, false, -1},
      {"all started, three at rung 1: the best", {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}}, true, 1, 1},
      {"a trial still trains towards rung 1: none",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}, {R, {}}}, true, -1},
      {"a trial not yet started (Pending): none",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}, {api::kTrialPending, {}}}, true, -1},
      {"a trial that failed before rung 1 never arrives: rung 1 is complete",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}, {F, {}}}, true, 1, 1},
      {"six at rung 1, the best promoted and training towards rung 3: the second best",
       {{P, {{1, 0.1}}, 1}, {R, {{1, 0.9}}, 0, 1}, {P, {{1, 0.8}}, 1}, {P, {{1, 0.3}}, 1}, {P, {{1, 0.2}}, 1},
        {P, {{1, 0.4}}, 1}},
       true, 2, 1},
      {"rung 3 waits while rung 1's promoted trials still train towards it",
       {{P, {{1, 0.1}}, 1}, {P, {{1, 0.9}, {3, 0.9}}, 3, 1}, {R, {{1, 0.8}, {2, 0.8}}, 0, 1}, {P, {{1, 0.3}}, 1},
        {P, {{1, 0.2}}, 1}, {P, {{1, 0.4}}, 1}},
       true, -1},
      {"the lowest rung first: rung 1's top third not all promoted yet, though rung 3 could",
       {{P, {{1, 0.5}, {3, 0.8}}, 3, 1}, {P, {{1, 0.4}, {3, 0.7}}, 3, 1}, {P, {{1, 0.3}, {3, 0.6}}, 3, 1},
        {P, {{1, 0.95}}, 1}, {P, {{1, 0.1}}, 1}, {P, {{1, 0.2}}, 1}, {P, {{1, 0.15}}, 1}, {P, {{1, 0.12}}, 1},
        {P, {{1, 0.11}}, 1}},
       true, 3, 1},
      {"rung 1 done (its top three at rung 3): rung 3's best",
       {{P, {{1, 0.5}, {3, 0.8}}, 3, 1}, {P, {{1, 0.4}, {3, 0.7}}, 3, 1}, {P, {{1, 0.3}, {3, 0.6}}, 3, 1},
        {P, {{1, 0.1}}, 1}, {P, {{1, 0.2}}, 1}, {P, {{1, 0.15}}, 1}, {P, {{1, 0.12}}, 1}, {P, {{1, 0.11}}, 1},
        {P, {{1, 0.11}}, 1}},
       true, 0, 3},
      {"rung 1's last promotion made in this plan (taken): rung 3 is complete once it arrives, not before",
       {{P, {{1, 0.5}, {3, 0.8}}, 3, 1}, {P, {{1, 0.4}, {3, 0.7}}, 3, 1}, {R, {{1, 0.3}}, 0, 1},
        {P, {{1, 0.1}}, 1}, {P, {{1, 0.2}}, 1}, {P, {{1, 0.15}}, 1}, {P, {{1, 0.12}}, 1}, {P, {{1, 0.11}}, 1},
        {P, {{1, 0.11}}, 1}},
       true, -1, 0, {2}},
  };
  api::SweepSpec s = Asha(1, 3);
  s.early_stopping.policy = api::kStoppingSha;
  for (const ShaCase& c : cases) {
    std::optional<Promotion> p = NextPromotion(s, 9, TrialsOf(c.trials), c.taken, c.all_started);
    ExpectPromotion(c.name, p, c.promote, c.rung);
    if (p) {
      EXPECT_EQ(p->reason.rfind("sha:", 0), 0u) << p->reason;
    }
  }
}

// ASHA with bootstrapCount 6, 9 passes, eta 3: nothing is promoted before six trials count at
// rung 1 (unless no further trial will start); from then on ASHA's rule, at every rung.
TEST(AshaTest, BootstrapCountHoldsPromotionsUntilTheFirstRungHasThatMany) {
  struct BootstrapCase {
    const char* name;
    std::vector<T> trials;
    bool all_started;
    int64_t promote;
    int64_t rung = 0;
  };
  const std::vector<BootstrapCase> cases = {
      {"three at rung 1 (ASHA would promote the 0.9): none",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}}, false, -1},
      {"five at rung 1, a sixth still training towards it: none",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}, {P, {{1, 0.2}}, 1}, {P, {{1, 0.3}}, 1}, {R, {}}},
       false, -1},
      {"six at rung 1: ASHA's top two, the best first",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}, {P, {{1, 0.2}}, 1}, {P, {{1, 0.3}}, 1},
        {P, {{1, 0.8}}, 1}},
       false, 1, 1},
      {"failed and stopped trials count at the rung as they do for ASHA",
       {{F, {{1, 0.99}}}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}, {P, {{1, 0.2}}, 1}, {X, {{1, 0.1}}, 1},
        {P, {{1, 0.8}}, 1}},
       false, 1, 1},
      {"three at rung 1 and no further trial will start: ASHA's rule",
       {{P, {{1, 0.5}}, 1}, {P, {{1, 0.9}}, 1}, {P, {{1, 0.7}}, 1}}, true, 1, 1},
      {"past the bootstrap, rung 3 promotes as ASHA does (three there, the best)",
       {{P, {{1, 0.5}, {3, 0.8}}, 3, 1}, {S, {{1, 0.6}, {3, 0.7}, {9, 0.75}}, 0, 3},
        {P, {{1, 0.4}, {3, 0.6}}, 3, 1}, {P, {{1, 0.95}}, 1}, {P, {{1, 0.1}}, 1}, {P, {{1, 0.2}}, 1}},
       false, 0, 3},
  };
  api::SweepSpec s = Asha(1, 3);
  s.early_stopping.bootstrap_count = 6;
  for (const BootstrapCase& c : cases) {
    ExpectPromotion(c.name, NextPromotion(s, 9, TrialsOf(c.trials), {}, c.all_started), c.promote, c.rung);
  }
  // bootstrapCount 0 is ASHA as published: the first case's three promote their best.
  s.early_stopping.bootstrap_count = 0;
  std::optional<Promotion> p = NextPromotion(s, 9, TrialsOf(cases[0].trials));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->trial, 1u);
}

TEST(AshaTest, MinimizeFlipsTheOrder) {
  api::SweepSpec s = Asha(1, 2);
  s.objective.metric = api::kMetricTestLoss;
  std::vector<api::TrialStatus> trials = {Trial(0, P, {{1, 0.4}}), Trial(1, P, {{1, 0.3}})};
  for (auto& t : trials) t.paused_at = 1;
  std::optional<Promotion> p = NextPromotion(s, 4, trials);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->trial, 1u);
}

TEST(AshaTest, PausesAtTheNextRungAboveTheLastPromotionAndNeverAtTheLastPass) {
  const api::SweepSpec s = Asha(1, 3);  // 9 passes: rungs 1 and 3
  api::TrialStatus t = Trial(0, R, {});
  EXPECT_FALSE(AshaPauseRung(s, 9, t).has_value());
  t.intermediate = {{1, 0.5}};
  EXPECT_EQ(AshaPauseRung(s, 9, t), 1);
  t.promoted_from = 1;
  EXPECT_FALSE(AshaPauseRung(s, 9, t).has_value()) << "promoted from 1: goes on to 3";
  t.intermediate.push_back({2, 0.6});
  EXPECT_FALSE(AshaPauseRung(s, 9, t).has_value());
  t.intermediate.push_back({4, 0.7});  // a late look: pass 4 stands for rung 3
  EXPECT_EQ(AshaPauseRung(s, 9, t), 3);
  t.promoted_from = 3;
  t.intermediate.push_back({9, 0.8});
  EXPECT_FALSE(AshaPauseRung(s, 9, t).has_value()) << "no rung at the last pass";
  // A trial that missed rung 1 and is seen at pass 5 first pauses at rung 1 (not promoted past it).
  EXPECT_EQ(AshaPauseRung(s, 9, Trial(1, R, {{5, 0.5}})), 1);
  // Median stopping and none never pause.
  EXPECT_FALSE(NextPromotion(TestSpec(), 9, {Trial(0, P, {{1, 0.9}})}).has_value());
}

TEST(AshaTest, JudgeTrialNeverStopsAnAshaTrial) {
  EXPECT_FALSE(JudgeTrial(Asha(1, 2), 4, Trial(0, R, {{1, 0.1}}), {Trial(1, S, {{1, 0.9}, {4, 0.9}})}).stop);
}

TEST(MedianTest, StopsBelowTheMedianOnceEnoughTrialsReported) {
  api::SweepSpec s = TestSpec();
  s.early_stopping.policy = api::kStoppingMedian;
  s.early_stopping.min_passes = 2;
  s.early_stopping.startup_trials = 3;
  std::vector<api::TrialStatus> peers = {Trial(1, api::kTrialSucceeded, {{1, 0.5}, {2, 0.7}, {3, 0.8}}),
                                         Trial(2, api::kTrialSucceeded, {{1, 0.6}, {2, 0.8}, {3, 0.85}}),
                                         Trial(3, api::kTrialRunning, {{1, 0.4}, {2, 0.6}})};
  // Median of best-up-to-pass-2 values {0.7, 0.8, 0.6} is 0.7.
  EXPECT_TRUE(JudgeTrial(s, 5, Trial(0, api::kTrialRunning, {{1, 0.6}, {2, 0.65}}), peers).stop);
  EXPECT_FALSE(JudgeTrial(s, 5, Trial(0, api::kTrialRunning, {{1, 0.6}, {2, 0.75}}), peers).stop);
  // Before minPasses: never.
  EXPECT_FALSE(JudgeTrial(s, 5, Trial(0, api::kTrialRunning, {{1, 0.0}}), peers).stop);
  // Too few peers at pass 3.
  EXPECT_FALSE(JudgeTrial(s, 5, Trial(0, api::kTrialRunning, {{1, 0.1}, {2, 0.1}, {3, 0.1}}), peers).stop);
}

TEST(EarlyStoppingTest, NoneNeverStops) {
  api::SweepSpec s = TestSpec();
  std::vector<api::TrialStatus> peers = {Trial(1, api::kTrialSucceeded, {{1, 0.9}})};
  EXPECT_FALSE(JudgeTrial(s, 4, Trial(0, api::kTrialRunning, {{1, 0.1}}), peers).stop);
}

}  // namespace
}  // namespace tandem::sweep
