// A caching allocator for device memory: freed blocks go to a free list keyed by their rounded
// size and are handed out again, so a training step that allocates the same sizes as the last one
// (activations resized per batch, cuDNN workspaces) never reaches cudaMalloc/cudaFree, which
// synchronise the whole device.
//
//   CachingAllocator cache({.allocate = raw_alloc, .release = raw_free});
//   void* p = cache.Allocate(1000);   // first time: raw_alloc(1024)
//   cache.Free(p);                    // kept
//   void* q = cache.Allocate(900);    // the same block again, no raw_alloc
//
// Sizes round up to 512 bytes below 1 MiB and to 2 MiB above, so nearby sizes share blocks.
// When the raw allocator fails, the cache releases every free block and tries once more.
// The raw functions are injected so the policy is tested without a GPU. Not thread-safe: a
// Device is used by one training thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>

namespace tandem::cuda {

struct RawAllocator {
  // Returns null on failure (out of memory).
  std::function<void*(size_t bytes)> allocate;
  std::function<void(void* p)> release;
};

class CachingAllocator {
 public:
  explicit CachingAllocator(RawAllocator raw) : raw_(std::move(raw)) {}
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes` (0 counts as 1); null only when the raw allocator fails even
  // after the cache was emptied.
  void* Allocate(size_t bytes);
  // REQUIRES: p came from Allocate and was not freed since. Null is ignored.
  void Free(void* p);
  // Returns every cached (free) block to the raw allocator.
  void ReleaseCached();

  static size_t RoundUp(size_t bytes);

  struct Stats {
    int64_t raw_allocations = 0;  // calls into the raw allocator that succeeded
    size_t bytes_in_use = 0;      // rounded sizes of live blocks
    size_t bytes_cached = 0;      // rounded sizes of free blocks held
    size_t peak_bytes_reserved = 0;  // max of in_use + cached
  };
  const Stats& stats() const { return stats_; }

 private:
  RawAllocator raw_;
  std::multimap<size_t, void*> free_;         // rounded size -> block
  std::unordered_map<void*, size_t> live_;    // block -> rounded size
  Stats stats_;
};

}  // namespace tandem::cuda
