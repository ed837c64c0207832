// BucketedAllReducer: buckets over the gradient arena give exactly what one plain all-reduce of
// the arena gives, whatever order (and from whatever threads) backward marks gradients ready.
#include "trainer/collective/bucketed_allreducer.h"

#include <algorithm>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/trainer/collective/ring_harness.h"

namespace tandem::collective {
namespace {

using testing::FastOptions;
using testing::RunRanks;

std::vector<GradientSlice> Slices(const std::vector<size_t>& counts, size_t gap,
                                  size_t* arena_count) {
  std::vector<GradientSlice> slices;
  size_t off = 0;
  for (size_t c : counts) {
    slices.push_back({off, c});
    off += c + gap;
  }
  *arena_count = off;
  return slices;
}

TEST(BucketedAllReducerTest, CutsBucketsAtParameterBoundaries) {
  size_t arena = 0;
  auto slices = Slices({100, 100, 3000, 10, 10, 10}, 0, &arena);
  auto statuses = RunRanks(1, FastOptions(), [&](int, Communicator& comm) -> absl::Status {
    std::vector<float> grads(arena);
    BucketOptions o;
    o.bucket_bytes = 1024;  // 256 floats
    TANDEM_ASSIGN_OR_RETURN(auto r, BucketedAllReducer::Create(&comm, grads.data(), arena,
                                                               slices, o));
    const auto& b = r->buckets();
    // {100,100} | {3000} (larger than a bucket: alone) | {10,10,10}
    if (b.size() != 3 || b[0].num_params != 2 || b[1].num_params != 1 || b[2].count != 30)
      return absl::InternalError(absl::StrCat("unexpected buckets: ", b.size()));
    return absl::OkStatus();
  });
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
}

TEST(BucketedAllReducerTest, RejectsOverlappingOrOutOfArenaSlices) {
  auto statuses = RunRanks(1, FastOptions(), [&](int, Communicator& comm) -> absl::Status {
    std::vector<float> grads(100);
    for (auto bad : {std::vector<GradientSlice>{{0, 50}, {40, 10}},
                     std::vector<GradientSlice>{{90, 20}}}) {
      auto r = BucketedAllReducer::Create(&comm, grads.data(), grads.size(), bad, {});
      if (r.ok() || r.status().code() != absl::StatusCode::kInvalidArgument)
        return absl::InternalError("bad slices accepted");
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(statuses[0].ok()) << statuses[0];
}

class BucketedWireTest : public ::testing::TestWithParam<testing::Wire> {};
INSTANTIATE_TEST_SUITE_P(Wires, BucketedWireTest,
                         ::testing::Values(testing::Wire::kTcp, testing::Wire::kShm),
                         [](const auto& info) { return testing::WireName(info.param); });

TEST_P(BucketedWireTest, EqualsAPlainAllReduceOfTheArena) {
  for (int n : {2, 3, 4}) {
    size_t arena = 0;
    // Sizes around the bucket size, primes, a gap between parameters (alignment padding).
    auto slices = Slices({1, 1021, 4096, 17, 70001, 5, 2048, 2049, 331, 9000}, 3, &arena);
    CommunicatorOptions co = FastOptions(GetParam());
    co.ring.chunk_bytes = 8192;
    co.shm.slot_bytes = 8192;
    auto statuses = RunRanks(n, co, [&](int rank, Communicator& comm) -> absl::Status {
      std::vector<float> grads(arena), plain(arena);
      BucketOptions o;
      o.bucket_bytes = 16 << 10;
      TANDEM_ASSIGN_OR_RETURN(auto reducer, BucketedAllReducer::Create(&comm, grads.data(),
                                                                       arena, slices, o));
      std::mt19937 rng(rank * 977 + 1);
      for (int step = 0; step < 3; ++step) {
        for (size_t i = 0; i < arena; ++i)
          grads[i] = plain[i] = static_cast<float>(static_cast<int>((i * 31 + rank * 7 + step) % 101) - 50);
        // "Backward": two threads mark gradients in a rank-specific random order; on step 2
        // the last parameter is left for Wait() to mark (an unused parameter).
        std::vector<size_t> order(slices.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), rng);
        if (step == 2) order.erase(std::find(order.begin(), order.end(), slices.size() - 1));
        std::thread other([&] {
          for (size_t i = 1; i < order.size(); i += 2) reducer->MarkReady(order[i]);
        });
        for (size_t i = 0; i < order.size(); i += 2) reducer->MarkReady(order[i]);
        other.join();
        TANDEM_RETURN_IF_ERROR(reducer->Wait());
        TANDEM_RETURN_IF_ERROR(comm.AllReduce(plain.data(), arena, ReduceOp::kAverage));
        for (const GradientSlice& s : slices)
          for (size_t i = s.offset; i < s.offset + s.count; ++i)
            if (grads[i] != plain[i])
              return absl::InternalError(absl::StrCat("step ", step, " element ", i, ": ",
                                                      grads[i], " != ", plain[i]));
      }
      return absl::OkStatus();
    });
    for (int r = 0; r < n; ++r) EXPECT_TRUE(statuses[r].ok()) << "n=" << n << " rank " << r << ": " << statuses[r];
  }
}

}  // namespace
}  // namespace tandem::collective
