// The LSTM and GRU cells' element-wise work, one step of one sequence, vectorised: the gate
// non-linearities are computed with a polynomial exp (Cephes' expf: |relative error| < 2e-7 on
// the clamped range) that the compiler turns into AVX-512 / AVX2 / SSE code, chosen at run time
// (GCC target_clones). The scalar std::exp/std::tanh calls this replaces were half the time of an
// LSTM training step (perf, bench/seq2seq-vs-pytorch). The divisions 1 / (1 + e) compile to a
// reciprocal estimate and one Newton step (-mrecip, trainer/layers/CMakeLists.txt: ~1 ulp).
//
// Gate layout: [i, f, g, o] pre-activations of `h` floats each (PyTorch's order).
#pragma once

#include <cstdint>

namespace tandem::trainer {

// The pre-activations are gates (when c_prev is not null: h_prev Wh, plus whatever part of
// x Wx is not in xw) + xw (a part of x Wx, may be null) + bias; with c_prev null (the zero state)
// gates is read only when xw is null or gates_term is true (a part of x Wx is in gates).
// gates receives the activations (sigmoid i, f, o; tanh g); c = f * c_prev + i * g,
// out_h = o * tanh(c).
void LstmCellForward(int64_t h, const float* xw, const float* bias, float* gates, bool gates_term,
                     const float* c_prev, float* c, float* out_h);

// From the activations `gates`, the cell `c`, `c_prev` (null: zero state), the gradient `dh` of
// out_h and `dc` of c from the next step: writes dgates (pre-activation gradients) and replaces
// dc with the gradient of c_prev. dgates may equal gates (in place).
void LstmCellBackward(int64_t h, const float* gates, const float* c, const float* c_prev,
                      const float* dh, float* dc, float* dgates);

// GRU (gru_layer.h's formulation): gx holds x W + b_x for [r, z, n] and receives the
// activations r, z, n; gh holds h_prev U + b_h; out_h = (1 - z) * n + z * h_prev (h_prev null:
// zero state).
void GruCellForward(int64_t h, float* gx, const float* gh, const float* h_prev, float* out_h);

// Element-wise tanh with the same vectorised exp (y may equal x).
void VectorTanh(int64_t n, const float* x, float* y);

}  // namespace tandem::trainer
