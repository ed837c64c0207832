#include "sweep/sampler.h"

#include <cmath>
#include <cstdio>
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

// --- cost-aware TPE (algorithm.costAware) ---

// A cost per pass that the parameters set: act relu 1, tanh 4, sigmoid 9 (as a layer's width
// sets a pass' cost), times e^(1.5 u) over size's unit interval.
double CostOf(const json& p) {
  const double act = p["act"] == "relu" ? 1.0 : p["act"] == "tanh" ? 4.0 : 9.0;
  const api::SweepSpec s = TestSpec();
  return act * std::exp(1.5 * ToUnit(s.parameters[2], p["size"]));
}

// Runs `n` trials of `s` one after the other, each finished with `objective(p)` and, when
// `measured`, its cost per pass; returns the trials.
std::vector<api::TrialStatus> RunSweep(const api::SweepSpec& s, int n, double (*objective)(const json&),
                                       bool measured = true) {
  auto sampler = NewSampler(s);
  std::vector<api::TrialStatus> done;
  for (int i = 0; i < n; ++i) {
    json p = *sampler->Suggest(i, done);
    api::TrialStatus t = Trial(i, api::kTrialSucceeded, {{1, objective(p)}}, p);
    if (measured) t.cost = CostOf(p);
    done.push_back(std::move(t));
  }
  return done;
}

// An objective that does not depend on act or size: noise from the learning rate alone, so that
// the good trials differ from one suggestion to the next as in a real search.
double Flat(const json& p) {
  const double x = std::sin(p["lr"].get<double>() * 12345.678) * 43758.5453;
  return 0.5 + 0.01 * (x - std::floor(x));
}

TEST(CostAwareTpeTest, CostModelLearnsWhatEachValueCosts) {
  api::SweepSpec s = TestSpec(api::kAlgorithmTpe);
  std::vector<api::TrialStatus> trials = RunSweep(TestSpec(api::kAlgorithmRandom), 40, Score);
  for (const char* act : {"relu", "tanh", "sigmoid"}) {
    for (int size : {16, 136, 256}) {
      json p = {{"lr", 0.01}, {"momentum", 0.9}, {"size", size}, {"act", act}};
      // Shrinkage pulls each effect a little towards the mean: within 25% of the true cost.
      EXPECT_NEAR(PredictedLogCost(s, trials, p), std::log(CostOf(p)), 0.25) << act << " " << size;
    }
  }
  // Fewer than two measured trials: no model (every prediction the same).
  std::vector<api::TrialStatus> one = {trials[0]};
  EXPECT_EQ(PredictedLogCost(s, one, {{"act", "relu"}, {"size", 16}}),
            PredictedLogCost(s, one, {{"act", "sigmoid"}, {"size", 256}}));
}

TEST(CostAwareTpeTest, PicksTheCheapRegionMoreOftenWhenObjectivesAreEqual) {
  int cheap_plain = 0, cheap_aware = 0, trials_after_startup = 0;
  for (int64_t seed = 1; seed <= 5; ++seed) {
    api::SweepSpec plain = TestSpec(api::kAlgorithmTpe);
    plain.seed = seed;
    plain.max_trials = 30;
    plain.algorithm.startup_trials = 6;
    api::SweepSpec aware = plain;
    aware.algorithm.cost_aware.enabled = true;  // the defaults: exponent 1, cooling
    std::vector<api::TrialStatus> a = RunSweep(plain, 30, Flat), b = RunSweep(aware, 30, Flat);
    for (size_t i = 6; i < 30; ++i) {
      cheap_plain += a[i].parameters["act"] == "relu";
      cheap_aware += b[i].parameters["act"] == "relu";
      ++trials_after_startup;
    }
  }
  // Equal objectives: plain TPE has no reason to prefer a value (about a third each); the
  // cost-aware one prefers the cheapest, most while alpha is near 1.
  EXPECT_GT(cheap_aware, cheap_plain + trials_after_startup / 6) << cheap_aware << " vs " << cheap_plain;
  EXPECT_GT(cheap_aware, trials_after_startup / 2);
  std::printf("relu (the cheapest) after startup: %d of %d with costAware, %d of %d without\n", cheap_aware,
              trials_after_startup, cheap_plain, trials_after_startup);
}

