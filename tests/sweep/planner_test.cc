#include "sweep/planner.h"

#include <functional>

#include "gtest/gtest.h"
#include "sweep/early_stopping.h"
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
  s.max_trials = 6;
  s.early_stopping.policy = api::kStoppingMedian;
  s.early_stopping.min_passes = 1;
  s.early_stopping.startup_trials = 2;
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> trials = {Trial(0, api::kTrialSucceeded, {{1, 0.9}, {4, 0.9}}),
                                          Trial(1, api::kTrialSucceeded, {{1, 0.8}, {4, 0.9}}),
                                          Trial(2, api::kTrialRunning, {{1, 0.95}}),
                                          Trial(3, api::kTrialRunning, {{1, 0.5}})};
  Plan p = PlanSweep(s, 4, trials, *sampler, "sw-");
  ASSERT_EQ(p.stop.size(), 1u);
  EXPECT_EQ(p.stop[0].first, 3u);
  EXPECT_NE(p.stop[0].second.find("median"), std::string::npos);
  ASSERT_EQ(p.start.size(), 1u);
  EXPECT_EQ(p.start[0].index, 4);
}

api::TrialStatus PausedAt(api::TrialStatus t, int64_t rung, int64_t promoted_from = 0) {
  t.phase = api::kTrialPaused;
  t.paused_at = rung;
  t.promoted_from = promoted_from;
  return t;
}

// ASHA (eta 2, 4 passes: rungs 1 and 2): a trial at its next rung is paused and its slot goes to
// a promotion or a new trial.
TEST(PlannerTest, AshaPausesAtARungAndFillsTheSlotWithANewTrialWhenNoneIsPromotable) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 2;
  s.max_trials = 4;
  s.early_stopping.policy = api::kStoppingAsha;
  s.early_stopping.reduction_factor = 2;
  auto sampler = NewSampler(s);
  // Trial 0 reaches rung 1 first: alone there (floor(1/2) = 0), it waits; trial 2 starts.
  std::vector<api::TrialStatus> trials = {Trial(0, api::kTrialRunning, {{1, 0.9}}), Trial(1, api::kTrialRunning, {})};
  Plan p = PlanSweep(s, 4, trials, *sampler, "sw-");
  EXPECT_TRUE(p.stop.empty());
  ASSERT_EQ(p.pause.size(), 1u);
  EXPECT_EQ(p.pause[0].trial, 0u);
  EXPECT_EQ(p.pause[0].rung, 1);
  EXPECT_TRUE(p.resume.empty());
  ASSERT_EQ(p.start.size(), 1u);
  EXPECT_EQ(p.start[0].index, 2);
  ApplyRungSteps(p, &trials);
  EXPECT_EQ(trials[0].phase, api::kTrialPaused);
  EXPECT_EQ(trials[0].paused_at, 1);
  EXPECT_EQ(CountTrials(trials).paused, 1);

  // Trial 1 reaches rung 1 with less: it pauses, and trial 0 (top 1 of 2) is promoted into the slot.
  trials[1].intermediate = {{1, 0.5}};
  trials.push_back(p.start[0]);
  trials[2].phase = api::kTrialRunning;
  p = PlanSweep(s, 4, trials, *sampler, "sw-");
  ASSERT_EQ(p.pause.size(), 1u);
  EXPECT_EQ(p.pause[0].trial, 1u);
  ASSERT_EQ(p.resume.size(), 1u);
  EXPECT_EQ(p.resume[0].trial, 0u);
  EXPECT_EQ(p.resume[0].rung, 1);
  EXPECT_FALSE(p.resume[0].running);
  EXPECT_TRUE(p.start.empty()) << "the free slot went to the promotion";
  ApplyRungSteps(p, &trials);
  EXPECT_EQ(trials[0].phase, api::kTrialRunning);
  EXPECT_EQ(trials[0].promoted_from, 1);
  EXPECT_EQ(trials[0].paused_at, 0);
  EXPECT_EQ(trials[1].phase, api::kTrialPaused);

  // The promoted trial 0 goes on past rung 1 (not paused there again), to rung 2.
  EXPECT_FALSE(AshaPauseRung(s, 4, trials[0]).has_value());
  trials[0].intermediate.push_back({2, 0.91});
  EXPECT_EQ(AshaPauseRung(s, 4, trials[0]), 2);
}

