// The pure parts of `tandem run sweep.yaml` (cli/local/local_sweep.h): how a trial's reported
// values are folded into its status, and how many trials run at once.
#include "cli/local/local_sweep.h"

#include "gtest/gtest.h"
#include "sweep/early_stopping.h"
#include "tests/sweep/sweep_spec.h"

namespace tandem::local {
namespace {

using sweep::testing::TestSpec;
using sweep::testing::Trial;
using Values = std::vector<std::pair<int64_t, double>>;

TEST(FoldTrialValuesTest, RecordsWhileRunningAndCountsPassesAfterAStop) {
  api::TrialStatus t = Trial(0, api::kTrialRunning, {});
  int64_t seen = 0;
  EXPECT_EQ(FoldTrialValues({{1, 0.7}, {2, 0.75}}, false, &t, &seen), (Values{{1, 0.7}, {2, 0.75}}));
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(t.intermediate, (std::vector<api::MetricPoint>{{1, 0.7}, {2, 0.75}}));
  EXPECT_EQ(t.objective, 0.75);
  EXPECT_TRUE(FoldTrialValues({{2, 0.75}}, false, &t, &seen).empty());  // seen before: no change
  // Stopped by the rule after pass 2; passes 3 and 4 arrive while the stop reaches it.
  EXPECT_TRUE(FoldTrialValues({{3, 0.2}, {4, 0.3}}, true, &t, &seen).empty());
  EXPECT_EQ(seen, 4);
  EXPECT_EQ(t.intermediate, (std::vector<api::MetricPoint>{{1, 0.7}, {2, 0.75}}));
  EXPECT_EQ(t.objective, 0.75);
}

// Why: a trial stopped early (median stopping, or the sweep failing) that trained on to pass 3
// while the stop reached it would otherwise count at ASHA's rung 3, where it was never promoted,
// and widen the top there.
TEST(FoldTrialValuesTest, AStoppedTrialsLaterPassesDoNotCountAtHigherRungs) {
  api::SweepSpec spec = TestSpec();
  spec.early_stopping.policy = api::kStoppingAsha;
  spec.early_stopping.min_passes = 1;
  spec.early_stopping.reduction_factor = 3;  // rungs 1 and 3 of 9 passes
  std::vector<api::TrialStatus> trials;
  for (double v : {0.85, 0.80, 0.79, 0.78})
    trials.push_back(Trial(static_cast<int64_t>(trials.size()), api::kTrialSucceeded, {{1, v}, {3, v}}));
  api::TrialStatus waiting = Trial(4, api::kTrialPaused, {{1, 0.82}, {3, 0.82}});
  waiting.paused_at = 3;
  waiting.promoted_from = 1;
  api::TrialStatus stopped = Trial(5, api::kTrialRunning, {});
  int64_t seen = 0;
  FoldTrialValues({{1, 0.5}}, false, &stopped, &seen);
  FoldTrialValues({{2, 0.52}, {3, 0.55}}, true, &stopped, &seen);  // after it was stopped
  stopped.phase = api::kTrialStopped;
  trials.push_back(waiting);
  trials.push_back(stopped);
  // Five trials at rung 3: only the best (0.85, finished) is in the top fifth, so 0.82 waits. Had
  // the stopped trial's 0.55 been recorded at pass 3, six would be there and 0.82, second, would
  // have been promoted.
  EXPECT_FALSE(sweep::NextPromotion(spec, 9, trials).has_value());
  EXPECT_EQ(seen, 3);
  trials[5].intermediate.push_back({3, 0.55});
  std::optional<sweep::Promotion> p = sweep::NextPromotion(spec, 9, trials);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->trial, 4u);
}

TEST(PlanTrialSlotsTest, ParallelismWithinTheCores) {
  EXPECT_EQ(PlanTrialSlots(2, 1, 1, 2).concurrency, 2);
  EXPECT_EQ(PlanTrialSlots(4, 1, 1, 2).concurrency, 2);  // no more than the cores hold
  EXPECT_EQ(PlanTrialSlots(4, 1, 2, 2).concurrency, 1);
  const TrialSlots shared = PlanTrialSlots(2, 1, 0, 8);  // threads 0: the cores shared out
  EXPECT_EQ(shared.concurrency, 2);
  EXPECT_EQ(shared.trainer_threads, 4);
}

}  // namespace
}  // namespace tandem::local
