#include "sweep/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "sweep/search_space.h"

namespace tandem::sweep {
namespace {

using json = nlohmann::json;
constexpr double kPi = 3.14159265358979323846;

// --- grid ---
class GridSampler : public Sampler {
 public:
  explicit GridSampler(const api::SweepSpec& spec) : spec_(spec) {
    for (const api::SweepParameter& p : spec.parameters) axes_.push_back(GridValues(p));
    size_ = GridSize(spec);
  }
  std::optional<json> Suggest(int64_t index, const std::vector<api::TrialStatus>&) const override {
    if (index < 0 || index >= size_) return std::nullopt;
    json out = json::object();
    int64_t rest = index;
    for (size_t i = axes_.size(); i-- > 0;) {  // the last parameter varies fastest
      const int64_t n = static_cast<int64_t>(axes_[i].size());
      out[spec_.parameters[i].name] = axes_[i][static_cast<size_t>(rest % n)];
      rest /= n;
    }
    return out;
  }

 private:
  const api::SweepSpec spec_;
  std::vector<std::vector<json>> axes_;
  int64_t size_ = 0;
};

json RandomPoint(const api::SweepSpec& spec, Rng& rng) {
  json out = json::object();
  for (const api::SweepParameter& p : spec.parameters) out[p.name] = FromUnit(p, rng.Uniform());
  return out;
}

// --- random ---
class RandomSampler : public Sampler {
 public:
  explicit RandomSampler(const api::SweepSpec& spec) : spec_(spec) {}
  std::optional<json> Suggest(int64_t index, const std::vector<api::TrialStatus>&) const override {
    Rng rng(static_cast<uint64_t>(spec_.seed), static_cast<uint64_t>(index));
    return RandomPoint(spec_, rng);
  }

 private:
  const api::SweepSpec spec_;
};

// --- tpe ---

double NormalCdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// A Gaussian N(mu, sigma) truncated to [0, 1]: a draw (by rejection) and the density at x.
double SampleTruncated(double mu, double sigma, Rng& rng) {
  for (int tries = 0; tries < 100; ++tries) {
    const double x = mu + sigma * rng.Normal();
    if (x >= 0.0 && x <= 1.0) return x;
  }
  return rng.Uniform();  // a component far outside [0, 1] (cannot happen with these bounds)
}

double TruncatedDensity(double x, double mu, double sigma) {
  const double mass = NormalCdf((1.0 - mu) / sigma) - NormalCdf((0.0 - mu) / sigma);
  const double z = (x - mu) / sigma;
  return std::exp(-0.5 * z * z) / (sigma * std::sqrt(2 * kPi) * std::max(mass, 1e-12));
}

// A mixture of Gaussians truncated to [0, 1], with equal weights.
class Parzen {
 public:
  // `points` in [0, 1]; a prior component N(0.5, 1) is always added.
  explicit Parzen(const std::vector<double>& points) {
    // Hyperopt's adaptive bandwidths: the prior's centre joins the observed points; each point's
    // sigma is the larger gap to its sorted neighbours (the ends have one), clipped to
    // [1 / min(100, n + 1), 1].
    std::vector<double> mus = points;
    mus.push_back(0.5);
    std::vector<size_t> order(mus.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return mus[a] < mus[b]; });
    const size_t n = mus.size();
    const double min_sigma = 1.0 / std::min<double>(100.0, 1.0 + static_cast<double>(n));
    std::vector<double> sigmas(n, 1.0);
    for (size_t r = 0; r < n && n > 1; ++r) {
      const double here = mus[order[r]];
      const double left = r == 0 ? 0.0 : here - mus[order[r - 1]];
      const double right = r + 1 == n ? 0.0 : mus[order[r + 1]] - here;
      sigmas[order[r]] = std::clamp(std::max(left, right), min_sigma, 1.0);
    }
    sigmas.back() = 1.0;  // the prior stays wide
    mus_ = std::move(mus);
    sigmas_ = std::move(sigmas);
  }

  double Sample(Rng& rng) const {
    const size_t k = std::min(mus_.size() - 1, static_cast<size_t>(rng.Uniform() * static_cast<double>(mus_.size())));
    return SampleTruncated(mus_[k], sigmas_[k], rng);
  }