// ASHA with bootstrapCount 3 (eta 2, 4 passes): where ASHA would promote the better of two trials
// at rung 1, the free slot starts a new trial instead; once three count there, or once no further
// trial will start, the best is promoted.
TEST(PlannerTest, AshaWithABootstrapCountStartsTrialsUntilTheFirstRungHasThatMany) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 2;
  s.max_trials = 5;
  s.early_stopping.policy = api::kStoppingAsha;
  s.early_stopping.reduction_factor = 2;
  s.early_stopping.bootstrap_count = 3;
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> trials = {PausedAt(Trial(0, api::kTrialRunning, {{1, 0.5}}), 1),
                                          Trial(1, api::kTrialRunning, {{1, 0.9}})};
  Plan p = PlanSweep(s, 4, trials, *sampler, "sw-");
  ASSERT_EQ(p.pause.size(), 1u);
  EXPECT_EQ(p.pause[0].trial, 1u);
  EXPECT_TRUE(p.resume.empty()) << "two at rung 1, three needed: " << p.resume[0].reason;
  ASSERT_EQ(p.start.size(), 2u) << "both slots start new trials";
  EXPECT_EQ(p.start[0].index, 2);

  // The third value at rung 1: ASHA's rule from now on (top floor(3/2) = 1: trial 1).
  ApplyRungSteps(p, &trials);
  trials.push_back(p.start[0]);
  trials.push_back(p.start[1]);
  trials[2].phase = api::kTrialRunning;
  trials[2].intermediate = {{1, 0.7}};
  trials[3].phase = api::kTrialRunning;
  p = PlanSweep(s, 4, trials, *sampler, "sw-");
  ASSERT_EQ(p.resume.size(), 1u);
  EXPECT_EQ(p.resume[0].trial, 1u);
  EXPECT_TRUE(p.start.empty());

  // The same two trials with no further trial to start (maxTrials 2): the better is promoted.
  s.max_trials = 2;
  trials = {PausedAt(Trial(0, api::kTrialRunning, {{1, 0.5}}), 1), Trial(1, api::kTrialRunning, {{1, 0.9}})};
  p = PlanSweep(s, 4, trials, *sampler, "sw-");
  ASSERT_EQ(p.resume.size(), 1u);
  EXPECT_EQ(p.resume[0].trial, 1u);
}

TEST(PlannerTest, AshaPromotesATrialInTheLookThatSeesItAtItsRungWithoutPausingIt) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 2;
  s.max_trials = 4;
  s.early_stopping.policy = api::kStoppingAsha;
  s.early_stopping.reduction_factor = 2;
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> trials = {PausedAt(Trial(0, api::kTrialRunning, {{1, 0.5}}), 1),
                                          Trial(1, api::kTrialRunning, {{1, 0.9}}),
                                          Trial(2, api::kTrialRunning, {})};
  Plan p = PlanSweep(s, 4, trials, *sampler, "sw-");
  EXPECT_TRUE(p.pause.empty());
  ASSERT_EQ(p.resume.size(), 1u);
  EXPECT_EQ(p.resume[0].trial, 1u);
  EXPECT_TRUE(p.resume[0].running) << "it goes on: nothing to suspend and resume";
  EXPECT_TRUE(p.start.empty());
}

TEST(PlannerTest, AshaWaitsForActiveTrialsThenStopsThePausedOnesThatWereNeverPromoted) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 2;
  s.max_trials = 3;
  s.early_stopping.policy = api::kStoppingAsha;
  s.early_stopping.reduction_factor = 2;
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> trials = {PausedAt(Trial(0, api::kTrialRunning, {{1, 0.5}}), 1),
                                          Trial(1, api::kTrialRunning, {{1, 0.9}, {2, 0.92}}),
                                          PausedAt(Trial(2, api::kTrialRunning, {{1, 0.4}}), 1)};
  trials[1].promoted_from = 1;
  // Trial 1 reaches rung 2 alone: paused; nothing is promotable, no trial is left to start: over.
  Plan p = PlanSweep(s, 4, trials, *sampler, "sw-");
  ASSERT_EQ(p.pause.size(), 1u);
  EXPECT_EQ(p.phase, api::kSweepSucceeded);
  ASSERT_EQ(p.stop.size(), 3u);
  for (const auto& [i, why] : p.stop) EXPECT_NE(why.find("not promoted"), std::string::npos) << why;
  // While one is active the sweep waits (a later value at a rung may make a paused one promotable).
  trials[1].intermediate.pop_back();
  p = PlanSweep(s, 4, trials, *sampler, "sw-");
  EXPECT_EQ(p.phase, api::kSweepRunning);
  EXPECT_TRUE(p.stop.empty());
  EXPECT_TRUE(p.start.empty());
  // Too many failures stop the paused trials as well.
  s.max_failed_trials = 0;
  trials[1].phase = api::kTrialFailed;
  p = PlanSweep(s, 4, trials, *sampler, "sw-");
  EXPECT_EQ(p.phase, api::kSweepFailed);
  EXPECT_EQ(p.stop.size(), 2u);
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

