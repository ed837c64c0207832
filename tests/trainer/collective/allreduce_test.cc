// Ring all-reduce, broadcast and barrier: 1 to 8 ranks as threads over loopback TCP.
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/trainer/collective/ring_harness.h"
#include "trainer/collective/reduce_kernels.h"

namespace tandem::collective {
namespace {

using testing::FastOptions;
using testing::RunRanks;
using testing::Wire;
using testing::WireName;

const auto kWires = ::testing::Values(Wire::kTcp, Wire::kShm);
std::string WireParamName(const ::testing::TestParamInfo<Wire>& info) {
  return WireName(info.param);
}

// Integer-valued floats small enough that every partial sum is exact in fp32.
float Value(int rank, size_t i) { return static_cast<float>(static_cast<int>((i * 7 + rank * 13) % 97) - 40); }

struct Case {
  int ranks;
  size_t count;
  size_t chunk_bytes;
  int channels;
};

class AllReduceSumTest : public ::testing::TestWithParam<std::tuple<Case, Wire>> {};

TEST_P(AllReduceSumTest, IntegerValuedFloatsGiveExactSums) {
  const Case c = std::get<0>(GetParam());
  CommunicatorOptions o = FastOptions(std::get<1>(GetParam()));
  o.ring.chunk_bytes = c.chunk_bytes;
  o.shm.slot_bytes = c.chunk_bytes;  // small slots: many rounds through both staging buffers
  o.transport.channels = c.channels;
  std::vector<float> want(c.count, 0.0f);
  for (int r = 0; r < c.ranks; ++r)
    for (size_t i = 0; i < c.count; ++i) want[i] += Value(r, i);
  auto statuses = RunRanks(c.ranks, o, [&](int rank, Communicator& comm) -> absl::Status {
    // Sentinels around the buffer catch writes outside it.
    std::vector<float> buf(c.count + 2, 12345.0f);
    for (size_t i = 0; i < c.count; ++i) buf[i + 1] = Value(rank, i);
    for (int round = 0; round < 2; ++round) {  // twice: scratch buffers are reused
      if (round == 1)
        for (size_t i = 0; i < c.count; ++i) buf[i + 1] = Value(rank, i);
      TANDEM_RETURN_IF_ERROR(comm.AllReduce(buf.data() + 1, c.count));
      for (size_t i = 0; i < c.count; ++i)
        if (buf[i + 1] != want[i])
          return absl::InternalError(absl::StrCat("rank ", rank, " element ", i, ": ",
                                                  buf[i + 1], " != ", want[i]));
      if (buf.front() != 12345.0f || buf.back() != 12345.0f)
        return absl::InternalError("wrote outside the buffer");
    }
    return absl::OkStatus();
  });
  for (int r = 0; r < c.ranks; ++r) EXPECT_TRUE(statuses[r].ok()) << "rank " << r << ": " << statuses[r];
}

std::vector<Case> SumCases() {
  std::vector<Case> cases;
  const size_t sizes[] = {0, 1, 2, 7, 13, 101, 1009, 65537, (1 << 20) + 3};
  for (int n = 1; n <= 8; ++n)
    for (size_t s : sizes) {
      if (n > 4 && s > 65537) continue;  // keep the suite fast on 2 cores
      cases.push_back({n, s, 4096, 1 + (n + static_cast<int>(s)) % 3});  // many chunks
    }
  cases.push_back({3, (1 << 20) + 5, 512 << 10, 2});
  cases.push_back({8, 100003, 1 << 10, 4});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Ring, AllReduceSumTest,
                         ::testing::Combine(::testing::ValuesIn(SumCases()), kWires),
                         [](const auto& info) {
                           const Case& c = std::get<0>(info.param);
                           return absl::StrCat(WireName(std::get<1>(info.param)), "_n", c.ranks,
                                               "_count", c.count, "_chunk", c.chunk_bytes, "_ch",
                                               c.channels);
                         });

class AllReduceTest : public ::testing::TestWithParam<Wire> {};
INSTANTIATE_TEST_SUITE_P(Wires, AllReduceTest, kWires, WireParamName);

TEST_P(AllReduceTest, LargeBufferOf256MiB) {
  const size_t count = (256u << 20) / sizeof(float);
  CommunicatorOptions o = FastOptions(GetParam());
  o.transport.socket_buffer_bytes = 0;
  auto statuses = RunRanks(2, o, [&](int rank, Communicator& comm) -> absl::Status {
    std::vector<float> buf(count);
    for (size_t i = 0; i < count; ++i) buf[i] = static_cast<float>((i + rank) % 1000);
    TANDEM_RETURN_IF_ERROR(comm.AllReduce(buf.data(), count));
    for (size_t i = 0; i < count; ++i) {
      float want = static_cast<float>(i % 1000 + (i + 1) % 1000);
      if (buf[i] != want)
        return absl::InternalError(absl::StrCat("element ", i, ": ", buf[i], " != ", want));
    }
    return absl::OkStatus();
  });
  for (auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

TEST_P(AllReduceTest, AverageDividesByWorldSize) {
  for (int n : {2, 3, 5}) {
    auto statuses = RunRanks(n, FastOptions(GetParam()), [&](int rank, Communicator& comm) -> absl::Status {
      std::vector<float> buf(1000);
      for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(n * (rank + 1) * i);
      TANDEM_RETURN_IF_ERROR(comm.AllReduce(buf.data(), buf.size(), ReduceOp::kAverage));
      const float sum_ranks = n * (n + 1) / 2.0f;
      for (size_t i = 0; i < buf.size(); ++i)
        if (std::fabs(buf[i] - sum_ranks * i) > 1e-6f * sum_ranks * i)
          return absl::InternalError(absl::StrCat("element ", i, ": ", buf[i]));
      return absl::OkStatus();
    });
    for (auto& s : statuses) EXPECT_TRUE(s.ok()) << "n=" << n << ": " << s;
  }
}

TEST_P(AllReduceTest, Bf16CompressionIsCloseAndIdenticalOnEveryRank) {
  const int n = 4;
  const size_t count = 50021;
  std::vector<std::vector<float>> results(n);
  auto value = [](int rank, size_t i) {
    return std::sin(0.001f * static_cast<float>(i) + rank) * (1.0f + 0.1f * rank);
  };
  CommunicatorOptions o = FastOptions(GetParam());
  o.ring.chunk_bytes = 8192;
  o.shm.slot_bytes = 8192;
  auto statuses = RunRanks(n, o, [&](int rank, Communicator& comm) -> absl::Status {
    std::vector<float> buf(count);
    for (size_t i = 0; i < count; ++i) buf[i] = value(rank, i);
    TANDEM_RETURN_IF_ERROR(
        comm.AllReduce(buf.data(), count, ReduceOp::kSum, Compression::kBf16));
    results[rank] = std::move(buf);
    return absl::OkStatus();
  });
  for (auto& s : statuses) ASSERT_TRUE(s.ok()) << s;
  double max_err = 0;
  for (size_t i = 0; i < count; ++i) {
    double want = 0, scale = 0;
    for (int r = 0; r < n; ++r) {
      want += value(r, i);
      scale += std::fabs(value(r, i));
    }
    // bf16 keeps 8 significant bits; each of the n-1 hops and the final rounding can lose half
    // an ulp of the running magnitude.
    max_err = std::max(max_err, std::fabs(results[0][i] - want) / std::max(scale, 1e-3));
    for (int r = 1; r < n; ++r) ASSERT_EQ(results[r][i], results[0][i]) << "element " << i;
  }
  EXPECT_LT(max_err, n * std::ldexp(1.0, -8));
  EXPECT_GT(max_err, 0.0);  // it really went through bf16
}

TEST(BroadcastTest, EveryRootAndSize) {
  for (int n : {1, 2, 3, 5}) {
    for (size_t bytes : {size_t{0}, size_t{1}, size_t{4099}, size_t{300001}}) {
      for (int root = 0; root < n; root += 2) {
        CommunicatorOptions o = FastOptions();
        o.ring.chunk_bytes = 4096;
        auto statuses = RunRanks(n, o, [&](int rank, Communicator& comm) -> absl::Status {
          std::vector<uint8_t> buf(bytes);
          for (size_t i = 0; i < bytes; ++i)
            buf[i] = static_cast<uint8_t>(rank == root ? (i * 31 + 7) : 0xEE);
          TANDEM_RETURN_IF_ERROR(comm.Broadcast(buf.data(), bytes, root));
          for (size_t i = 0; i < bytes; ++i)
            if (buf[i] != static_cast<uint8_t>(i * 31 + 7))
              return absl::InternalError(absl::StrCat("byte ", i, " wrong"));
          return absl::OkStatus();
        });
        for (int r = 0; r < n; ++r)
          EXPECT_TRUE(statuses[r].ok()) << "n=" << n << " bytes=" << bytes << " root=" << root
                                        << " rank " << r << ": " << statuses[r];
      }
    }
  }
}

TEST(BroadcastTest, RootOutsideTheWorldIsAnError) {
  auto statuses = RunRanks(2, FastOptions(), [&](int, Communicator& comm) -> absl::Status {
    char c = 0;
    absl::Status s = comm.Broadcast(&c, 1, 7);
    return s.code() == absl::StatusCode::kInvalidArgument ? absl::OkStatus() : s;
  });
  for (auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

class BarrierTest : public ::testing::TestWithParam<Wire> {};
INSTANTIATE_TEST_SUITE_P(Wires, BarrierTest, kWires, WireParamName);

TEST_P(BarrierTest, NobodyLeavesBeforeEveryoneArrived) {
  const int n = 6;
  std::atomic<int> arrived{0};
  auto statuses = RunRanks(n, FastOptions(GetParam()), [&](int rank, Communicator& comm) -> absl::Status {
    for (int round = 1; round <= 3; ++round) {
      std::this_thread::sleep_for(std::chrono::milliseconds(rank * 7));
      arrived.fetch_add(1);
      TANDEM_RETURN_IF_ERROR(comm.Barrier());
      if (arrived.load() < round * n)
        return absl::InternalError(absl::StrCat("left barrier ", round, " early"));
      TANDEM_RETURN_IF_ERROR(comm.Barrier());  // nobody starts the next round early either
    }
    return absl::OkStatus();
  });
  for (auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

TEST_P(AllReduceTest, RanksDisagreeingOnTheCountFailCleanly) {
  auto statuses = RunRanks(3, FastOptions(GetParam()), [&](int rank, Communicator& comm) -> absl::Status {
    std::vector<float> buf(100 + (rank == 1 ? 1 : 0), 1.0f);
    return comm.AllReduce(buf.data(), buf.size());
  });
  int mismatch = 0;
  for (auto& s : statuses) {
    EXPECT_FALSE(s.ok());
    if (s.code() == absl::StatusCode::kFailedPrecondition) {
      ++mismatch;
      EXPECT_NE(s.message().find("disagree"), std::string::npos) << s;
    }
  }
  EXPECT_GE(mismatch, 1);
}

TEST(ReduceKernelsTest, Bf16RoundTripAndRounding) {
  const float in[] = {1.0f, -2.5f, 1.00390625f /* 1 + 2^-8: ties to even */, 3.0e38f, 0.0f};
  uint16_t b[5];
  float out[5];
  FloatToBf16(in, b, 5);
  Bf16ToFloat(b, out, 5);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.5f);
  EXPECT_EQ(out[2], 1.0f);
  EXPECT_NEAR(out[3], 3.0e38f, 3.0e38f / 128);
  EXPECT_EQ(out[4], 0.0f);
  float nan = std::nanf("");
  FloatToBf16(&nan, b, 1);
  Bf16ToFloat(b, out, 1);
  EXPECT_TRUE(std::isnan(out[0]));
  std::vector<float> d(1000, 1.0f), s(1000, 2.0f);
  AddInto(d.data(), s.data(), d.size());
  for (float v : d) ASSERT_EQ(v, 3.0f);
}

}  // namespace
}  // namespace tandem::collective

namespace tandem::collective {
namespace {

class MetricsTest : public ::testing::TestWithParam<testing::Wire> {};
INSTANTIATE_TEST_SUITE_P(Wires, MetricsTest, kWires, WireParamName);

TEST_P(MetricsTest, AllReduceIsTimedCountedAndMeasured) {
  metrics::Registry registry;
  const char* wire = testing::WireName(GetParam());
  CommunicatorOptions o = testing::FastOptions(GetParam());
  o.registry = &registry;
  auto statuses = testing::RunRanks(2, o, [&](int, Communicator& comm) -> absl::Status {
    std::vector<float> buf(100000, 1.0f);
    TANDEM_RETURN_IF_ERROR(comm.AllReduce(buf.data(), buf.size()));
    return comm.Barrier();
  });
  for (auto& s : statuses) ASSERT_TRUE(s.ok()) << s;
  const std::string text = registry.Serialize();
  for (const char* want :
       {"tandem_collective_allreduce_seconds_count{rank=\"0\"} 1",
        "tandem_collective_allreduce_seconds_count{rank=\"1\"} 1",
        "tandem_collective_operations_total{rank=\"1\",op=\"barrier\"} 1",
        // each rank sends 2(n-1)/n of the 400000 bytes (the 32-byte header is not payload)
        "tandem_collective_sent_bytes_total{rank=\"0\",op=\"allreduce\"} 4e+05",
        "tandem_collective_allreduce_bus_bandwidth_bytes_per_second{rank=\"0\"}",
        "tandem_collective_peer_wait_seconds_total{rank=\"0\"}"})
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  // Which transport carried it: one series per transport, and whether shared memory is active.
  const bool shm = GetParam() == testing::Wire::kShm;
  for (const std::string& want :
       {absl::StrCat("tandem_collective_allreduce_transport_operations_total{rank=\"1\",transport=\"",
                     wire, "\"} 1"),
        absl::StrCat("tandem_collective_allreduce_transport_operations_total{rank=\"1\",transport=\"",
                     shm ? "tcp" : "shm", "\"} 0"),
        absl::StrCat("tandem_collective_shared_memory_active{rank=\"0\"} ", shm ? 1 : 0)})
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
}

}  // namespace
}  // namespace tandem::collective
