// The search algorithms of a Sweep (spec.algorithm): which parameters trial `index` gets.
//
//   grid    the full grid (GridValues of every parameter), in order, the last parameter fastest;
//           exhausted after GridSize(spec) trials.
//   random  every parameter uniform on its scale (log: log-uniform), independently.
//   tpe     a Tree-structured Parzen Estimator (Bergstra et al., 2011), written here: after
//           `startupTrials` trials have a value, the trials are ranked (further passes first,
//           then by objective) and split into the best `gamma` fraction and the rest; for each
//           parameter, `candidates` values are drawn from a Parzen density of the good trials
//           (truncated Gaussians on the unit interval, bandwidth from neighbour distances, plus
//           a wide prior) and the one with the highest ratio good/rest density is kept.
//           Choices: smoothed frequencies instead of Gaussians.
//           With algorithm.costAware: the sampler also learns what a trial costs (each trial's
//           measured cost, as an additive model of log cost in the parameters: one
//           effect per choice value, a slope per range) and keeps the candidate with the highest
//           l(x)/g(x) / cost(x)^alpha (expected improvement per second, Snoek et al., 2012);
//           alpha decays from costAware.exponent to 0 as the trials are spent (cost cooling,
//           CArBO, Lee et al., 2020). alpha 0, or no two trials measured: plain TPE, exactly.
//           With algorithm.multivariate: one joint density over all parameters for the good and
//           for the other trials (a product kernel per trial: truncated Gaussians with one
//           Scott's-rule bandwidth on the ranges, a categorical kernel on the choices, plus a
//           prior), `candidates` points drawn jointly, the best l/g (over cost^alpha) kept; so a
//           good value of one parameter may depend on the others (Falkner et al., BOHB, 2018;
//           Optuna's multivariate TPE).
//
// Reproducible: a suggestion is a pure function of (spec, index, the trials' parameters and
// values); each trial's random stream is seeded by (spec.seed, index) with our own generator, so
// the same sweep suggests the same values on every platform and standard library.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "api/sweep.h"
#include "nlohmann/json.hpp"

namespace tandem::sweep {

// SplitMix64 (Steele, Lea and Flood): a tiny generator with a fixed, portable output.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream);
  uint64_t Next();
  double Uniform();  // [0, 1), 53 bits
  double Normal();   // standard normal (Box-Muller)

 private:
  uint64_t state_;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  // The parameters (name -> value) of trial `index` given the sweep's `trials` so far; nullopt
  // when the search space is exhausted (grid). Deterministic.
  virtual std::optional<nlohmann::json> Suggest(int64_t index, const std::vector<api::TrialStatus>& trials) const = 0;
};

// The sampler of spec.algorithm.name (grid, random, tpe). REQUIRES: `spec` validated.
std::unique_ptr<Sampler> NewSampler(const api::SweepSpec& spec);

// The cost exponent alpha the cost-aware TPE uses for trial `index` (0 when costAware is off),
// with `spent_cpu_seconds` of spec.budget.cpuSeconds used: cooling follows whichever budget,
// trials or CPU, has the smaller share left.
double CostExponent(const api::SweepSpec& spec, int64_t index, double spent_cpu_seconds = 0);

// The cost model's predicted log(cost) of each of `parameters`, fitted once on the trials with
// a measured cost (status.trials[].cost). The planner prices new trials with it under a budget.
std::vector<double> PredictedLogCosts(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials,
                                      const std::vector<nlohmann::json>& parameters);
// The same for one (tests).
double PredictedLogCost(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials,
                        const nlohmann::json& parameters);

// Exposed for tests: the TPE ranking key of a trial (more passes first, then better objective).
// Trials without a value are left out. Returns the indexes into `trials`, best first.
std::vector<size_t> RankTrials(const std::vector<api::TrialStatus>& trials, const std::string& goal);

}  // namespace tandem::sweep
