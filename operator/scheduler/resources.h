// The three resources the scheduler accounts: CPU (milli-cores), memory (bytes), NVIDIA GPUs.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "api/object_meta.h"

namespace tandem::scheduler {

struct Resources {
  static constexpr int64_t kUnlimited = std::numeric_limits<int64_t>::max() / 4;

  int64_t milli_cpu = 0;
  int64_t memory = 0;  // bytes
  int64_t gpu = 0;

  static Resources Unlimited() { return {kUnlimited, kUnlimited, kUnlimited}; }

  Resources& operator+=(const Resources& o) {
    milli_cpu += o.milli_cpu;
    memory += o.memory;
    gpu += o.gpu;
    return *this;
  }
  Resources& operator-=(const Resources& o) {
    milli_cpu -= o.milli_cpu;
    memory -= o.memory;
    gpu -= o.gpu;
    return *this;
  }
  friend Resources operator+(Resources a, const Resources& b) { return a += b; }
  friend Resources operator-(Resources a, const Resources& b) { return a -= b; }
  friend Resources operator*(Resources a, int64_t n) { return {a.milli_cpu * n, a.memory * n, a.gpu * n}; }
  bool operator==(const Resources&) const = default;

  // Every component of *this <= the same component of `o`.
  bool FitsIn(const Resources& o) const {
    return milli_cpu <= o.milli_cpu && memory <= o.memory && gpu <= o.gpu;
  }
  bool IsZero() const { return milli_cpu == 0 && memory == 0 && gpu == 0; }
  // Component-wise max(0, *this - o).
  Resources ExcessOver(const Resources& o) const;

  // "cpu 1500m, memory 3Gi, nvidia.com/gpu 2"
  std::string ToString() const;
};

// Resource names as in Kubernetes, indexed 0 cpu, 1 memory, 2 nvidia.com/gpu.
inline constexpr const char* kResourceNames[] = {"cpu", "memory", "nvidia.com/gpu"};
int64_t Component(const Resources& r, int i);
std::string FormatComponent(int i, int64_t value);  // "1500m", "3Gi", "2"

// cpu, memory and nvidia.com/gpu of a ResourceList (others ignored); `unset` fills the absent.
Resources FromResourceList(const api::ResourceList& list, int64_t unset = 0);
api::ResourceList ToResourceList(const Resources& r);

}  // namespace tandem::scheduler