  double LogDensity(double x) const {
    double sum = 0;
    for (size_t k = 0; k < mus_.size(); ++k) sum += TruncatedDensity(x, mus_[k], sigmas_[k]);
    return std::log(std::max(sum / static_cast<double>(mus_.size()), 1e-300));
  }

 private:
  std::vector<double> mus_, sigmas_;
};

// Where a trial lies in the search space, one coordinate per parameter: a range's unit value, a
// choice's index. nullopt when the trial lacks a parameter or has a value the spec does not list.
using Coords = std::vector<double>;
std::optional<Coords> TrialCoords(const api::SweepSpec& spec, const json& params) {
  Coords out;
  for (const api::SweepParameter& p : spec.parameters) {
    if (!params.contains(p.name)) return std::nullopt;
    if (p.type == api::kParamChoice) {
      const int k = ChoiceIndex(p, params[p.name]);
      if (k < 0) return std::nullopt;
      out.push_back(k);
    } else {
      out.push_back(ToUnit(p, params[p.name]));
    }
  }
  return out;
}

// The multivariate TPE's density (algorithm.multivariate): a mixture, with equal weights, of one
// product kernel per observed point and a prior kernel (N(0.5, 1) on each range, uniform on each
// choice), so that where a good trial lay in one parameter stays tied to where it lay in the
// others. Ranges: Gaussians truncated to [0, 1] with one bandwidth, Scott's rule 0.2 n^(-1/(d+4))
// clipped to [1 / min(100, n + 2), 1] (as Optuna's multivariate TPE; Falkner, Klein and Hutter,
// BOHB, ICML 2018, likewise fit one joint KDE). Choices: each point's own value has weight 1 +
// 1/(n+1) against 1/(n+1) for every other value, normalised (sharper as points accumulate).
class JointParzen {
 public:
  JointParzen(const api::SweepSpec& spec, std::vector<Coords> points) : spec_(spec), points_(std::move(points)) {
    const double n = static_cast<double>(points_.size());
    const double d = static_cast<double>(spec.parameters.size());
    sigma_ = std::clamp(0.2 * std::pow(std::max(n, 1.0), -1.0 / (d + 4.0)), 1.0 / std::min(100.0, n + 2.0), 1.0);
    off_ = 1.0 / (n + 1.0);
  }

  Coords Sample(Rng& rng) const {
    const size_t m = points_.size() + 1;  // the last component is the prior
    const size_t k = std::min(m - 1, static_cast<size_t>(rng.Uniform() * static_cast<double>(m)));
    Coords x(spec_.parameters.size());
    for (size_t p = 0; p < x.size(); ++p) {
      const api::SweepParameter& par = spec_.parameters[p];
      if (par.type != api::kParamChoice) {
        x[p] = k == points_.size() ? SampleTruncated(0.5, 1.0, rng) : SampleTruncated(points_[k][p], sigma_, rng);
        continue;
      }
      const size_t n_values = par.values.size();
      double u = rng.Uniform() * (k == points_.size() ? 1.0 : Norm(n_values));
      size_t pick = n_values - 1;
      for (size_t v = 0; v < n_values; ++v) {
        u -= k == points_.size() ? 1.0 / static_cast<double>(n_values) : ChoiceWeight(k, p, v);
        if (u < 0) {
          pick = v;
          break;
        }
      }
      x[p] = static_cast<double>(pick);
    }
    return x;
  }

  double LogDensity(const Coords& x) const {
    // log of the mean over the components of the product of their kernels (log-sum-exp).
    std::vector<double> logs;
    logs.reserve(points_.size() + 1);
    for (size_t k = 0; k <= points_.size(); ++k) {
      double log_k = 0;
      for (size_t p = 0; p < x.size(); ++p) {
        const api::SweepParameter& par = spec_.parameters[p];
        const size_t n_values = par.values.size();
        double density;
        if (par.type != api::kParamChoice) {
          density = k == points_.size() ? TruncatedDensity(x[p], 0.5, 1.0) : TruncatedDensity(x[p], points_[k][p], sigma_);
        } else {
          density = k == points_.size() ? 1.0 / static_cast<double>(n_values)
                                        : ChoiceWeight(k, p, static_cast<size_t>(x[p])) / Norm(n_values);
        }
        log_k += std::log(std::max(density, 1e-300));
      }
      logs.push_back(log_k);
    }
    const double top = *std::max_element(logs.begin(), logs.end());
    double sum = 0;
    for (double l : logs) sum += std::exp(l - top);
    return top + std::log(sum / static_cast<double>(logs.size()));
  }

