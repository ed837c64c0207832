#include "trainer/collective/reduce_kernels.h"

#include <cstring>

namespace tandem::collective {
namespace {

// The bodies are plain loops that GCC vectorises; the AVX-512 clones get 16 floats per op.
// Type punning goes through memcpy-free bit casts of whole words, which vectorise cleanly.
inline uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t RoundBf16(uint32_t u) {
  // Round to nearest even; NaNs keep a set quiet bit instead of rounding into infinity.
  uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  uint32_t nan = (u >> 16) | 0x0040u;
  bool is_nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  return static_cast<uint16_t>(is_nan ? nan : rounded);
}

#define TANDEM_KERNELS(SUFFIX, ATTR)                                                      \
  ATTR void AddInto##SUFFIX(float* __restrict d, const float* __restrict s, size_t n) {   \
    for (size_t i = 0; i < n; ++i) d[i] += s[i];                                          \
  }                                                                                       \
  ATTR void Scale##SUFFIX(float* __restrict d, float k, size_t n) {                       \
    for (size_t i = 0; i < n; ++i) d[i] *= k;                                             \
  }                                                                                       \
  ATTR void ToBf16##SUFFIX(const float* __restrict s, uint16_t* __restrict d, size_t n) { \
    for (size_t i = 0; i < n; ++i) d[i] = RoundBf16(Bits(s[i]));                          \
  }                                                                                       \
  ATTR void FromBf16##SUFFIX(const uint16_t* __restrict s, float* __restrict d, size_t n) { \
    for (size_t i = 0; i < n; ++i) d[i] = FromBits(static_cast<uint32_t>(s[i]) << 16);    \
  }                                                                                       \
  ATTR void AddBf16##SUFFIX(float* __restrict d, const uint16_t* __restrict s, size_t n) { \
    for (size_t i = 0; i < n; ++i) d[i] += FromBits(static_cast<uint32_t>(s[i]) << 16);   \
  }                                                                                       \
  ATTR void RoundBf16##SUFFIX(float* __restrict d, size_t n) {                            \
    for (size_t i = 0; i < n; ++i)                                                        \
      d[i] = FromBits(static_cast<uint32_t>(RoundBf16(Bits(d[i]))) << 16);                \
  }

TANDEM_KERNELS(Generic, )
TANDEM_KERNELS(Avx512, __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))))

struct Kernels {
  void (*add)(float*, const float*, size_t);
  void (*scale)(float*, float, size_t);
  void (*to_bf16)(const float*, uint16_t*, size_t);
  void (*from_bf16)(const uint16_t*, float*, size_t);
  void (*add_bf16)(float*, const uint16_t*, size_t);
  void (*round_bf16)(float*, size_t);
  const char* isa;
};

const Kernels& Active() {
  static const Kernels k = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
      return Kernels{AddIntoAvx512,  ScaleAvx512,   ToBf16Avx512,     FromBf16Avx512,
                     AddBf16Avx512, RoundBf16Avx512, "avx512"};
    return Kernels{AddIntoGeneric,  ScaleGeneric,    ToBf16Generic,    FromBf16Generic,
                   AddBf16Generic, RoundBf16Generic, "generic"};
  }();
  return k;
}

}  // namespace

void AddInto(float* dst, const float* src, size_t n) { Active().add(dst, src, n); }
void ScaleInPlace(float* dst, float scale, size_t n) { Active().scale(dst, scale, n); }
void FloatToBf16(const float* src, uint16_t* dst, size_t n) { Active().to_bf16(src, dst, n); }
void Bf16ToFloat(const uint16_t* src, float* dst, size_t n) { Active().from_bf16(src, dst, n); }
void AddBf16Into(float* dst, const uint16_t* src, size_t n) { Active().add_bf16(dst, src, n); }
void RoundToBf16InPlace(float* dst, size_t n) { Active().round_bf16(dst, n); }
const char* ReduceKernelIsa() { return Active().isa; }

}  // namespace tandem::collective