// spec.budget.cpuSeconds: spent, everything unfinished stops and the sweep ends BudgetSpent.
TEST(PlannerTest, ASpentBudgetStopsEveryUnfinishedTrialAndEndsTheSweep) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 2;
  s.max_trials = 10;
  s.early_stopping = {.policy = api::kStoppingAsha, .min_passes = 1, .reduction_factor = 3};
  s.budget.cpu_seconds = 30;
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> trials = {Trial(0, api::kTrialSucceeded, {{1, 0.7}, {3, 0.8}, {9, 0.85}}),
                                          PausedAt(Trial(1, api::kTrialRunning, {{1, 0.6}}), 1),
                                          Trial(2, api::kTrialRunning, {{1, 0.75}, {2, 0.8}}),
                                          Trial(3, api::kTrialRunning, {})};
  trials[0].cpu_seconds = 18;
  trials[1].cpu_seconds = 2;
  trials[2].cpu_seconds = 6;
  trials[3].cpu_seconds = 3.5;
  Plan under = PlanSweep(s, 9, trials, *sampler, "sw-");  // 29.5 of 30: still running
  EXPECT_EQ(under.phase, api::kSweepRunning);
  EXPECT_TRUE(under.stop.empty());
  EXPECT_TRUE(under.start.empty());  // both slots are taken
  trials[3].cpu_seconds = 4;  // 30 of 30
  Plan p = PlanSweep(s, 9, trials, *sampler, "sw-");
  EXPECT_EQ(p.phase, api::kSweepSucceeded);  // trial 0 has a value
  EXPECT_EQ(p.reason, "BudgetSpent");
  EXPECT_TRUE(p.start.empty());
  EXPECT_TRUE(p.resume.empty());
  ASSERT_EQ(p.stop.size(), 3u);  // the paused trial and both running ones; not the finished one
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(p.stop[k].first, k + 1);
    EXPECT_NE(p.stop[k].second.find("budget: 30.0 of spec.budget.cpuSeconds 30 spent"), std::string::npos)
        << p.stop[k].second;
  }
  EXPECT_NE(p.message.find("budget"), std::string::npos) << p.message;
}

