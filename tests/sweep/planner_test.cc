#include "sweep/planner.h"

#include "gtest/gtest.h"
#include "tests/sweep/sweep_spec.h"

namespace tandem::sweep {
namespace {

using testing::TestSpec;
using testing::Trial;

TEST(PlannerTest, StartsUpToParallelismThenWaits) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 3;
  s.max_trials = 5;
  auto sampler = NewSampler(s);
  Plan p = PlanSweep(s, 3, {}, *sampler, "sw-");
  ASSERT_EQ(p.start.size(), 3u);
  EXPECT_EQ(p.start[0].name, "sw-0");
  EXPECT_EQ(p.start[2].index, 2);
  EXPECT_EQ(p.start[1].phase, api::kTrialPending);
  EXPECT_EQ(p.start[1].parameters, *sampler->Suggest(1, {}));
  EXPECT_EQ(p.phase, api::kSweepRunning);
  std::vector<api::TrialStatus> trials = p.start;
  trials[0].phase = api::kTrialSucceeded;
  trials[0].intermediate = {{3, 0.8}};
  trials[0].objective = 0.8;
  Plan q = PlanSweep(s, 3, trials, *sampler, "sw-");
  ASSERT_EQ(q.start.size(), 1u);
  EXPECT_EQ(q.start[0].index, 3);
}

TEST(PlannerTest, StopsTrialsThePolicyJudgesAndRefillsTheirSlots) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 2;
  s.max_trials = 4;
  s.early_stopping.policy = api::kStoppingAsha;
  s.early_stopping.reduction_factor = 2;
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> trials = {Trial(0, api::kTrialRunning, {{1, 0.9}}),
                                          Trial(1, api::kTrialRunning, {{1, 0.5}})};
  Plan p = PlanSweep(s, 4, trials, *sampler, "sw-");
  ASSERT_EQ(p.stop.size(), 1u);
  EXPECT_EQ(p.stop[0].first, 1u);
  EXPECT_NE(p.stop[0].second.find("asha"), std::string::npos);
  ASSERT_EQ(p.start.size(), 1u);
  EXPECT_EQ(p.start[0].index, 2);
}

TEST(PlannerTest, FinishesWhenAllTrialsAreDoneAndReportsTheBest) {
  api::SweepSpec s = TestSpec();
  s.max_trials = 3;
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> trials = {Trial(0, api::kTrialSucceeded, {{2, 0.8}}, {{"lr", 0.1}}),
                                          Trial(1, api::kTrialStopped, {{1, 0.95}}, {{"lr", 0.2}}),
                                          Trial(2, api::kTrialSucceeded, {{2, 0.85}}, {{"lr", 0.3}})};
  Plan p = PlanSweep(s, 2, trials, *sampler, "sw-");
  EXPECT_TRUE(p.start.empty());
  EXPECT_EQ(p.phase, api::kSweepSucceeded);
  EXPECT_EQ(p.reason, "Completed");
  std::optional<api::BestTrial> best = FindBestTrial(s, trials);
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(best->name, "t-2");  // a stopped trial's early value does not count while some succeeded
  EXPECT_EQ(best->parameters["lr"], 0.3);
  EXPECT_EQ(best->pass, 2);
  api::TrialCounts c = CountTrials(trials);
  EXPECT_EQ(c.succeeded, 2);
  EXPECT_EQ(c.stopped, 1);
}

TEST(PlannerTest, TooManyFailuresFailTheSweepAndStopTheRest) {
  api::SweepSpec s = TestSpec();
  s.max_failed_trials = 1;
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> trials = {Trial(0, api::kTrialFailed, {}), Trial(1, api::kTrialFailed, {}),
                                          Trial(2, api::kTrialRunning, {{1, 0.5}})};
  Plan p = PlanSweep(s, 2, trials, *sampler, "sw-");
  EXPECT_EQ(p.phase, api::kSweepFailed);
  EXPECT_EQ(p.reason, "TooManyFailures");
  ASSERT_EQ(p.stop.size(), 1u);
  EXPECT_EQ(p.stop[0].first, 2u);
  EXPECT_TRUE(p.start.empty());
}

TEST(PlannerTest, GridEndsWhenExhaustedBeforeMaxTrials) {
  api::SweepSpec s = TestSpec(api::kAlgorithmGrid);
  s.parameters.resize(1);
  s.parameters[0].grid_points = 2;
  s.max_trials = 10;
  s.parallelism = 5;
  auto sampler = NewSampler(s);
  Plan p = PlanSweep(s, 1, {}, *sampler, "g-");
  EXPECT_EQ(p.start.size(), 2u);
  std::vector<api::TrialStatus> trials = p.start;
  for (auto& t : trials) {
    t.phase = api::kTrialSucceeded;
    RecordValue(&t, 1, 0.5 + 0.1 * static_cast<double>(t.index));
  }
  Plan q = PlanSweep(s, 1, trials, *sampler, "g-");
  EXPECT_TRUE(q.start.empty());
  EXPECT_EQ(q.phase, api::kSweepSucceeded);
  EXPECT_NE(q.message.find("grid is exhausted"), std::string::npos);
}

TEST(PlannerTest, NoValueAtAllFailsTheSweep) {
  api::SweepSpec s = TestSpec();
  s.max_trials = 1;
  auto sampler = NewSampler(s);
  Plan p = PlanSweep(s, 1, {Trial(0, api::kTrialSucceeded, {})}, *sampler, "x-");
  EXPECT_EQ(p.phase, api::kSweepFailed);
  EXPECT_EQ(p.reason, "NoObjective");
}

TEST(PlannerTest, RecordValueKeepsPassesOrderedAndObjectiveNewest) {
  api::TrialStatus t;
  EXPECT_TRUE(RecordValue(&t, 2, 0.5));
  EXPECT_TRUE(RecordValue(&t, 1, 0.4));
  EXPECT_FALSE(RecordValue(&t, 2, 0.5));
  EXPECT_TRUE(RecordValue(&t, 3, 0.6));
  ASSERT_EQ(t.intermediate.size(), 3u);
  EXPECT_EQ(t.intermediate[0].pass, 1);
  EXPECT_EQ(*t.objective, 0.6);
}

}  // namespace
}  // namespace tandem::sweep