 private:
  // Point k's unnormalised weight on value v of choice p, and the normaliser of n_values values.
  double ChoiceWeight(size_t k, size_t p, size_t v) const {
    return (static_cast<size_t>(points_[k][p]) == v ? 1.0 : 0.0) + off_;
  }
  double Norm(size_t n_values) const { return 1.0 + off_ * static_cast<double>(n_values); }

  const api::SweepSpec& spec_;
  std::vector<Coords> points_;
  double sigma_ = 1.0, off_ = 1.0;
};

// The cost-aware acquisition's model of what a trial costs: log(cost) as an additive
// function of the parameters, log c(x) = b + sum_p f_p(x_p), with f_p one effect per value of a
// choice and a slope on the unit interval for a range, fitted by backfitting (ridge: each effect
// and each slope shrunk towards 0 as if one more trial had cost the mean). Additive in the
// parameters as TPE's own density ratio is a product over them, so the acquisition
// log l(x) - log g(x) - alpha log c(x) is a sum of one term per parameter and its maximum over
// the candidates of every parameter (their cross product) is taken parameter by parameter, from
// the very draws plain TPE makes: with alpha 0 the suggestion is plain TPE's, exactly.
class CostModel {
 public:
  CostModel(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials) : spec_(spec) {
    std::vector<const api::TrialStatus*> measured;
    for (const api::TrialStatus& t : trials)
      if (t.cost > 0 && std::isfinite(t.cost)) measured.push_back(&t);
    const size_t n = measured.size(), np = spec.parameters.size();
    terms_.resize(np);
    if (n < 2) return;  // nothing to tell costs apart with
    std::vector<double> y(n);
    for (size_t i = 0; i < n; ++i) y[i] = std::log(measured[i]->cost);
    // The parameters of every measured trial: a choice's index (-1: missing or unknown), a
    // range's unit value (NaN: missing).
    std::vector<std::vector<double>> x(np, std::vector<double>(n));
    for (size_t p = 0; p < np; ++p) {
      const api::SweepParameter& par = spec.parameters[p];
      Term& term = terms_[p];
      if (par.type == api::kParamChoice) term.effect.assign(par.values.size(), 0.0);
      double sum_u = 0, count_u = 0;
      for (size_t i = 0; i < n; ++i) {
        const nlohmann::json& params = measured[i]->parameters;
        if (!params.contains(par.name)) {
          x[p][i] = par.type == api::kParamChoice ? -1.0 : std::nan("");
        } else if (par.type == api::kParamChoice) {
          x[p][i] = ChoiceIndex(par, params[par.name]);
        } else {
          x[p][i] = ToUnit(par, params[par.name]);
          sum_u += x[p][i];
          ++count_u;
        }
      }
      if (count_u > 0) term.centre = sum_u / count_u;
    }
    const double mean = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(n);
    base_ = mean;
    std::vector<double> fitted(n, mean);  // b + sum of the terms, per trial
    auto term_at = [&](size_t p, size_t i) {
      const Term& t = terms_[p];
      const double v = x[p][i];
      if (spec.parameters[p].type == api::kParamChoice) return v >= 0 ? t.effect[static_cast<size_t>(v)] : 0.0;
      return std::isnan(v) ? 0.0 : t.slope * (v - t.centre);
    };
    // One pseudo-trial at the mean: weight 1 on a choice's effect, the variance of a uniform unit
    // value (1/12) on a slope.
    constexpr double kChoicePrior = 1.0, kSlopePrior = 1.0 / 12.0;
    for (int sweep = 0; sweep < 50; ++sweep) {
      double change = 0;
      for (size_t p = 0; p < np; ++p) {
        Term& t = terms_[p];
        std::vector<double> partial(n);  // y minus b and every other term
        for (size_t i = 0; i < n; ++i) partial[i] = y[i] - fitted[i] + term_at(p, i);
        for (size_t i = 0; i < n; ++i) fitted[i] -= term_at(p, i);
        if (spec.parameters[p].type == api::kParamChoice) {
          std::vector<double> sum(t.effect.size(), 0.0), count(t.effect.size(), 0.0);
          for (size_t i = 0; i < n; ++i)
            if (x[p][i] >= 0) {
              sum[static_cast<size_t>(x[p][i])] += partial[i];
              count[static_cast<size_t>(x[p][i])] += 1;
            }
          for (size_t k = 0; k < t.effect.size(); ++k) {
            const double e = sum[k] / (count[k] + kChoicePrior);
            change = std::max(change, std::abs(e - t.effect[k]));
            t.effect[k] = e;
          }
        } else {
          double sxy = 0, sxx = 0;
          for (size_t i = 0; i < n; ++i)
            if (!std::isnan(x[p][i])) {
              sxy += (x[p][i] - t.centre) * partial[i];
              sxx += (x[p][i] - t.centre) * (x[p][i] - t.centre);
            }
          const double slope = sxy / (sxx + kSlopePrior);
          change = std::max(change, std::abs(slope - t.slope));
          t.slope = slope;
        }
        for (size_t i = 0; i < n; ++i) fitted[i] += term_at(p, i);
      }
      if (change < 1e-9) break;
    }
  }