// Before it is spent: a new trial or a promotion starts only when its expected cost fits beside
// what is spent and what the active trials are expected to spend until their next stop.
TEST(PlannerTest, NothingStartsThatTheBudgetCannotPayFor) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 2;
  s.max_trials = 10;
  s.early_stopping = {.policy = api::kStoppingAsha, .min_passes = 1, .reduction_factor = 3};
  auto sampler = NewSampler(s);
  // Trial 0 trained 3 passes for 6 CPU s (2 s a pass) and waits at rung 3; trial 1, promoted
  // from rung 1, trained 2 passes for 2 s (1 s a pass) and runs to rung 3: 1 s more expected.
  // Mean rate 1.5 s a pass.
  std::vector<api::TrialStatus> trials = {PausedAt(Trial(0, api::kTrialRunning, {{1, 0.7}, {3, 0.8}}), 3, 1),
                                          Trial(1, api::kTrialRunning, {{1, 0.6}, {2, 0.65}})};
  trials[1].promoted_from = 1;
  trials[0].cpu_seconds = 6;
  trials[1].cpu_seconds = 2;
  // Without a budget the free slot starts trial 2 (nothing to promote: one trial at rung 3).
  Plan free = PlanSweep(s, 9, trials, *sampler, "sw-");
  ASSERT_EQ(free.start.size(), 1u);
  // Spent 8, trial 1 expects 1 more: a new trial (1.5 s for its first pass) needs 10.5.
  s.budget.cpu_seconds = 10.4;
  Plan tight = PlanSweep(s, 9, trials, *sampler, "sw-");
  EXPECT_TRUE(tight.start.empty());
  EXPECT_EQ(tight.phase, api::kSweepRunning);  // trial 1 still trains
  EXPECT_NE(tight.message.find("leaves no room"), std::string::npos) << tight.message;
  s.budget.cpu_seconds = 10.5;
  Plan fits = PlanSweep(s, 9, trials, *sampler, "sw-");
  ASSERT_EQ(fits.start.size(), 1u);
  EXPECT_EQ(fits.start[0].index, 2);
  // Once trial 1 ends and nothing else fits, the sweep is over: the paused trial stops there.
  trials[1].phase = api::kTrialSucceeded;
  trials[1].intermediate = {{1, 0.6}, {3, 0.7}, {9, 0.9}};
  trials[1].cpu_seconds = 9;  // 15 spent; mean rate (2 + 1) / 2 = 1.5 a pass
  s.budget.cpu_seconds = 16;
  Plan over = PlanSweep(s, 9, trials, *sampler, "sw-");
  EXPECT_TRUE(over.start.empty());
  EXPECT_TRUE(over.resume.empty());
  EXPECT_EQ(over.phase, api::kSweepSucceeded);
  EXPECT_EQ(over.reason, "BudgetSpent");
  ASSERT_EQ(over.stop.size(), 1u);
  EXPECT_EQ(over.stop[0].first, 0u);
  EXPECT_NE(over.stop[0].second.find("the budget had no room left"), std::string::npos) << over.stop[0].second;
}

// Three trials paused at ASHA's rung 1 (of eta 3) after 1 pass each, for 1, 1 and 4 CPU s: 6
// spent, a mean rate of 2 s a pass; trial 2 (0.9) is the one promotable.
std::vector<api::TrialStatus> ThreeAtRungOne() {
  std::vector<api::TrialStatus> trials = {PausedAt(Trial(0, api::kTrialRunning, {{1, 0.5}}), 1),
                                          PausedAt(Trial(1, api::kTrialRunning, {{1, 0.6}}), 1),
                                          PausedAt(Trial(2, api::kTrialRunning, {{1, 0.9}}), 1)};
  trials[0].cpu_seconds = 1;
  trials[1].cpu_seconds = 1;
  trials[2].cpu_seconds = 4;
  return trials;
}

// A promotion is priced at the promoted trial's own rate, to its next stop.
TEST(PlannerTest, APromotionIsPricedAtTheTrialsOwnRate) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 1;
  s.max_trials = 3;
  s.early_stopping = {.policy = api::kStoppingAsha, .min_passes = 1, .reduction_factor = 3};
  auto sampler = NewSampler(s);
  // Three trials at rung 1: the best (trial 2, 0.9) is promoted to rung 3: 2 passes at its own
  // 4 s a pass = 8 s, beside 6 spent.
  std::vector<api::TrialStatus> trials = ThreeAtRungOne();
  s.budget.cpu_seconds = 13.9;
  Plan no = PlanSweep(s, 9, trials, *sampler, "sw-");
  EXPECT_TRUE(no.resume.empty());
  EXPECT_EQ(no.reason, "BudgetSpent");
  s.budget.cpu_seconds = 14;
  Plan yes = PlanSweep(s, 9, trials, *sampler, "sw-");
  ASSERT_EQ(yes.resume.size(), 1u);
  EXPECT_EQ(yes.resume[0].trial, 2u);
}

