#include "trainer/layers/recurrent_cells.h"

#include <algorithm>
#include <cmath>

#include "trainer/core/fast_math.h"

namespace tandem::trainer {
namespace {

inline float Sigmoid(float x) { return FastSigmoid(x); }
inline float Tanh(float x) { return FastTanh(x); }

}  // namespace

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TANDEM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TANDEM_VECTOR_CLONES
#endif

namespace {

// kGates: gates holds a term of the pre-activation; kXw: xw does; kPrev: c_prev is a state.
template <bool kGates, bool kXw, bool kPrev>
[[gnu::always_inline]] inline void LstmForwardBody(int64_t h, const float* xw, const float* bias,
                                                   float* gates, const float* c_prev, float* c,
                                                   float* out_h) {
  float* gi = gates;
  float* gf = gates + h;
  float* gg = gates + 2 * h;
  float* go = gates + 3 * h;
#pragma omp simd
  for (int64_t k = 0; k < h; ++k) {
    float pi = bias[k], pf = bias[h + k], pg = bias[2 * h + k], po = bias[3 * h + k];
    if constexpr (kGates) {
      pi += gi[k];
      pf += gf[k];
      pg += gg[k];
      po += go[k];
    }
    if constexpr (kXw) {
      pi += xw[k];
      pf += xw[h + k];
      pg += xw[2 * h + k];
      po += xw[3 * h + k];
    }
    const float i = Sigmoid(pi), f = Sigmoid(pf), g = Tanh(pg), o = Sigmoid(po);
    gi[k] = i;
    gf[k] = f;
    gg[k] = g;
    go[k] = o;
    float ck = i * g;
    if constexpr (kPrev) ck += f * c_prev[k];
    c[k] = ck;
    out_h[k] = o * Tanh(ck);
  }
}

}  // namespace

TANDEM_VECTOR_CLONES
void LstmCellForward(int64_t h, const float* xw, const float* bias, float* gates, bool gates_term,
                     const float* c_prev, float* c, float* out_h) {
  if (c_prev == nullptr) {
    if (xw == nullptr) {
      LstmForwardBody<true, false, false>(h, xw, bias, gates, c_prev, c, out_h);
    } else if (gates_term) {
      LstmForwardBody<true, true, false>(h, xw, bias, gates, c_prev, c, out_h);
    } else {
      LstmForwardBody<false, true, false>(h, xw, bias, gates, c_prev, c, out_h);
    }
  } else if (xw == nullptr) {
    LstmForwardBody<true, false, true>(h, xw, bias, gates, c_prev, c, out_h);
  } else {
    LstmForwardBody<true, true, true>(h, xw, bias, gates, c_prev, c, out_h);
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
