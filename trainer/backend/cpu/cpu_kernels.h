// Elementwise kernels of the CPU backend: activations' forward and backward passes, axpy and the
// dense optimizer updates. Each is compiled for AVX-512, AVX2+FMA and baseline x86-64 and the
// first call picks the best one the CPU supports, so release binaries stay portable and still
// use the wide vectors. Large arrays are split across the
// OpenMP threads; small ones (most activations of a batch) run on the calling thread, where a
// parallel region would cost more than the work.
//
// Each element is computed with the same operations in the same order as the plain loop; the
// AVX2/AVX-512 versions may fuse a multiply and an add (FMA), so the last bit can differ between
// CPU generations, never between runs on one machine. Pointers may alias only where noted.
#pragma once

#include <cstdint>

namespace tandem::trainer::cpu {

// y = max(x, 0) (NaN -> 0). y may equal x.
void ReluForward(int64_t n, const float* x, float* y);
// dx = y > 0 ? dy : 0. dx may equal dy.
void ReluBackward(int64_t n, const float* y, const float* dy, float* dx);
// y = 1 / (1 + e^-x) and y = tanh(x), with trainer/core/fast_math.h's polynomial exp (absolute
// error ~1e-7; libm's scalar calls were most of a tanh layer's time). y may equal x.
void SigmoidForward(int64_t n, const float* x, float* y);
void TanhForward(int64_t n, const float* x, float* y);
// dx = dy * y * (1 - y).
void SigmoidBackward(int64_t n, const float* y, const float* dy, float* dx);
// dx = dy * (1 - y * y).
void TanhBackward(int64_t n, const float* y, const float* dy, float* dx);
// y += alpha * x.
void Axpy(int64_t n, float alpha, const float* x, float* y);

// w -= lr * (g + wd * w).
void SgdUpdate(int64_t n, float lr, float wd, const float* g, float* w);
// m = mu * m + g + wd * w; w -= lr * m.
void MomentumUpdate(int64_t n, float lr, float mu, float wd, const float* g, float* m, float* w);
// Adam with bias correction folded into step_size and inv_sqrt_bc2 (see Optimizer).
void AdamUpdate(int64_t n, float step_size, float b1, float b2, float eps, float inv_sqrt_bc2,
                float wd, const float* g, float* m, float* v, float* w);
// s += g'^2; w -= lr * g' / (sqrt(s) + eps), g' = g + wd * w.
void AdagradUpdate(int64_t n, float lr, float eps, float wd, const float* g, float* s, float* w);

// "avx512", "avx2" or "generic": the instruction set the kernels above use on this CPU.
const char* KernelIsa();

}  // namespace tandem::trainer::cpu
