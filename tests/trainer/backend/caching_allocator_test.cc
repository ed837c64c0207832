// The caching allocator's policy over a fake raw allocator that records every call: reuse by
// rounded size, no splitting, release-and-retry on failure, stats. No GPU needed.
#include "trainer/backend/cuda/caching_allocator.h"

#include <cstdlib>
#include <map>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::cuda {
namespace {

struct FakeRaw {
  std::map<void*, size_t> live;
  std::vector<size_t> requests;
  size_t budget = SIZE_MAX;  // bytes the fake "device" has left
  int releases = 0;

  RawAllocator Raw() {
    return {.allocate =
                [this](size_t bytes) -> void* {
                  if (bytes > budget) return nullptr;
                  budget -= bytes;
                  void* p = std::malloc(bytes);
                  live[p] = bytes;
                  requests.push_back(bytes);
                  return p;
                },
            .release =
                [this](void* p) {
                  auto it = live.find(p);
                  ASSERT_NE(it, live.end()) << "released a block twice or never allocated";
                  budget += it->second;
                  live.erase(it);
                  ++releases;
                  std::free(p);
                }};
  }
};

TEST(CachingAllocatorTest, RoundsSmallTo512AndLargeTo2MiB) {
  struct Case {
    size_t bytes, rounded;
  } cases[] = {{0, 512},
               {1, 512},
               {512, 512},
               {513, 1024},
               {(1 << 20) - 1, 1 << 20},
               {1 << 20, 2 << 20},
               {(2 << 20) + 1, 4 << 20}};
  for (const Case& c : cases) EXPECT_EQ(CachingAllocator::RoundUp(c.bytes), c.rounded) << c.bytes;
}

TEST(CachingAllocatorTest, ASecondStepOfTheSameSizesNeverReachesTheRawAllocator) {
  FakeRaw raw;
  CachingAllocator cache(raw.Raw());
  const std::vector<size_t> step = {4000, 100, 3 << 20, 4000, 100000};
  for (int iteration = 0; iteration < 3; ++iteration) {
    std::vector<void*> blocks;
    for (size_t b : step) blocks.push_back(cache.Allocate(b));
    for (void* p : blocks) ASSERT_NE(p, nullptr);
    EXPECT_EQ(std::set<void*>(blocks.begin(), blocks.end()).size(), blocks.size());
    for (void* p : blocks) cache.Free(p);
  }
  EXPECT_EQ(cache.stats().raw_allocations, 5);
  EXPECT_EQ(raw.requests.size(), 5u);
  EXPECT_EQ(cache.stats().bytes_in_use, 0u);
  EXPECT_EQ(cache.stats().bytes_cached, 2 * 4096u + 512u + (4u << 20) + 100352u);
}

TEST(CachingAllocatorTest, DoesNotHandOutALargerBlockForASmallRequest) {
  FakeRaw raw;
  CachingAllocator cache(raw.Raw());
  void* big = cache.Allocate(8 << 20);
  cache.Free(big);
  void* small = cache.Allocate(1000);
  EXPECT_NE(small, big);
  EXPECT_EQ(raw.requests.size(), 2u);
  void* again = cache.Allocate(8 << 20);
  EXPECT_EQ(again, big);
}

TEST(CachingAllocatorTest, OnFailureReleasesTheCacheAndRetriesOnce) {
  FakeRaw raw;
  raw.budget = 6 << 20;
  CachingAllocator cache(raw.Raw());
  void* a = cache.Allocate(4 << 20);
  ASSERT_NE(a, nullptr);
  cache.Free(a);  // cached: the fake device has 2 MiB left
  void* b = cache.Allocate(5 << 20);  // rounds to 6 MiB: fits only after the cache is released
  EXPECT_NE(b, nullptr);
  EXPECT_EQ(raw.releases, 1);
  EXPECT_EQ(cache.stats().bytes_cached, 0u);
  EXPECT_EQ(cache.stats().bytes_in_use, 6u << 20);
  EXPECT_EQ(cache.Allocate(1 << 20), nullptr);  // nothing cached to give back: null, no crash
  cache.Free(b);
  EXPECT_EQ(cache.stats().peak_bytes_reserved, 6u << 20);
}

TEST(CachingAllocatorTest, DestructorReturnsEveryBlock) {
  FakeRaw raw;
  {
    CachingAllocator cache(raw.Raw());
    cache.Free(cache.Allocate(100));
    EXPECT_NE(cache.Allocate(200), nullptr);  // still live at destruction
  }
  EXPECT_TRUE(raw.live.empty());
}

}  // namespace
}  // namespace tandem::cuda