// A promotion the budget cannot pay for waits, and the rest goes to a cheaper step: here a new
// trial (the sweep used to end with the rest unused).
TEST(PlannerTest, ACostlyPromotionThatDoesNotFitLeavesTheRestToACheaperStep) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 1;
  s.max_trials = 10;
  s.early_stopping = {.policy = api::kStoppingAsha, .min_passes = 1, .reduction_factor = 3};
  auto sampler = NewSampler(s);
  // Trial 2 (0.9, the one promotable of three at rung 1) costs 4 s a pass: 8 s to rung 3. The
  // mean rate is 2 s a pass: a new trial's first pass, 2 s.
  std::vector<api::TrialStatus> trials = ThreeAtRungOne();
  s.budget.cpu_seconds = 10;  // 6 spent: 4 left
  Plan p = PlanSweep(s, 9, trials, *sampler, "sw-");
  EXPECT_TRUE(p.resume.empty());
  ASSERT_EQ(p.start.size(), 1u);
  EXPECT_EQ(p.start[0].index, 3);
  EXPECT_EQ(p.phase, api::kSweepRunning);
  EXPECT_EQ(p.reason, "TrialsRunning");
  // When the new trial cannot be paid for either, the sweep ends and the paused trials stop.
  s.budget.cpu_seconds = 7.9;
  Plan end = PlanSweep(s, 9, trials, *sampler, "sw-");
  EXPECT_TRUE(end.start.empty());
  EXPECT_TRUE(end.resume.empty());
  EXPECT_EQ(end.reason, "BudgetSpent");
  EXPECT_EQ(end.stop.size(), 3u);
}

// Suggests the same parameters for every trial.
class FixedSampler : public Sampler {
 public:
  explicit FixedSampler(nlohmann::json p) : p_(std::move(p)) {}
  std::optional<nlohmann::json> Suggest(int64_t, const std::vector<api::TrialStatus>&) const override { return p_; }

 private:
  nlohmann::json p_;
};

nlohmann::json Act(const std::string& act) { return nlohmann::json{{"act", act}}; }

// Under a budget a new trial is priced at what its own parameters are measured to cost, not at
// the mean: a cheap one fits where a costly one, or the mean, would not.
TEST(PlannerTest, ANewTrialIsPricedAtWhatItsParametersCost) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 1;
  s.max_trials = 10;
  std::vector<api::TrialStatus> trials;
  for (int i = 0; i < 4; ++i) {
    const bool cheap = i % 2 == 0;
    api::TrialStatus t = Trial(i, api::kTrialSucceeded, {{1, 0.5}, {2, 0.6}, {3, 0.7}}, {{"act", cheap ? "relu" : "sigmoid"}});
    t.cpu_seconds = cheap ? 3 : 27;  // 1 and 9 s a pass over 3 passes; 60 spent, mean rate 5
    trials.push_back(std::move(t));
  }
  s.budget.cpu_seconds = 66;  // 6 left: 3 passes of relu fit; of sigmoid, or at the mean (15 s), not
  Plan cheap = PlanSweep(s, 3, trials, FixedSampler(Act("relu")), "sw-");
  ASSERT_EQ(cheap.start.size(), 1u);
  EXPECT_EQ(cheap.start[0].parameters["act"], "relu");
  Plan costly = PlanSweep(s, 3, trials, FixedSampler(Act("sigmoid")), "sw-");
  EXPECT_TRUE(costly.start.empty());
  EXPECT_EQ(costly.reason, "BudgetSpent");
  // Parameters the cost does not depend on: the mean rate exactly (Duan's smearing).
  for (api::TrialStatus& t : trials) t.parameters = {{"act", "tanh"}};
  s.budget.cpu_seconds = 75.01;  // 60 + 15
  EXPECT_EQ(PlanSweep(s, 3, trials, FixedSampler(Act("tanh")), "sw-").start.size(), 1u);
  s.budget.cpu_seconds = 74.9;
  EXPECT_TRUE(PlanSweep(s, 3, trials, FixedSampler(Act("tanh")), "sw-").start.empty());
}


// Runs a whole sweep look by look, as the executors do: every Running trial trains one pass
// between looks (and waits at its rung until a look pauses it); trial i's value after pass r is
// Value(i, r). Returns the trials at the end; `on_plan` sees each plan and the trials it was made on.
struct SimulatedSweep {
  std::vector<api::TrialStatus> trials;
  int looks = 0;
};
SimulatedSweep Simulate(const api::SweepSpec& s, int64_t passes, const std::function<double(int64_t, int64_t)>& value,
                        const std::function<void(const Plan&, const std::vector<api::TrialStatus>&)>& on_plan) {
  auto sampler = NewSampler(s);
  SimulatedSweep sim;
  for (sim.looks = 0; sim.looks < 500; ++sim.looks) {
    Plan p = PlanSweep(s, passes, sim.trials, *sampler, "sw-");
    on_plan(p, sim.trials);
    ApplyRungSteps(p, &sim.trials);
    for (const auto& [i, why] : p.stop) {
      sim.trials[i].phase = api::kTrialStopped;
      sim.trials[i].reason = why;
    }
    for (api::TrialStatus t : p.start) {
      t.phase = api::kTrialRunning;
      sim.trials.push_back(std::move(t));
    }
    if (p.phase != api::kSweepRunning) break;
    for (api::TrialStatus& t : sim.trials) {
      if (t.phase != api::kTrialRunning || AshaPauseRung(s, passes, t)) continue;  // waits to be paused
      const int64_t pass = t.intermediate.empty() ? 1 : t.intermediate.back().pass + 1;
      RecordValue(&t, pass, value(t.index, pass));
      if (pass == passes) t.phase = api::kTrialSucceeded;
    }
  }
  return sim;
}