  // f_p(value) of parameter p, for a choice's index k or a range's unit value u.
  double ChoiceTerm(size_t p, size_t k) const {
    return k < terms_[p].effect.size() ? terms_[p].effect[k] : 0.0;
  }
  double RangeTerm(size_t p, double u) const { return terms_[p].slope * (u - terms_[p].centre); }
  // The predicted log cost of `params` (tests).
  double LogCost(const nlohmann::json& params) const {
    double out = base_;
    for (size_t p = 0; p < spec_.parameters.size(); ++p) {
      const api::SweepParameter& par = spec_.parameters[p];
      if (!params.contains(par.name)) continue;
      if (par.type == api::kParamChoice) {
        const int k = ChoiceIndex(par, params[par.name]);
        if (k >= 0) out += ChoiceTerm(p, static_cast<size_t>(k));
      } else {
        out += RangeTerm(p, ToUnit(par, params[par.name]));
      }
    }
    return out;
  }

 private:
  struct Term {
    std::vector<double> effect;  // choice: per value
    double slope = 0, centre = 0.5;  // range
  };
  const api::SweepSpec& spec_;
  double base_ = 0;
  std::vector<Term> terms_;
};

class TpeSampler : public Sampler {
 public:
  explicit TpeSampler(const api::SweepSpec& spec) : spec_(spec), goal_(api::ObjectiveGoal(spec.objective)) {}

  std::optional<json> Suggest(int64_t index, const std::vector<api::TrialStatus>& trials) const override {
    Rng rng(static_cast<uint64_t>(spec_.seed), static_cast<uint64_t>(index));
    std::vector<size_t> ranked = RankTrials(trials, goal_);
    const int64_t n = static_cast<int64_t>(ranked.size());
    if (n < std::max<int64_t>(1, spec_.algorithm.startup_trials)) return RandomPoint(spec_, rng);
    int64_t n_good = static_cast<int64_t>(std::ceil(spec_.algorithm.gamma * static_cast<double>(n)));
    n_good = std::clamp<int64_t>(n_good, 1, std::max<int64_t>(1, n - 1));
    // Cost-aware acquisition: the exponent alpha, cooled (CArBO) over the trials after startup.
    double alpha = 0;
    std::optional<CostModel> cost;
    if (spec_.algorithm.cost_aware.enabled) {
      double spent = 0;
      for (const api::TrialStatus& t : trials) spent += t.cpu_seconds;
      alpha = CostExponent(spec_, index, spent);
      if (alpha > 0) cost.emplace(spec_, trials);
    }
    const CostModel* c = cost ? &*cost : nullptr;
    if (spec_.algorithm.multivariate) return SuggestJoint(trials, ranked, n_good, rng, c, alpha);
    json out = json::object();
    for (size_t i = 0; i < spec_.parameters.size(); ++i) {
      const api::SweepParameter& p = spec_.parameters[i];
      std::vector<const json*> good, bad;
      for (int64_t r = 0; r < n; ++r) {
        const json& params = trials[ranked[static_cast<size_t>(r)]].parameters;
        if (!params.contains(p.name)) continue;
        (r < n_good ? good : bad).push_back(&params[p.name]);
      }
      out[p.name] = p.type == api::kParamChoice ? SuggestChoice(p, good, bad, rng, c, i, alpha)
                                                : SuggestRange(p, good, bad, rng, c, i, alpha);
    }
    return out;
  }

