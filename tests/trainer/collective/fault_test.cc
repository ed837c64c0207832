// Faults: crashed and stalled peers, late peers, peers that never come. Every surviving rank must
// fail with an error naming the culprit, never hang (ctest's TIMEOUT is the hang detector).
#include <atomic>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/trainer/collective/ring_harness.h"
#include "trainer/collective/exit_codes.h"

namespace tandem::collective {
namespace {

using testing::FastOptions;
using testing::RunRanks;
using testing::Wire;

// Faults during all-reduce, on both wires (shared memory keeps TCP as its liveness channel).
class WireFaultTest : public ::testing::TestWithParam<Wire> {};
INSTANTIATE_TEST_SUITE_P(Wires, WireFaultTest, ::testing::Values(Wire::kTcp, Wire::kShm),
                         [](const auto& info) { return testing::WireName(info.param); });

bool Mentions(const absl::Status& s, const std::string& what) {
  return std::string(s.message()).find(what) != std::string::npos;
}

TEST_P(WireFaultTest, RankCrashingMidOperationFailsEveryOtherRank) {
  const int n = 4, victim = 2;
  std::vector<absl::Status> after(n);
  auto statuses = RunRanks(n, FastOptions(GetParam()), [&](int rank, Communicator& comm) -> absl::Status {
    std::vector<float> buf(1 << 20, 1.0f);
    std::thread killer;
    if (rank == victim)
      killer = std::thread([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
        static_cast<TcpTransport&>(comm.transport()).CrashForTesting();
      });
    absl::Status s;
    for (int i = 0; i < 100000 && s.ok(); ++i) s = comm.AllReduce(buf.data(), buf.size());
    if (killer.joinable()) killer.join();
    after[rank] = comm.AllReduce(buf.data(), 10);  // a failed communicator stays failed
    return s;
  });
  for (int r = 0; r < n; ++r) {
    if (r == victim) continue;
    const absl::Status& s = statuses[r];
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << "rank " << r << ": " << s;
    EXPECT_TRUE(Mentions(s, "rank 2 (127.0.0.1:")) << "rank " << r << ": " << s;
    EXPECT_EQ(ExitCodeFor(s), kPeerFailureExitCode);
    EXPECT_EQ(after[r].code(), s.code()) << after[r];
  }
}

TEST_P(WireFaultTest, StalledRankIsCaughtByMissingHeartbeats) {
  const int n = 3, victim = 1;
  CommunicatorOptions o = FastOptions(GetParam());
  o.transport.peer_timeout = std::chrono::milliseconds(800);
  o.ring.op_timeout = std::chrono::minutes(2);  // the heartbeats must decide, not the op timeout
  auto statuses = RunRanks(n, o, [&](int rank, Communicator& comm) -> absl::Status {
    if (rank == victim) {
      // Stops talking but keeps its sockets open, like a SIGSTOPped process. It waits first for
      // its neighbours to hear it once: until then they allow for a slow rendezvous.
      std::this_thread::sleep_for(std::chrono::milliseconds(600));
      static_cast<TcpTransport&>(comm.transport()).StopHeartbeatsForTesting();
      for (int i = 0; i < 600 && comm.health().ok(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      return absl::OkStatus();
    }
    std::vector<float> buf(100000, 1.0f);
    return comm.AllReduce(buf.data(), buf.size());
  });
  for (int r = 0; r < n; ++r) {
    if (r == victim) continue;
    EXPECT_EQ(statuses[r].code(), absl::StatusCode::kUnavailable) << statuses[r];
    EXPECT_TRUE(Mentions(statuses[r], "rank 1 (127.0.0.1:")) << statuses[r];
    EXPECT_TRUE(Mentions(statuses[r], "no heartbeat")) << statuses[r];
  }
}

TEST_P(WireFaultTest, OperationTimeoutNamesThePeerItWaitsOn) {
  CommunicatorOptions o = FastOptions(GetParam());
  o.ring.op_timeout = std::chrono::milliseconds(500);
  auto statuses = RunRanks(2, o, [&](int rank, Communicator& comm) -> absl::Status {
    if (rank == 1) {  // alive (heartbeats flow) but never joins the collective
      for (int i = 0; i < 600 && comm.health().ok(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return comm.health().ok() ? absl::InternalError("never told of the failure")
                                : absl::OkStatus();
    }
    std::vector<float> buf(1000, 1.0f);
    return comm.AllReduce(buf.data(), buf.size());
  });
  EXPECT_EQ(statuses[0].code(), absl::StatusCode::kDeadlineExceeded) << statuses[0];
  EXPECT_TRUE(Mentions(statuses[0], "rank 1 (127.0.0.1:")) << statuses[0];
  EXPECT_TRUE(statuses[1].ok()) << statuses[1];
}

TEST_P(WireFaultTest, RankLeavingEarlyFailsTheOthersLongBeforeTheTimeout) {
  const int n = 3, leaver = 1;
  CommunicatorOptions o = FastOptions(GetParam());
  o.ring.op_timeout = std::chrono::minutes(2);  // the departure must decide, not the timeout
  const auto start = Clock::now();
  auto statuses = RunRanks(n, o, [&](int rank, Communicator& comm) -> absl::Status {
    if (rank == leaver) return absl::OkStatus();  // destroys its communicator at once
    std::vector<float> buf(100000, 1.0f);
    return comm.AllReduce(buf.data(), buf.size());
  });
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(60));
  for (int r = 0; r < n; ++r) {
    if (r == leaver) continue;
    EXPECT_EQ(statuses[r].code(), absl::StatusCode::kUnavailable) << statuses[r];
    EXPECT_TRUE(Mentions(statuses[r], "rank 1 (127.0.0.1:")) << statuses[r];
  }
}

TEST_P(WireFaultTest, RankLeavingBeforeABarrierFailsTheOthers) {
  const int n = 3, leaver = 2;
  CommunicatorOptions o = FastOptions(GetParam());
  o.ring.op_timeout = std::chrono::minutes(2);
  auto statuses = RunRanks(n, o, [&](int rank, Communicator& comm) -> absl::Status {
    if (rank == leaver) return absl::OkStatus();
    return comm.Barrier();
  });
  for (int r = 0; r < n; ++r) {
    if (r == leaver) continue;
    EXPECT_EQ(statuses[r].code(), absl::StatusCode::kUnavailable) << statuses[r];
    EXPECT_TRUE(Mentions(statuses[r], "rank 2 (127.0.0.1:")) << statuses[r];
  }
}

TEST(RendezvousTest, LatePeerIsWaitedFor) {
  auto statuses = RunRanks(
      3, FastOptions(),
      [&](int rank, Communicator& comm) -> absl::Status {
        std::vector<float> buf(1000, static_cast<float>(rank));
        TANDEM_RETURN_IF_ERROR(comm.AllReduce(buf.data(), buf.size()));
        return buf[999] == 3.0f ? absl::OkStatus() : absl::InternalError("wrong sum");
      },
      [](int rank) {
        if (rank == 2) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      });
  for (auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

TEST(RendezvousTest, PeerThatNeverComesTimesOutNamingIt) {
  testing::Ring ring = testing::BindRing(2);  // rank 1's port is bound but nobody serves it
  CommunicatorOptions o = FastOptions();
  o.transport.rendezvous_timeout = std::chrono::milliseconds(500);
  auto comm = Communicator::Connect(o, *MakePeerList(ring.endpoints, 0, 2),
                                    std::move(ring.listeners[0]));
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << comm.status();
  EXPECT_TRUE(Mentions(comm.status(), "rank 1 (127.0.0.1:")) << comm.status();
  EXPECT_EQ(ExitCodeFor(comm.status()), kPeerFailureExitCode);
}

TEST(RendezvousTest, PeerOfAnotherJobIsRefused) {
  testing::Ring ring = testing::BindRing(2);
  std::vector<absl::Status> result(2);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank)
    threads.emplace_back([&, rank] {
      CommunicatorOptions o = FastOptions();
      o.transport.rendezvous_timeout = std::chrono::milliseconds(800);
      o.transport.job_id = rank == 0 ? "job-a" : "job-b";
      result[rank] = Communicator::Connect(o, *MakePeerList(ring.endpoints, rank, 2),
                                           std::move(ring.listeners[rank]))
                         .status();
    });
  for (auto& t : threads) t.join();
  for (auto& s : result) EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
}

TEST(RendezvousTest, CleanShutdownIsNotAFailure) {
  // Ranks leave one after another; nobody may report a crash while the others finish.
  auto statuses = RunRanks(3, FastOptions(), [&](int rank, Communicator& comm) -> absl::Status {
    TANDEM_RETURN_IF_ERROR(comm.Barrier());
    return absl::OkStatus();
  });
  for (auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace tandem::collective
