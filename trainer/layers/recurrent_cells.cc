#include "trainer/layers/recurrent_cells.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace tandem::trainer {
namespace {

// e^x by range reduction x = n ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial for e^r (Cephes'
// expf coefficients) and 2^n built in the exponent bits. Branch-free, so loops over it vectorise.
inline float Exp(float x) {
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

inline float Sigmoid(float x) { return 1.f / (1.f + Exp(-x)); }
// tanh(x) = 1 - 2 / (e^{2x} + 1): exact at the limits, absolute error ~1e-7 near 0.
inline float Tanh(float x) { return 1.f - 2.f / (Exp(2.f * x) + 1.f); }

}  // namespace

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TANDEM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TANDEM_VECTOR_CLONES
#endif

TANDEM_VECTOR_CLONES
void LstmCellForward(int64_t h, float* gates, const float* c_prev, float* c, float* out_h) {
  float* gi = gates;
  float* gf = gates + h;
  float* gg = gates + 2 * h;
  float* go = gates + 3 * h;
  if (c_prev == nullptr) {
#pragma omp simd
    for (int64_t k = 0; k < h; ++k) {
      const float i = Sigmoid(gi[k]), f = Sigmoid(gf[k]), g = Tanh(gg[k]), o = Sigmoid(go[k]);
      gi[k] = i;
      gf[k] = f;
      gg[k] = g;
      go[k] = o;
      const float ck = i * g;
      c[k] = ck;
      out_h[k] = o * Tanh(ck);
    }
    return;
  }
#pragma omp simd
  for (int64_t k = 0; k < h; ++k) {
    const float i = Sigmoid(gi[k]), f = Sigmoid(gf[k]), g = Tanh(gg[k]), o = Sigmoid(go[k]);
    gi[k] = i;
    gf[k] = f;
    gg[k] = g;
    go[k] = o;
    const float ck = f * c_prev[k] + i * g;
    c[k] = ck;
    out_h[k] = o * Tanh(ck);
  }
}

TANDEM_VECTOR_CLONES
void LstmCellBackward(int64_t h, const float* gates, const float* c, const float* c_prev,
                      const float* dh, float* dc, float* dgates) {
  const float* gi = gates;
  const float* gf = gates + h;
  const float* gg = gates + 2 * h;
  const float* go = gates + 3 * h;
#pragma omp simd
  for (int64_t k = 0; k < h; ++k) {
    const float i = gi[k], f = gf[k], g = gg[k], o = go[k];
    const float tc = Tanh(c[k]);
    const float dct = dh[k] * o * (1.f - tc * tc) + dc[k];
    const float cp = c_prev != nullptr ? c_prev[k] : 0.f;
    dgates[k] = dct * g * i * (1.f - i);
    dgates[h + k] = dct * cp * f * (1.f - f);
    dgates[2 * h + k] = dct * i * (1.f - g * g);
    dgates[3 * h + k] = dh[k] * tc * o * (1.f - o);
    dc[k] = dct * f;
  }
}

TANDEM_VECTOR_CLONES
void GruCellForward(int64_t h, float* gx, const float* gh, const float* h_prev, float* out_h) {
#pragma omp simd
  for (int64_t k = 0; k < h; ++k) {
    const float rg = Sigmoid(gx[k] + gh[k]);
    const float z = Sigmoid(gx[h + k] + gh[h + k]);
    const float nn = Tanh(gx[2 * h + k] + rg * gh[2 * h + k]);
    gx[k] = rg;
    gx[h + k] = z;
    gx[2 * h + k] = nn;
    out_h[k] = (1.f - z) * nn + (h_prev != nullptr ? z * h_prev[k] : 0.f);
  }
}

TANDEM_VECTOR_CLONES
void VectorTanh(int64_t n, const float* x, float* y) {
#pragma omp simd
  for (int64_t k = 0; k < n; ++k) y[k] = Tanh(x[k]);
}

}  // namespace tandem::trainer
