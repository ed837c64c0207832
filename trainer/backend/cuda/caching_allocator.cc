#include "trainer/backend/cuda/caching_allocator.h"

#include <algorithm>

#include "common/check.h"

namespace tandem::cuda {
namespace {
constexpr size_t kSmallQuantum = 512;
constexpr size_t kLargeThreshold = size_t{1} << 20;
constexpr size_t kLargeQuantum = size_t{2} << 20;
}  // namespace

CachingAllocator::~CachingAllocator() {
  ReleaseCached();
  // Live blocks at destruction belong to tensors that outlived their device: release them too.
  for (auto& [p, size] : live_) raw_.release(p);
}

size_t CachingAllocator::RoundUp(size_t bytes) {
  bytes = std::max<size_t>(bytes, 1);
  const size_t q = bytes < kLargeThreshold ? kSmallQuantum : kLargeQuantum;
  return (bytes + q - 1) / q * q;
}

void* CachingAllocator::Allocate(size_t bytes) {
  const size_t size = RoundUp(bytes);
  // A cached block of exactly this rounded size; a larger one is not split, so that one big
  // free block is never pinned down by a small tensor.
  auto it = free_.find(size);
  void* p = nullptr;
  if (it != free_.end()) {
    p = it->second;
    free_.erase(it);
    stats_.bytes_cached -= size;
  } else {
    p = raw_.allocate(size);
    if (p == nullptr && !free_.empty()) {
      ReleaseCached();
      p = raw_.allocate(size);
    }
    if (p == nullptr) return nullptr;
    ++stats_.raw_allocations;
  }
  live_[p] = size;
  stats_.bytes_in_use += size;
  stats_.peak_bytes_reserved =
      std::max(stats_.peak_bytes_reserved, stats_.bytes_in_use + stats_.bytes_cached);
  return p;
}

void CachingAllocator::Free(void* p) {
  if (p == nullptr) return;
  auto it = live_.find(p);
  TANDEM_CHECK(it != live_.end()) << "CachingAllocator::Free of a pointer it did not allocate";
  const size_t size = it->second;
  live_.erase(it);
  stats_.bytes_in_use -= size;
  stats_.bytes_cached += size;
  free_.emplace(size, p);
}

void CachingAllocator::ReleaseCached() {
  for (auto& [size, p] : free_) raw_.release(p);
  free_.clear();
  stats_.bytes_cached = 0;
}

}  // namespace tandem::cuda
