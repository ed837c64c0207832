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

struct PromotionCase {
  const char* name;
  std::vector<double> peers;  // values of other trials at rung 1
  double value;               // the judged trial's value at rung 1
  bool stop;
};

// Rung 1 of 9 passes, eta 3: of n trials at the rung, the best max(1, floor(n/3)) go on.
TEST(AshaTest, PromotionRule) {
  const std::vector<PromotionCase> cases = {
      {"first at the rung goes on", {}, 0.1, false},
      {"two: only the better goes on", {0.8}, 0.7, true},
      {"two: the better goes on", {0.6}, 0.7, false},
      {"a tie goes the trial's way", {0.7}, 0.7, false},
      {"three: top one of three", {0.5, 0.9}, 0.8, true},
      {"six: second of six goes on", {0.1, 0.2, 0.3, 0.4, 0.95}, 0.8, false},
      {"six: third is out", {0.1, 0.2, 0.3, 0.9, 0.95}, 0.8, true},
  };
  const api::SweepSpec s = Asha(1, 3);
  for (const PromotionCase& c : cases) {
    std::vector<api::TrialStatus> trials;
    for (size_t i = 0; i < c.peers.size(); ++i) trials.push_back(Trial(i + 1, api::kTrialRunning, {{1, c.peers[i]}}));
    api::TrialStatus t = Trial(0, api::kTrialRunning, {{1, c.value}});
    trials.push_back(t);
    StopDecision d = JudgeTrial(s, 9, t, trials);
    EXPECT_EQ(d.stop, c.stop) << c.name << ": " << d.reason;
    if (d.stop) {
      EXPECT_NE(d.reason.find("rung 1"), std::string::npos) << d.reason;
    }
  }
}

TEST(AshaTest, MinimizeFlipsTheOrder) {
  api::SweepSpec s = Asha(1, 2);
  s.objective.metric = api::kMetricTestLoss;
  std::vector<api::TrialStatus> trials = {Trial(1, api::kTrialSucceeded, {{1, 0.3}, {2, 0.2}})};
  EXPECT_TRUE(JudgeTrial(s, 4, Trial(0, api::kTrialRunning, {{1, 0.4}}), trials).stop);
  EXPECT_FALSE(JudgeTrial(s, 4, Trial(0, api::kTrialRunning, {{1, 0.25}}), trials).stop);
}

TEST(AshaTest, JudgedAtTheHighestRungReachedAndNeverAtTheLastPass) {
  api::SweepSpec s = Asha(1, 2);  // rungs 1, 2 (and 4 when there are more than 4 passes)
  std::vector<api::TrialStatus> peers = {Trial(1, api::kTrialSucceeded, {{1, 0.9}, {2, 0.95}, {3, 0.96}})};
  // Good at rung 1, poor at rung 2: stopped at rung 2.
  EXPECT_TRUE(JudgeTrial(s, 4, Trial(0, api::kTrialRunning, {{1, 0.95}, {2, 0.5}}), peers).stop);
  // Between rungs 2 and 4 it is judged at rung 2: good there, it goes on whatever pass 3 says.
  EXPECT_FALSE(JudgeTrial(s, 8, Trial(0, api::kTrialRunning, {{1, 0.95}, {2, 0.99}, {3, 0.1}}), peers).stop);
  // Still judged at rung 2 at pass 3: a later, better peer there stops it.
  peers.push_back(Trial(2, api::kTrialRunning, {{2, 0.995}}));
  peers.push_back(Trial(3, api::kTrialRunning, {{2, 0.999}}));
  EXPECT_TRUE(JudgeTrial(s, 8, Trial(0, api::kTrialRunning, {{1, 0.95}, {2, 0.99}, {3, 0.1}}), peers).stop);
  // The last pass: the trial is done, not stopped.
  EXPECT_FALSE(JudgeTrial(s, 4, Trial(0, api::kTrialRunning, {{4, 0.1}}), peers).stop);
  // Values seen late (several passes at once) are judged all the same: pass 3 stands for rung 2.
  EXPECT_TRUE(JudgeTrial(s, 8, Trial(0, api::kTrialRunning, {{3, 0.5}}), {Trial(1, api::kTrialRunning, {{2, 0.9}})}).stop);
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