TEST(CostAwareTpeTest, ExponentZeroIsPlainTpeExactly) {
  api::SweepSpec plain = TestSpec(api::kAlgorithmTpe);
  plain.algorithm.startup_trials = 4;
  plain.max_trials = 30;
  std::vector<api::TrialStatus> history = RunSweep(plain, 30, Score);  // with measured costs
  api::SweepSpec zero = plain;
  zero.algorithm.cost_aware = {.enabled = true, .exponent = 0.0, .cooling = false};
  api::SweepSpec cooled_out = plain;  // cooled to 0 at the end of the budget
  cooled_out.algorithm.cost_aware.enabled = true;
  auto p = NewSampler(plain), z = NewSampler(zero), c = NewSampler(cooled_out);
  for (int64_t i = 0; i < 30; ++i) {
    std::vector<api::TrialStatus> before(history.begin(), history.begin() + i);
    EXPECT_EQ(*z->Suggest(i, before), *p->Suggest(i, before)) << i;
  }
  EXPECT_EQ(CostExponent(cooled_out, 30), 0.0);
  EXPECT_EQ(*c->Suggest(30, history), *p->Suggest(30, history));
  // And the exponent matters: with alpha 1 some suggestion differs.
  api::SweepSpec one = zero;
  one.algorithm.cost_aware.exponent = 1.0;
  auto o = NewSampler(one);
  int differ = 0;
  for (int64_t i = 4; i < 30; ++i) {
    std::vector<api::TrialStatus> before(history.begin(), history.begin() + i);
    differ += *o->Suggest(i, before) != *p->Suggest(i, before);
  }
  EXPECT_GT(differ, 0);
}

TEST(CostAwareTpeTest, NoMeasuredCostIsPlainTpe) {
  api::SweepSpec plain = TestSpec(api::kAlgorithmTpe);
  plain.algorithm.startup_trials = 4;
  api::SweepSpec aware = plain;
  aware.algorithm.cost_aware.enabled = true;
  std::vector<api::TrialStatus> history = RunSweep(plain, 15, Score, /*measured=*/false);
  EXPECT_EQ(*NewSampler(aware)->Suggest(15, history), *NewSampler(plain)->Suggest(15, history));
}

TEST(CostAwareTpeTest, SeedsReproduce) {
  api::SweepSpec s = TestSpec(api::kAlgorithmTpe);
  s.algorithm.startup_trials = 4;
  s.max_trials = 25;
  s.algorithm.cost_aware.enabled = true;
  std::vector<api::TrialStatus> a = RunSweep(s, 25, Score), b = RunSweep(s, 25, Score);
  api::SweepSpec other = s;
  other.seed = s.seed + 1;
  std::vector<api::TrialStatus> c = RunSweep(other, 25, Score);
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].parameters, b[i].parameters) << i;
    differ += a[i].parameters != c[i].parameters;
  }
  EXPECT_GT(differ, 0);
}

TEST(CostAwareTpeTest, CostCoolingTakesTheExponentFromItsValueToZero) {
  api::SweepSpec s = TestSpec(api::kAlgorithmTpe);
  s.max_trials = 26;
  s.algorithm.startup_trials = 6;
  EXPECT_EQ(CostExponent(s, 10), 0.0);  // off
  s.algorithm.cost_aware.enabled = true;
  s.algorithm.cost_aware.exponent = 0.8;
  EXPECT_DOUBLE_EQ(CostExponent(s, 0), 0.8);  // startup trials: the full exponent
  EXPECT_DOUBLE_EQ(CostExponent(s, 6), 0.8);
  EXPECT_DOUBLE_EQ(CostExponent(s, 16), 0.4);  // half the budget after startup spent
  EXPECT_DOUBLE_EQ(CostExponent(s, 26), 0.0);
  for (int64_t i = 6; i < 26; ++i) EXPECT_GT(CostExponent(s, i), CostExponent(s, i + 1)) << i;
  s.algorithm.cost_aware.cooling = false;
  EXPECT_DOUBLE_EQ(CostExponent(s, 25), 0.8);
}

