// The dropout mask as a pure function of (key, element index), so every backend draws the same
// mask for the same step without storing it: the CPU loop and the CUDA kernel both call
// DropoutKeep, and forward and backward recompute it instead of keeping a mask tensor.
//
//   const uint64_t key = DropoutKey(ctx.seed, salt, ctx.step);
//   y[i] = DropoutKeep(key, i, rate) ? x[i] / (1 - rate) : 0;
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define TANDEM_HOST_DEVICE __host__ __device__
#else
#define TANDEM_HOST_DEVICE
#endif

namespace tandem::trainer {

TANDEM_HOST_DEVICE inline uint64_t DropoutMix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One key per (run seed, layer salt, step).
TANDEM_HOST_DEVICE inline uint64_t DropoutKey(uint64_t seed, uint64_t salt, uint64_t step) {
  return DropoutMix(DropoutMix(seed ^ salt) ^ step);
}

// Whether element i survives: a uniform draw in [0, 1) from 53 bits of the hash, kept when >= rate.
TANDEM_HOST_DEVICE inline bool DropoutKeep(uint64_t key, int64_t i, float rate) {
  const uint64_t h = DropoutMix(key ^ static_cast<uint64_t>(i));
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0) >= static_cast<double>(rate);
}

}  // namespace tandem::trainer