 private:
  // Multivariate: `candidates` points drawn from the joint density of the good trials, the one
  // with the highest log l(x) - log g(x) - alpha log c(x) kept (the cost model's terms summed).
  json SuggestJoint(const std::vector<api::TrialStatus>& trials, const std::vector<size_t>& ranked, int64_t n_good,
                    Rng& rng, const CostModel* cost, double alpha) const {
    std::vector<Coords> good, bad;
    for (size_t r = 0; r < ranked.size(); ++r)
      if (std::optional<Coords> x = TrialCoords(spec_, trials[ranked[r]].parameters))
        (static_cast<int64_t>(r) < n_good ? good : bad).push_back(std::move(*x));
    const JointParzen l(spec_, std::move(good)), g(spec_, std::move(bad));
    Coords best;
    double best_score = -INFINITY;
    for (int64_t c = 0; c < spec_.algorithm.candidates; ++c) {
      Coords x = l.Sample(rng);
      double score = l.LogDensity(x) - g.LogDensity(x);
      if (cost != nullptr)
        for (size_t p = 0; p < x.size(); ++p)
          score -= alpha * (spec_.parameters[p].type == api::kParamChoice ? cost->ChoiceTerm(p, static_cast<size_t>(x[p]))
                                                                           : cost->RangeTerm(p, x[p]));
      if (score > best_score) {
        best_score = score;
        best = std::move(x);
      }
    }
    json out = json::object();
    for (size_t p = 0; p < spec_.parameters.size(); ++p) {
      const api::SweepParameter& par = spec_.parameters[p];
      out[par.name] = par.type == api::kParamChoice ? par.values[static_cast<size_t>(best[p])] : FromUnit(par, best[p]);
    }
    return out;
  }

  // Each keeps the candidate with the highest log l - log g - alpha f(x), f the cost model's term
  // of parameter `i` (no model or alpha 0: plain TPE's choice from the same draws).
  json SuggestRange(const api::SweepParameter& p, const std::vector<const json*>& good,
                    const std::vector<const json*>& bad, Rng& rng, const CostModel* cost, size_t i,
                    double alpha) const {
    auto units = [&](const std::vector<const json*>& values) {
      std::vector<double> u;
      for (const json* v : values) u.push_back(ToUnit(p, *v));
      return u;
    };
    const Parzen l(units(good)), g(units(bad));
    double best_u = 0.5, best_score = -INFINITY;
    for (int64_t c = 0; c < spec_.algorithm.candidates; ++c) {
      const double u = l.Sample(rng);
      double score = l.LogDensity(u) - g.LogDensity(u);
      if (cost != nullptr) score -= alpha * cost->RangeTerm(i, u);
      if (score > best_score) {
        best_score = score;
        best_u = u;
      }
    }
    return FromUnit(p, best_u);
  }

