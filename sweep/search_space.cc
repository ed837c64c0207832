#include "sweep/search_space.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tandem::sweep {
namespace {

using json = nlohmann::json;

bool IsLog(const api::SweepParameter& p) { return p.scale == api::kScaleLog; }

// The range on its scale: [lo, hi) for int (one cell per integer), [lo, hi] for float.
void Range(const api::SweepParameter& p, double* lo, double* hi) {
  const double min = p.min.value_or(0), max = p.max.value_or(min);
  const double top = p.type == api::kParamInt ? max + 1 : max;
  *lo = IsLog(p) ? std::log(min) : min;
  *hi = IsLog(p) ? std::log(top) : top;
}

}  // namespace

json FromUnit(const api::SweepParameter& p, double u) {
  u = std::clamp(std::isfinite(u) ? u : 0.5, 0.0, 1.0);
  if (p.type == api::kParamChoice) {
    if (p.values.empty()) return json();
    size_t i = std::min(p.values.size() - 1, static_cast<size_t>(u * static_cast<double>(p.values.size())));
    return p.values[i];
  }
  double lo, hi;
  Range(p, &lo, &hi);
  double x = lo + u * (hi - lo);
  if (IsLog(p)) x = std::exp(x);
  if (p.type == api::kParamInt) {
    const double min = p.min.value_or(0), max = p.max.value_or(min);
    return static_cast<int64_t>(std::clamp(std::floor(x), min, max));
  }
  return std::clamp(x, p.min.value_or(x), p.max.value_or(x));
}

int ChoiceIndex(const api::SweepParameter& p, const json& value) {
  for (size_t i = 0; i < p.values.size(); ++i)
    if (p.values[i] == value) return static_cast<int>(i);
  return -1;
}

double ToUnit(const api::SweepParameter& p, const json& value) {
  if (p.type == api::kParamChoice) {
    int i = ChoiceIndex(p, value);
    if (i < 0) return 0.5;
    return (i + 0.5) / static_cast<double>(p.values.size());
  }
  if (!value.is_number()) return 0.5;
  double v = value.get<double>();
  if (p.type == api::kParamInt) v += 0.5;  // the centre of the integer's cell
  double lo, hi;
  Range(p, &lo, &hi);
  if (hi <= lo) return 0.5;
  double x = IsLog(p) ? std::log(std::max(v, 1e-300)) : v;
  return std::clamp((x - lo) / (hi - lo), 0.0, 1.0);
}

std::vector<json> GridValues(const api::SweepParameter& p) {
  if (p.type == api::kParamChoice) return p.values;
  const double min = p.min.value_or(0), max = p.max.value_or(min);
  const int64_t n = std::max<int64_t>(1, p.grid_points);
  std::vector<json> out;
  for (int64_t k = 0; k < n; ++k) {
    const double t = n == 1 ? 0.5 : static_cast<double>(k) / static_cast<double>(n - 1);
    double x = IsLog(p) ? std::exp(std::log(min) + t * (std::log(max) - std::log(min))) : min + t * (max - min);
    json v;
    if (p.type == api::kParamInt) v = static_cast<int64_t>(std::clamp(std::round(x), min, max));
    else v = std::clamp(x, min, max);
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  return out;
}

int64_t GridSize(const api::SweepSpec& spec) {
  int64_t size = 1;
  for (const api::SweepParameter& p : spec.parameters) {
    const int64_t n = static_cast<int64_t>(GridValues(p).size());
    if (n == 0) return 0;
    if (size > std::numeric_limits<int64_t>::max() / n) return std::numeric_limits<int64_t>::max();
    size *= n;
  }
  return size;
}

}  // namespace tandem::sweep