TEST(CostAwareTpeTest, WithACpuBudgetCoolingFollowsWhicheverBudgetHasLessLeft) {
  api::SweepSpec s = TestSpec(api::kAlgorithmTpe);
  s.max_trials = 26;
  s.algorithm.startup_trials = 6;
  s.algorithm.cost_aware.enabled = true;
  s.algorithm.cost_aware.exponent = 0.8;
  EXPECT_DOUBLE_EQ(CostExponent(s, 6, 50), 0.8);  // no budget: the CPU spent does not matter
  s.budget.cpu_seconds = 100;
  EXPECT_DOUBLE_EQ(CostExponent(s, 6, 0), 0.8);
  EXPECT_DOUBLE_EQ(CostExponent(s, 6, 75), 0.2);   // a quarter of the CPU left, all trials
  EXPECT_DOUBLE_EQ(CostExponent(s, 21, 10), 0.2);  // a quarter of the trials left, most CPU
  EXPECT_DOUBLE_EQ(CostExponent(s, 6, 120), 0.0);  // overspent
  s.algorithm.cost_aware.cooling = false;
  EXPECT_DOUBLE_EQ(CostExponent(s, 6, 75), 0.8);
}


// --- multivariate TPE (algorithm.multivariate) ---

// Objectives with an interaction: the good learning rates depend on the momentum (a band where
// their unit values add up to 1, as lr / (1 - momentum) sets the step), or on the choice (relu
// wants the low third of lr's interval, tanh the high third, sigmoid is bad).
double Band(const json& p) {
  const api::SweepSpec s = TestSpec();
  const double d = ToUnit(s.parameters[0], p["lr"]) + ToUnit(s.parameters[1], p["momentum"]) - 1.0;
  return 1.0 - d * d;
}
bool InBand(const json& p) { return Band(p) > 1.0 - 0.1 * 0.1; }
double Conditional(const json& p) {
  const double u = ToUnit(TestSpec().parameters[0], p["lr"]);
  if (p["act"] == "relu") return 1.0 - std::abs(u - 0.15);
  if (p["act"] == "tanh") return 1.0 - std::abs(u - 0.85);
  return 0.0;
}
bool MatchesItsChoice(const json& p) {
  const double u = ToUnit(TestSpec().parameters[0], p["lr"]);
  return (p["act"] == "relu" && u < 1.0 / 3) || (p["act"] == "tanh" && u > 2.0 / 3);
}

// Of `n` suggestions after 40 random trials scored by `objective` (each from its own index, the
// history fixed), how many satisfy `good`.
int GoodSuggestions(bool multivariate, int64_t seed, double (*objective)(const json&), bool (*good)(const json&),
                    int n) {
  api::SweepSpec s = TestSpec(api::kAlgorithmTpe);
  s.seed = seed;
  s.max_trials = 40 + n;
  s.algorithm.multivariate = multivariate;
  api::SweepSpec r = s;
  r.algorithm.name = api::kAlgorithmRandom;
  r.algorithm.multivariate = false;
  std::vector<api::TrialStatus> history = RunSweep(r, 40, objective);
  auto tpe = NewSampler(s);
  int hits = 0;
  for (int64_t i = 40; i < 40 + n; ++i) hits += good(*tpe->Suggest(i, history));
  return hits;
}

TEST(MultivariateTpeTest, LearnsThatTwoRangesTradeOff) {
  int joint = 0, separate = 0, n = 0;
  for (int64_t seed = 1; seed <= 4; ++seed) {
    joint += GoodSuggestions(true, seed, Band, InBand, 100);
    separate += GoodSuggestions(false, seed, Band, InBand, 100);
    n += 100;
  }
  std::printf("in the good band: %d of %d multivariate, %d of %d per parameter\n", joint, n, separate, n);
  // The band covers every value of each parameter alone: a per-parameter density cannot find it.
  EXPECT_GT(joint * 10, separate * 16);
  EXPECT_GT(joint, n / 3);
}

TEST(MultivariateTpeTest, LearnsWhichRangeGoesWithWhichChoice) {
  int joint = 0, separate = 0, n = 0;
  for (int64_t seed = 1; seed <= 4; ++seed) {
    joint += GoodSuggestions(true, seed, Conditional, MatchesItsChoice, 100);
    separate += GoodSuggestions(false, seed, Conditional, MatchesItsChoice, 100);
    n += 100;
  }
  std::printf("lr matching act: %d of %d multivariate, %d of %d per parameter\n", joint, n, separate, n);
  EXPECT_GT(joint, separate + n / 5);
  EXPECT_GT(joint, n * 6 / 10);
}