  json SuggestChoice(const api::SweepParameter& p, const std::vector<const json*>& good,
                     const std::vector<const json*>& bad, Rng& rng, const CostModel* cost, size_t i,
                     double alpha) const {
    const size_t k = p.values.size();
    // Laplace-smoothed frequencies: a value no trial tried keeps a chance.
    auto weights = [&](const std::vector<const json*>& values) {
      std::vector<double> w(k, 1.0);
      for (const json* v : values)
        if (int i = ChoiceIndex(p, *v); i >= 0) w[static_cast<size_t>(i)] += 1.0;
      const double total = std::accumulate(w.begin(), w.end(), 0.0);
      for (double& x : w) x /= total;
      return w;
    };
    const std::vector<double> l = weights(good), g = weights(bad);
    size_t best = 0;
    double best_score = -INFINITY;
    for (int64_t c = 0; c < spec_.algorithm.candidates; ++c) {
      double u = rng.Uniform(), acc = 0;
      size_t pick = k - 1;
      for (size_t i = 0; i < k; ++i) {
        acc += l[i];
        if (u < acc) {
          pick = i;
          break;
        }
      }
      double score = std::log(l[pick]) - std::log(g[pick]);
      if (cost != nullptr) score -= alpha * cost->ChoiceTerm(i, pick);
      if (score > best_score) {
        best_score = score;
        best = pick;
      }
    }
    return p.values[best];
  }

  const api::SweepSpec spec_;
  const std::string goal_;
};

}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream) : state_(seed * 0x9E3779B97F4A7C15ULL ^ (stream + 1) * 0xD1B54A32D192ED03ULL) {
  Next();
}

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

double Rng::Normal() {
  double u1 = Uniform();
  while (u1 <= 0.0) u1 = Uniform();
  const double u2 = Uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * kPi * u2);
}

std::vector<size_t> RankTrials(const std::vector<api::TrialStatus>& trials, const std::string& goal) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < trials.size(); ++i) {
    const api::TrialStatus& t = trials[i];
    // ASHA: a trial paused at a rung has its value there (as one stopped there had).
    const bool finished = t.phase == api::kTrialSucceeded || t.phase == api::kTrialStopped ||
                          t.phase == api::kTrialPaused;
    if (finished && t.objective && !t.intermediate.empty()) idx.push_back(i);
  }
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    const int64_t pa = trials[a].intermediate.back().pass, pb = trials[b].intermediate.back().pass;
    if (pa != pb) return pa > pb;
    return api::IsBetter(goal, *trials[a].objective, *trials[b].objective);
  });
  return idx;
}

double CostExponent(const api::SweepSpec& spec, int64_t index, double spent_cpu_seconds) {
  const api::SweepAlgorithm::CostAware& ca = spec.algorithm.cost_aware;
  if (!ca.enabled) return 0;
  if (!ca.cooling) return ca.exponent;
  // Lee et al. (2020): alpha = (tau - tau_k) / (tau - tau_0), tau the budget, tau_k what is spent,
  // tau_0 the initial design's share; here the budget is maxTrials, tau_k the trials started
  // before this one and tau_0 the startup trials. With spec.budget.cpuSeconds, also CArBO's own
  // form in CPU seconds (tau_0 taken as 0): the smaller share left decides.
  const double left = static_cast<double>(spec.max_trials - index);
  const double after_startup = static_cast<double>(spec.max_trials - spec.algorithm.startup_trials);
  if (after_startup <= 0) return 0;
  double share_left = std::clamp(left / after_startup, 0.0, 1.0);
  if (spec.budget.cpu_seconds > 0)
    share_left = std::min(share_left, std::clamp(1.0 - spent_cpu_seconds / spec.budget.cpu_seconds, 0.0, 1.0));
  return ca.exponent * share_left;
}

std::vector<double> PredictedLogCosts(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials,
                                      const std::vector<nlohmann::json>& parameters) {
  const CostModel model(spec, trials);
  std::vector<double> out;
  out.reserve(parameters.size());
  for (const nlohmann::json& p : parameters) out.push_back(model.LogCost(p));
  return out;
}

double PredictedLogCost(const api::SweepSpec& spec, const std::vector<api::TrialStatus>& trials,
                        const nlohmann::json& parameters) {
  return CostModel(spec, trials).LogCost(parameters);
}

std::unique_ptr<Sampler> NewSampler(const api::SweepSpec& spec) {
  if (spec.algorithm.name == api::kAlgorithmGrid) return std::make_unique<GridSampler>(spec);
  if (spec.algorithm.name == api::kAlgorithmTpe) return std::make_unique<TpeSampler>(spec);
  return std::make_unique<RandomSampler>(spec);
}

}  // namespace tandem::sweep
