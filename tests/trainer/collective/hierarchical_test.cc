// The hierarchical all-reduce (shared memory inside a host, TCP rings across hosts), with ranks as
// threads of this process over loopback TCP. Hosts are told apart the way namespaced hosts are:
// by ShmOptions::host (the worker contract's TANDEM_HOST), since every thread shares this kernel.
// Exact sums (integer-valued floats) for awkward counts, 2x2, 3x2 and interleaved placements,
// average, bf16 with bit-identical results; uneven hosts and opted-out ranks fall back to the
// flat ring; a failure on one rank ends every rank's all-reduce (no hang).
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/trainer/collective/ring_harness.h"

namespace tandem::collective {
namespace {

using testing::BindRing;
using testing::FastOptions;
using testing::Ring;

// Runs `hosts_of.size()` ranks, rank r on host hosts_of[r]; each checks its wire is `want_wire`
// and runs `body`. Returns the statuses.
std::vector<absl::Status> RunPlaced(const std::vector<std::string>& hosts_of, const char* want_wire,
                                    const std::function<absl::Status(int, Communicator&)>& body,
                                    bool opt_out_rank1 = false) {
  const int n = static_cast<int>(hosts_of.size());
  Ring ring = BindRing(n);
  std::vector<absl::Status> result(n);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < n; ++rank) {
    threads.emplace_back([&, rank] {
      CommunicatorOptions o = FastOptions(testing::Wire::kShm);
      o.shm.host = hosts_of[rank];
      if (opt_out_rank1 && rank == 1) o.shm.enabled = false;
      auto peers = MakePeerList(ring.endpoints, rank, n);
      if (!peers.ok()) {
        result[rank] = peers.status();
        return;
      }
      auto comm = Communicator::Connect(o, *peers, std::move(ring.listeners[rank]));
      if (!comm.ok()) {
        result[rank] = comm.status();
        return;
      }
      if (std::string((*comm)->allreduce_transport()) != want_wire) {
        result[rank] = absl::InternalError(absl::StrCat("all-reduce runs over ",
                                                        (*comm)->allreduce_transport(),
                                                        ", expected ", want_wire));
        return;
      }
      result[rank] = body(rank, **comm);
    });
  }
  for (auto& t : threads) t.join();
  return result;
}

// Rank r's value at i: small integers, so float sums are exact in any order.
float Value(int rank, size_t i) { return static_cast<float>((rank + 1) * ((i % 13) + 1)); }

absl::Status CheckSums(int rank, Communicator& comm, size_t count, ReduceOp op) {
  const int n = comm.world_size();
  std::vector<float> buf(count + 2);
  buf[0] = buf[count + 1] = -7.0f;  // sentinels
  for (size_t i = 0; i < count; ++i) buf[i + 1] = Value(rank, i);
  TANDEM_RETURN_IF_ERROR(comm.AllReduce(buf.data() + 1, count, op));
  if (buf[0] != -7.0f || buf[count + 1] != -7.0f)
    return absl::InternalError(absl::StrCat("rank ", rank, ": wrote outside the buffer"));
  for (size_t i = 0; i < count; ++i) {
    float want = 0;
    for (int r = 0; r < n; ++r) want += Value(r, i);
    if (op == ReduceOp::kAverage) want /= static_cast<float>(n);
    if (std::fabs(buf[i + 1] - want) > (op == ReduceOp::kAverage ? 1e-5f * want : 0.0f))
      return absl::InternalError(absl::StrCat("rank ", rank, ", count ", count, ": element ", i,
                                              " is ", buf[i + 1], ", want ", want));
  }
  return absl::OkStatus();
}

const size_t kCounts[] = {0, 1, 2, 7, 1009, 65537, (1u << 20) + 3};

void ExpectAllOk(const std::vector<absl::Status>& st) {
  for (size_t r = 0; r < st.size(); ++r) EXPECT_TRUE(st[r].ok()) << "rank " << r << ": " << st[r];
}

TEST(HierarchicalAllReduceTest, TwoHostsOfTwoRanksSumExactly) {
  ExpectAllOk(RunPlaced({"hA", "hA", "hB", "hB"}, "hierarchical", [](int rank, Communicator& c) {
    for (size_t count : kCounts)
      for (int rep = 0; rep < 2; ++rep) TANDEM_RETURN_IF_ERROR(CheckSums(rank, c, count, ReduceOp::kSum));
    return CheckSums(rank, c, 4099, ReduceOp::kAverage);
  }));
}

TEST(HierarchicalAllReduceTest, InterleavedPlacementAndThreeHosts) {
  // Ranks of a host need not be adjacent: local ranks follow global order inside each host.
  ExpectAllOk(RunPlaced({"hA", "hB", "hA", "hB"}, "hierarchical", [](int rank, Communicator& c) {
    return CheckSums(rank, c, 100003, ReduceOp::kSum);
  }));
  ExpectAllOk(RunPlaced({"x", "y", "z", "z", "y", "x"}, "hierarchical", [](int rank, Communicator& c) {
    for (size_t count : {size_t{5}, size_t{65537}})
      TANDEM_RETURN_IF_ERROR(CheckSums(rank, c, count, ReduceOp::kSum));
    TANDEM_RETURN_IF_ERROR(c.Barrier());
    return absl::OkStatus();
  }));
}

TEST(HierarchicalAllReduceTest, Bf16AcrossHostsIsBitIdenticalOnEveryRank) {
  constexpr size_t kCount = 30011;
  std::vector<std::vector<float>> out(4);
  ExpectAllOk(RunPlaced({"hA", "hA", "hB", "hB"}, "hierarchical", [&](int rank, Communicator& c) {
    std::vector<float> buf(kCount);
    for (size_t i = 0; i < kCount; ++i) buf[i] = 0.001f * static_cast<float>(i % 997) + 0.37f * rank;
    TANDEM_RETURN_IF_ERROR(c.AllReduce(buf.data(), kCount, ReduceOp::kSum, Compression::kBf16));
    for (size_t i = 0; i < kCount; ++i) {
      float want = 0;
      for (int r = 0; r < 4; ++r) want += 0.001f * static_cast<float>(i % 997) + 0.37f * r;
      if (std::fabs(buf[i] - want) > 4 * std::ldexp(1.0f, -8) * std::fabs(want) + 1e-6f)
        return absl::InternalError(absl::StrCat("element ", i, " is ", buf[i], ", want ", want));
    }
    out[rank] = buf;
    return absl::OkStatus();
  }));
  for (int r = 1; r < 4; ++r)
    EXPECT_EQ(std::memcmp(out[0].data(), out[r].data(), kCount * sizeof(float)), 0) << "rank " << r;
}

TEST(HierarchicalAllReduceTest, LayoutsItCannotServeKeepTheFlatRing) {
  auto sums = [](int rank, Communicator& c) { return CheckSums(rank, c, 1009, ReduceOp::kSum); };
  ExpectAllOk(RunPlaced({"hA", "hA", "hA", "hB"}, "tcp", sums));         // uneven hosts
  ExpectAllOk(RunPlaced({"a", "b", "c", "d"}, "tcp", sums));             // one rank per host
  ExpectAllOk(RunPlaced({"hA", "hA", "hB", "hB"}, "tcp", sums, true));   // rank 1 opted out
  ExpectAllOk(RunPlaced({"hA", "hA", "hA", "hA"}, "shm", sums));         // one host: flat shm
}

TEST(HierarchicalAllReduceTest, AFailedRankFailsEveryRankWithoutHanging) {
  // Rank 3 fails its ring in the middle of the all-reduces; the others, wherever they wait
  // (segment, cross-host ring, global ring), must all fail: the test ends, with errors.
  std::vector<absl::Status> st =
      RunPlaced({"hA", "hA", "hB", "hB"}, "hierarchical", [](int rank, Communicator& c) {
        std::vector<float> buf(1 << 18, 1.0f);
        for (int i = 0; i < 200; ++i) {
          if (rank == 3 && i == 5)
            return c.transport().Fail(absl::UnavailableError("rank 3: injected failure"));
          TANDEM_RETURN_IF_ERROR(c.AllReduce(buf.data(), buf.size()));
        }
        return absl::OkStatus();
      });
  for (int r = 0; r < 4; ++r) {
    ASSERT_FALSE(st[r].ok()) << "rank " << r << " finished although rank 3 failed";
    EXPECT_TRUE(absl::IsUnavailable(st[r]) || absl::IsDeadlineExceeded(st[r]) ||
                absl::IsAborted(st[r]) || absl::IsDataLoss(st[r]))
        << "rank " << r << ": " << st[r];
  }
}

}  // namespace
}  // namespace tandem::collective
