#include "sweep/sampler.h"

#include <cmath>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "sweep/search_space.h"
#include "tests/sweep/sweep_spec.h"

namespace tandem::sweep {
namespace {

using json = nlohmann::json;
using testing::TestSpec;
using testing::Trial;

TEST(SearchSpaceTest, UnitMappingHonoursScaleAndType) {
  api::SweepSpec s = TestSpec();
  const api::SweepParameter& lr = s.parameters[0];
  EXPECT_NEAR(FromUnit(lr, 0.0).get<double>(), 1e-4, 1e-12);
  EXPECT_NEAR(FromUnit(lr, 1.0).get<double>(), 1e-1, 1e-12);
  EXPECT_NEAR(FromUnit(lr, 0.5).get<double>(), std::sqrt(1e-4 * 1e-1), 1e-9);  // log: the geometric mean
  EXPECT_NEAR(ToUnit(lr, json(std::sqrt(1e-4 * 1e-1))), 0.5, 1e-9);
  const api::SweepParameter& size = s.parameters[2];
  EXPECT_TRUE(FromUnit(size, 0.3).is_number_integer());
  EXPECT_EQ(FromUnit(size, 0.0), 16);
  EXPECT_EQ(FromUnit(size, 1.0), 256);  // the top integer is reachable
  for (int v : {16, 100, 256}) EXPECT_EQ(FromUnit(size, ToUnit(size, json(v))), v) << v;
  const api::SweepParameter& act = s.parameters[3];
  EXPECT_EQ(FromUnit(act, 0.0), "relu");
  EXPECT_EQ(FromUnit(act, 0.99), "sigmoid");
  EXPECT_EQ(FromUnit(act, ToUnit(act, json("tanh"))), "tanh");
}

TEST(SearchSpaceTest, GridValuesAreEvenOnTheirScale) {
  api::SweepSpec s = TestSpec();
  s.parameters[0].grid_points = 4;  // log: 1e-4, 1e-3, 1e-2, 1e-1
  std::vector<json> lr = GridValues(s.parameters[0]);
  ASSERT_EQ(lr.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(std::log10(lr[i].get<double>()), -4 + i, 1e-9);
  api::SweepParameter small{.name = "k", .path = "spec.passes", .type = api::kParamInt, .min = 1, .max = 2};
  small.grid_points = 5;  // only two integers: duplicates dropped
  EXPECT_EQ(GridValues(small), (std::vector<json>{1, 2}));
  EXPECT_EQ(GridSize(s), 4 * 3 * 3 * 3);
}

TEST(SamplerTest, GridEnumeratesEveryPointOnceThenIsExhausted) {
  api::SweepSpec s = TestSpec(api::kAlgorithmGrid);
  auto sampler = NewSampler(s);
  const int64_t n = GridSize(s);
  std::set<std::string> seen;
  for (int64_t i = 0; i < n; ++i) {
    std::optional<json> p = sampler->Suggest(i, {});
    ASSERT_TRUE(p.has_value()) << i;
    EXPECT_TRUE(seen.insert(p->dump()).second) << "repeated " << p->dump();
  }
  EXPECT_FALSE(sampler->Suggest(n, {}).has_value());
  EXPECT_EQ((*sampler->Suggest(0, {}))["act"], "relu");
  EXPECT_EQ((*sampler->Suggest(1, {}))["act"], "tanh");  // the last parameter varies fastest
}

TEST(SamplerTest, RandomIsReproducibleWithASeedAndStaysInRange) {
  api::SweepSpec s = TestSpec(api::kAlgorithmRandom);
  auto a = NewSampler(s);
  auto b = NewSampler(s);
  s.seed = 8;
  auto c = NewSampler(s);
  int below_1e3 = 0, differs = 0;
  std::map<std::string, int> acts;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    json p = *a->Suggest(i, {});
    EXPECT_EQ(p, *b->Suggest(i, {}));
    if (p != *c->Suggest(i, {})) ++differs;
    const double lr = p["lr"].get<double>();
    ASSERT_GE(lr, 1e-4);
    ASSERT_LE(lr, 1e-1);
    if (lr < 1e-3) ++below_1e3;
    ASSERT_GE(p["momentum"].get<double>(), 0.5);
    ASSERT_LE(p["momentum"].get<double>(), 0.99);
    ASSERT_TRUE(p["size"].is_number_integer());
    ASSERT_GE(p["size"].get<int>(), 16);
    ASSERT_LE(p["size"].get<int>(), 256);
    acts[p["act"].get<std::string>()]++;
  }
  EXPECT_GT(differs, n * 9 / 10);
  // Log-uniform over 3 decades: a third of the draws in the first decade (linear would give 0.9%).
  EXPECT_GT(below_1e3, n / 4);
  EXPECT_LT(below_1e3, n * 5 / 12);
  EXPECT_EQ(acts.size(), 3u);
  for (const auto& [act, count] : acts) EXPECT_GT(count, n / 4) << act;
}

// A synthetic objective with its optimum at lr = 1e-2, momentum 0.9, size 200, act tanh.
double Score(const json& p) {
  const double dl = std::log10(p["lr"].get<double>()) + 2;
  const double dm = (p["momentum"].get<double>() - 0.9) * 4;
  const double ds = (p["size"].get<double>() - 200) / 100;
  return 1.0 - 0.2 * (dl * dl + dm * dm + ds * ds) - (p["act"] == "tanh" ? 0 : 0.1);
}

double BestAfter(const std::string& algorithm, uint64_t seed, int trials) {
  api::SweepSpec s = TestSpec(algorithm);
  s.seed = static_cast<int64_t>(seed);
  s.algorithm.startup_trials = 8;
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> done;
  double best = -1e9;
  for (int i = 0; i < trials; ++i) {
    json p = *sampler->Suggest(i, done);
    const double v = Score(p);
    best = std::max(best, v);
    done.push_back(Trial(i, api::kTrialSucceeded, {{1, v}}, p));
  }
  return best;
}

TEST(SamplerTest, TpeIsReproducibleAndLearnsFromFinishedTrials) {
  api::SweepSpec s = TestSpec(api::kAlgorithmTpe);
  s.algorithm.startup_trials = 3;
  auto tpe = NewSampler(s);
  std::vector<api::TrialStatus> trials;
  for (int i = 0; i < 6; ++i) trials.push_back(Trial(i, api::kTrialSucceeded, {{1, Score(*tpe->Suggest(i, trials))}},
                                                     *tpe->Suggest(i, trials)));
  EXPECT_EQ(*tpe->Suggest(6, trials), *NewSampler(s)->Suggest(6, trials));
  // Before startupTrials trials have values, TPE samples as random does.
  api::SweepSpec r = s;
  r.algorithm.name = api::kAlgorithmRandom;
  EXPECT_EQ(*tpe->Suggest(1, {trials[0]}), *NewSampler(r)->Suggest(1, {}));
  // Over seeds, TPE's best of 40 beats random's best of 40 on a smooth objective.
  double tpe_sum = 0, random_sum = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    tpe_sum += BestAfter(api::kAlgorithmTpe, seed, 40);
    random_sum += BestAfter(api::kAlgorithmRandom, seed, 40);
  }
  EXPECT_GT(tpe_sum, random_sum);
}

TEST(SamplerTest, TpeValuesStayInRange) {
  api::SweepSpec s = TestSpec(api::kAlgorithmTpe);
  s.algorithm.startup_trials = 2;
  auto tpe = NewSampler(s);
  std::vector<api::TrialStatus> trials;
  for (int i = 0; i < 30; ++i) {
    json p = *tpe->Suggest(i, trials);
    ASSERT_GE(p["lr"].get<double>(), 1e-4);
    ASSERT_LE(p["lr"].get<double>(), 1e-1);
    ASSERT_TRUE(p["size"].is_number_integer());
    ASSERT_GE(p["size"].get<int>(), 16);
    ASSERT_LE(p["size"].get<int>(), 256);
    trials.push_back(Trial(i, i % 3 == 0 ? api::kTrialStopped : api::kTrialSucceeded, {{1 + i % 2, Score(p)}}, p));
  }
}

TEST(SamplerTest, RankingPutsFurtherPassesFirstThenTheBetterObjective) {
  std::vector<api::TrialStatus> trials = {
      Trial(0, api::kTrialStopped, {{1, 0.9}}), Trial(1, api::kTrialSucceeded, {{1, 0.5}, {3, 0.8}}),
      Trial(2, api::kTrialSucceeded, {{3, 0.85}}), Trial(3, api::kTrialRunning, {{1, 0.99}}),
      Trial(4, api::kTrialFailed, {})};
  EXPECT_EQ(RankTrials(trials, api::kGoalMaximize), (std::vector<size_t>{2, 1, 0}));
  EXPECT_EQ(RankTrials(trials, api::kGoalMinimize), (std::vector<size_t>{1, 2, 0}));
}

}  // namespace
}  // namespace tandem::sweep
