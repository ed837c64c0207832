#include "pserver/initializer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "pserver/placement.h"

namespace tandem::pserver {
namespace {

// A uniform double in [0, 1) from 53 bits of a counter-based hash of (seed, row, col, stream).
double Uniform01(uint64_t seed, uint64_t row, uint64_t col, uint64_t stream) {
  uint64_t h = Mix64(seed ^ Mix64(row ^ Mix64(col * 4 + stream)));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

}  // namespace

absl::Status ValidateInitializer(const Initializer& init) {
  auto finite = [](float v) { return std::isfinite(v); };
  switch (init.kind()) {
    case Initializer::CONSTANT:
      if (!finite(init.value())) return absl::InvalidArgumentError("init.value must be finite");
      return absl::OkStatus();
    case Initializer::UNIFORM:
      if (!finite(init.low()) || !finite(init.high()) || !(init.low() < init.high()))
        return absl::InvalidArgumentError(
            absl::StrCat("init: uniform needs finite low < high, got [", init.low(), ", ",
                         init.high(), ")"));
      return absl::OkStatus();
    case Initializer::NORMAL:
      if (!finite(init.mean()) || !finite(init.stddev()) || init.stddev() < 0)
        return absl::InvalidArgumentError(
            absl::StrCat("init: normal needs a finite mean and stddev >= 0, got stddev ",
                         init.stddev()));
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("init.kind: unknown initializer ", static_cast<int>(init.kind()),
                       " (known: CONSTANT, UNIFORM, NORMAL)"));
  }
}

float InitialValue(const Initializer& init, uint64_t row, uint64_t col) {
  switch (init.kind()) {
    case Initializer::UNIFORM: {
      const double u = Uniform01(init.seed(), row, col, 0);
      return static_cast<float>(init.low() + (double{init.high()} - init.low()) * u);
    }
    case Initializer::NORMAL: {
      // Box-Muller on two independent counter streams; 1 - u keeps the logarithm finite.
      const double u1 = 1.0 - Uniform01(init.seed(), row, col, 1);
      const double u2 = Uniform01(init.seed(), row, col, 2);
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
      return static_cast<float>(init.mean() + init.stddev() * z);
    }
    case Initializer::CONSTANT:
    default:
      return init.value();
  }
}

void InitializeRow(const Initializer& init, uint64_t row, absl::Span<float> out) {
  if (init.kind() == Initializer::CONSTANT) {
    for (float& v : out) v = init.value();
    return;
  }
  for (size_t j = 0; j < out.size(); ++j) out[j] = InitialValue(init, row, j);
}

}  // namespace tandem::pserver
