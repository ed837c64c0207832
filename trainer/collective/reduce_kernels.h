// Vectorised element-wise kernels of the ring all-reduce. Each has a generic version and an
// AVX-512 version, chosen once at start-up from the CPU's features (cpuid); results are
// bit-identical between the two (plain IEEE adds, round-to-nearest-even bf16).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tandem::collective {

// dst[i] += src[i].
void AddInto(float* dst, const float* src, size_t n);
// dst[i] *= scale.
void ScaleInPlace(float* dst, float scale, size_t n);
// bf16 (the upper 16 bits of an IEEE float), rounded to nearest even; NaN stays NaN.
void FloatToBf16(const float* src, uint16_t* dst, size_t n);
void Bf16ToFloat(const uint16_t* src, float* dst, size_t n);
// dst[i] += float(src[i]).
void AddBf16Into(float* dst, const uint16_t* src, size_t n);
// Rounds dst in place to bf16 precision (so the owner of a slice keeps exactly what it sends).
void RoundToBf16InPlace(float* dst, size_t n);

// "avx512" or "generic": the kernels in use.
const char* ReduceKernelIsa();

}  // namespace tandem::collective
