// Branch-free exp, sigmoid and tanh for element-wise loops that the compiler vectorises (the
// recurrent cells, the CPU backend's activation kernels). std::exp / std::tanh are scalar libm
// calls: in those loops they were half of an LSTM training step (perf, bench/seq2seq-vs-pytorch).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace tandem::trainer {

// e^x by range reduction x = n ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial for e^r (Cephes'
// expf coefficients: |relative error| < 2e-7 on the clamped range) and 2^n built in the exponent
// bits.
inline float FastExp(float x) {
  // Value selects, not std::min/max (which pass references and keep a branch in the loop).
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

inline float FastSigmoid(float x) { return 1.f / (1.f + FastExp(-x)); }
// tanh(x) = 1 - 2 / (e^{2x} + 1): exact at the limits, absolute error ~1e-7 near 0.
inline float FastTanh(float x) { return 1.f - 2.f / (FastExp(2.f * x) + 1.f); }

}  // namespace tandem::trainer