// SHA (eta 3, 9 passes: rungs 1 and 3) over 9 trials: all 9 train to rung 1 before any promotion;
// then the top 3 there, and only once all 3 have reached rung 3, the top 1 of those.
TEST(PlannerTest, ShaStartsEveryTrialAndPromotesOnlyFromCompleteRungs) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 2;
  s.max_trials = 9;
  s.early_stopping = {.policy = api::kStoppingSha, .min_passes = 1, .reduction_factor = 3};
  // Trial i's rank at pass 1 differs from its rank later: (7, 2, 5) lead at rung 1; of those,
  // 5 leads at rung 3 (pass 3 and on): ASHA would have promoted the early leaders it met first.
  const std::vector<double> at1 = {0.50, 0.60, 0.80, 0.55, 0.52, 0.70, 0.58, 0.90, 0.40};
  const std::vector<double> later = {0.60, 0.65, 0.70, 0.66, 0.62, 0.85, 0.64, 0.75, 0.45};
  auto value = [&](int64_t i, int64_t pass) { return pass == 1 ? at1[i] : later[i] + 0.001 * pass; };
  std::vector<std::pair<int64_t, int64_t>> promotions;  // (trial, rung)
  SimulatedSweep sim = Simulate(s, 9, value, [&](const Plan& p, const std::vector<api::TrialStatus>& before) {
    for (const RungStep& r : p.resume) {
      promotions.push_back({static_cast<int64_t>(r.trial), r.rung});
      EXPECT_EQ(before.size(), 9u) << "a promotion before every trial started";
      for (const api::TrialStatus& t : before) {
        EXPECT_NE(t.phase, api::kTrialPending);
        if (t.phase == api::kTrialRunning && t.promoted_from == 0)  // it is at rung 1 (this look pauses it)
          EXPECT_TRUE(ValueAt(t, 1).has_value()) << "trial " << t.index << " still trains towards rung 1";
      }
      EXPECT_NE(r.reason.find("sha:"), std::string::npos) << r.reason;
    }
    EXPECT_TRUE(p.start.empty() || p.resume.empty());
  });
  EXPECT_EQ(promotions, (std::vector<std::pair<int64_t, int64_t>>{{7, 1}, {2, 1}, {5, 1}, {5, 3}}));
  const api::TrialCounts c = CountTrials(sim.trials);
  EXPECT_EQ(c.succeeded, 1);
  EXPECT_EQ(c.stopped, 8);
  EXPECT_EQ(sim.trials[5].phase, api::kTrialSucceeded);
  EXPECT_EQ(FindBestTrial(s, sim.trials)->name, "sw-5");
  for (int64_t i : {0, 1, 3, 4, 6, 8}) EXPECT_EQ(sim.trials[static_cast<size_t>(i)].paused_at, 1) << i;
  for (int64_t i : {7, 2}) EXPECT_EQ(sim.trials[static_cast<size_t>(i)].paused_at, 3) << i;
  EXPECT_NE(sim.trials[0].reason.find("sha: paused at rung 1"), std::string::npos) << sim.trials[0].reason;

  // ASHA on the same trials promotes as soon as a rung's top third has one it has seen: the early
  // leader 2 goes to rung 3 before trials 5 and 7 have even started.
  s.early_stopping.policy = api::kStoppingAsha;
  promotions.clear();
  Simulate(s, 9, value, [&](const Plan& p, const std::vector<api::TrialStatus>&) {
    for (const RungStep& r : p.resume) promotions.push_back({static_cast<int64_t>(r.trial), r.rung});
  });
  ASSERT_FALSE(promotions.empty());
  EXPECT_EQ(promotions[0], (std::pair<int64_t, int64_t>{2, 1}));
}