TEST(MultivariateTpeTest, ReproducibleInRangeAndBetterThanRandom) {
  api::SweepSpec s = TestSpec(api::kAlgorithmTpe);
  s.algorithm.multivariate = true;
  s.algorithm.startup_trials = 2;
  s.max_trials = 40;
  auto tpe = NewSampler(s);
  std::vector<api::TrialStatus> trials;
  for (int i = 0; i < 40; ++i) {
    json p = *tpe->Suggest(i, trials);
    EXPECT_EQ(p, *NewSampler(s)->Suggest(i, trials)) << i;
    ASSERT_GE(p["lr"].get<double>(), 1e-4);
    ASSERT_LE(p["lr"].get<double>(), 1e-1);
    ASSERT_GE(p["momentum"].get<double>(), 0.5);
    ASSERT_LE(p["momentum"].get<double>(), 0.99);
    ASSERT_TRUE(p["size"].is_number_integer());
    ASSERT_GE(p["size"].get<int>(), 16);
    ASSERT_LE(p["size"].get<int>(), 256);
    ASSERT_TRUE(p["act"] == "relu" || p["act"] == "tanh" || p["act"] == "sigmoid") << p;
    trials.push_back(Trial(i, i % 3 == 0 ? api::kTrialStopped : api::kTrialSucceeded, {{1 + i % 2, Score(p)}}, p));
  }
  // A trial without a parameter, or with a value the spec does not list, is left out of the
  // model rather than misread.
  trials.push_back(Trial(40, api::kTrialSucceeded, {{2, 2.0}}, {{"lr", 0.01}}));
  trials.push_back(Trial(41, api::kTrialSucceeded, {{2, 2.0}},
                         {{"lr", 0.01}, {"momentum", 0.9}, {"size", 200}, {"act", "gelu"}}));
  EXPECT_TRUE(tpe->Suggest(42, trials).has_value());
  // Over seeds, its best of 40 beats random's best of 40 on the smooth objective.
  double joint_sum = 0, random_sum = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    api::SweepSpec m = TestSpec(api::kAlgorithmTpe);
    m.seed = static_cast<int64_t>(seed);
    m.algorithm.startup_trials = 8;
    m.algorithm.multivariate = true;
    api::SweepSpec r = m;
    r.algorithm.name = api::kAlgorithmRandom;
    r.algorithm.multivariate = false;
    auto best = [](const std::vector<api::TrialStatus>& ts) {
      double b = -1e9;
      for (const api::TrialStatus& t : ts) b = std::max(b, *t.objective);
      return b;
    };
    joint_sum += best(RunSweep(m, 40, Score));
    random_sum += best(RunSweep(r, 40, Score));
  }
  EXPECT_GT(joint_sum, random_sum);
}

TEST(MultivariateTpeTest, CostAwareWithExponentZeroIsPlainAndWithOnePrefersTheCheap) {
  api::SweepSpec plain = TestSpec(api::kAlgorithmTpe);
  plain.algorithm.multivariate = true;
  plain.algorithm.startup_trials = 4;
  plain.max_trials = 30;
  std::vector<api::TrialStatus> history = RunSweep(plain, 30, Flat);  // with measured costs
  api::SweepSpec zero = plain;
  zero.algorithm.cost_aware = {.enabled = true, .exponent = 0.0, .cooling = false};
  auto p = NewSampler(plain), z = NewSampler(zero);
  for (int64_t i = 0; i < 30; ++i) {
    std::vector<api::TrialStatus> before(history.begin(), history.begin() + i);
    EXPECT_EQ(*z->Suggest(i, before), *p->Suggest(i, before)) << i;
  }
  int cheap_plain = 0, cheap_aware = 0, after_startup = 0;
  for (int64_t seed = 1; seed <= 5; ++seed) {
    api::SweepSpec a = plain;
    a.seed = seed;
    a.algorithm.startup_trials = 6;
    api::SweepSpec b = a;
    b.algorithm.cost_aware.enabled = true;
    std::vector<api::TrialStatus> x = RunSweep(a, 30, Flat), y = RunSweep(b, 30, Flat);
    for (size_t i = 6; i < 30; ++i) {
      cheap_plain += x[i].parameters["act"] == "relu";
      cheap_aware += y[i].parameters["act"] == "relu";
      ++after_startup;
    }
  }
  std::printf("relu (the cheapest) after startup, multivariate: %d of %d with costAware, %d without\n", cheap_aware,
              after_startup, cheap_plain);
  EXPECT_GT(cheap_aware, cheap_plain + after_startup / 6);
}

}  // namespace
}  // namespace tandem::sweep