// SHA with a budget: once a new trial no longer fits, no further trial will start, and the
// complete rungs promote with what is left.
TEST(PlannerTest, ShaPromotesOnceTheBudgetStopsNewTrials) {
  api::SweepSpec s = TestSpec();
  s.parallelism = 1;
  s.max_trials = 9;
  s.early_stopping = {.policy = api::kStoppingSha, .min_passes = 1, .reduction_factor = 3};
  auto sampler = NewSampler(s);
  // Three trials paused at rung 1 after a pass of 2.5, 0.5 and 2.5 CPU s: 5.5 spent, a mean
  // rate of 1.83 s a pass. Trial 1 (0.9) is the top third.
  std::vector<api::TrialStatus> trials = {PausedAt(Trial(0, api::kTrialRunning, {{1, 0.5}}), 1),
                                          PausedAt(Trial(1, api::kTrialRunning, {{1, 0.9}}), 1),
                                          PausedAt(Trial(2, api::kTrialRunning, {{1, 0.7}}), 1)};
  trials[0].cpu_seconds = 2.5;
  trials[1].cpu_seconds = 0.5;
  trials[2].cpu_seconds = 2.5;
  // Without a budget SHA starts trial 3: 6 more trials are to reach rung 1 first.
  Plan free = PlanSweep(s, 9, trials, *sampler, "sw-");
  ASSERT_EQ(free.start.size(), 1u);
  EXPECT_TRUE(free.resume.empty());
  // A fourth trial costs its first pass (1.83 s) and keeps room for the bracket's promotions:
  // of 4 trials at rung 1 one goes on to rung 3 (2 passes, 5 s at the costliest rate, 2.5 s a
  // pass): 12.33 in all.
  EXPECT_EQ(ShaPromotionPasses(s, 9, 4), 2);
  s.budget.cpu_seconds = 12.4;
  Plan room = PlanSweep(s, 9, trials, *sampler, "sw-");
  ASSERT_EQ(room.start.size(), 1u);
  EXPECT_TRUE(room.resume.empty());
  // With 10 it would fit without the promotions' room; it does not start, and no further trial
  // will: rung 1 is complete, and trial 1's two passes to rung 3 (1 s at its own rate) fit.
  s.budget.cpu_seconds = 10;
  Plan p = PlanSweep(s, 9, trials, *sampler, "sw-");
  EXPECT_TRUE(p.start.empty());
  ASSERT_EQ(p.resume.size(), 1u);
  EXPECT_EQ(p.resume[0].trial, 1u);
  EXPECT_EQ(p.resume[0].rung, 1);
  EXPECT_EQ(p.phase, api::kSweepRunning);
  // Once a rung has promoted, the bracket is closed: room found in a later look starts nothing.
  ApplyRungSteps(p, &trials);
  s.budget.cpu_seconds = 100;
  s.parallelism = 2;
  Plan later = PlanSweep(s, 9, trials, *sampler, "sw-");
  EXPECT_TRUE(later.start.empty());
  EXPECT_EQ(later.phase, api::kSweepRunning);
}

// One bracket's promotions: floor(n/eta) of the n trials at each rung go on to the next stop.
TEST(PlannerTest, ShaPromotionPassesCountsTheBracket) {
  api::SweepSpec s = TestSpec();
  s.early_stopping = {.policy = api::kStoppingSha, .min_passes = 1, .reduction_factor = 3};
  EXPECT_EQ(ShaPromotionPasses(s, 9, 27), 9 * 2 + 3 * 6);  // rungs 1 and 3 of 9 passes
  EXPECT_EQ(ShaPromotionPasses(s, 9, 8), 2 * 2);           // 2 go on from rung 1, none from rung 3
  EXPECT_EQ(ShaPromotionPasses(s, 9, 2), 0);
  EXPECT_EQ(ShaPromotionPasses(s, 10, 27), 9 * 2 + 3 * 6 + 1 * 1);  // rungs 1, 3 and 9 of 10
  s.early_stopping.reduction_factor = 2;
  EXPECT_EQ(ShaPromotionPasses(s, 4, 4), 2 * 1 + 1 * 2);  // rungs 1 and 2 of 4
}

}  // namespace
}  // namespace tandem::sweep
