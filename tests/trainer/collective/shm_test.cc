// Shared-memory all-reduce: negotiation (who may use it, opt-out), the segment's lifetime in
// /dev/shm, and SharedSegment itself. Correctness and faults run in allreduce_test / fault_test /
// process_test on both wires.
#include <sys/mman.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/trainer/collective/ring_harness.h"
#include "trainer/collective/shm_segment.h"

namespace tandem::collective {
namespace {

using testing::FastOptions;
using testing::RunRanks;
using testing::Wire;

bool InDevShm(const std::string& name) {
  return !name.empty() && access(("/dev/shm" + name).c_str(), F_OK) == 0;
}

TEST(ShmNegotiationTest, EveryRankMapsOneSegmentThatIsAlreadyUnlinked) {
  const int n = 3;
  std::vector<std::string> names(n);
  auto statuses = RunRanks(n, FastOptions(Wire::kShm), [&](int rank, Communicator& comm) {
    names[rank] = comm.shared_memory_segment();
    if (InDevShm(names[rank]))
      return absl::InternalError(absl::StrCat(names[rank], " is still in /dev/shm"));
    std::vector<float> buf(1000, 1.0f);
    TANDEM_RETURN_IF_ERROR(comm.AllReduce(buf.data(), buf.size()));
    return buf[999] == 3.0f ? absl::OkStatus() : absl::InternalError("wrong sum");
  });
  for (auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(names[0].rfind("/tandem-coll-", 0), 0u) << names[0];
  for (int r = 1; r < n; ++r) EXPECT_EQ(names[r], names[0]);
}

TEST(ShmNegotiationTest, OneRankOptingOutPutsTheWholeRingOnTcp) {
  const int n = 3;
  testing::Ring ring = testing::BindRing(n);
  std::vector<absl::Status> result(n);
  std::vector<std::string> transports(n);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < n; ++rank)
    threads.emplace_back([&, rank] {
      CommunicatorOptions o = FastOptions(rank == 1 ? Wire::kTcp : Wire::kShm);
      auto comm = Communicator::Connect(o, *MakePeerList(ring.endpoints, rank, n),
                                        std::move(ring.listeners[rank]));
      if (!comm.ok()) {
        result[rank] = comm.status();
        return;
      }
      transports[rank] = (*comm)->allreduce_transport();
      std::vector<float> buf(5000, static_cast<float>(rank));
      result[rank] = (*comm)->AllReduce(buf.data(), buf.size());
      if (result[rank].ok() && buf[4999] != 3.0f) result[rank] = absl::InternalError("wrong sum");
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r) {
    EXPECT_TRUE(result[r].ok()) << "rank " << r << ": " << result[r];
    EXPECT_EQ(transports[r], "tcp") << "rank " << r;
  }
}

TEST(ShmNegotiationTest, EnvironmentOptOut) {
  setenv("TANDEM_COLLECTIVE_SHM", "0", 1);
  auto off = CommunicatorOptionsFromEnv(ProcessEnvironment());
  setenv("TANDEM_COLLECTIVE_SHM", "on", 1);
  setenv("TANDEM_COLLECTIVE_SHM_SLOT_KIB", "64", 1);
  auto on = CommunicatorOptionsFromEnv(ProcessEnvironment());
  setenv("TANDEM_COLLECTIVE_SHM", "maybe", 1);
  auto bad = CommunicatorOptionsFromEnv(ProcessEnvironment());
  unsetenv("TANDEM_COLLECTIVE_SHM");
  unsetenv("TANDEM_COLLECTIVE_SHM_SLOT_KIB");
  auto deflt = CommunicatorOptionsFromEnv(ProcessEnvironment());
  ASSERT_TRUE(off.ok() && on.ok() && deflt.ok());
  EXPECT_FALSE(off->shm.enabled);
  EXPECT_TRUE(on->shm.enabled);
  EXPECT_EQ(on->shm.slot_bytes, 64u << 10);
  EXPECT_TRUE(deflt->shm.enabled);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find("TANDEM_COLLECTIVE_SHM"), std::string::npos);
}

TEST(ShmNegotiationTest, EachCommunicatorHasItsOwnSegment) {
  // Two jobs one after the other in one process: each negotiation creates its own segment, and
  // both give right answers.
  std::string names[2];
  for (int job = 0; job < 2; ++job) {
    auto statuses = RunRanks(2, FastOptions(Wire::kShm), [&](int rank, Communicator& comm) {
      if (rank == 0) names[job] = comm.shared_memory_segment();
      std::vector<float> buf(777, static_cast<float>(rank + job));
      TANDEM_RETURN_IF_ERROR(comm.AllReduce(buf.data(), buf.size(), ReduceOp::kAverage));
      return buf[0] == 0.5f + job ? absl::OkStatus() : absl::InternalError("wrong average");
    });
    for (auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
  }
  EXPECT_NE(names[0], names[1]);
}

TEST(SharedSegmentTest, CreateOpenUnlink) {
  auto a = SharedSegment::Create(8192);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(InDevShm(a->name()));
  a->data()[100] = 42;
  auto b = SharedSegment::Open(a->name(), 8192);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->data()[100], 42);  // one memory
  auto wrong = SharedSegment::Open(a->name(), 4096);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition) << wrong.status();
  EXPECT_TRUE(SharedSegment::Unlink(a->name()).ok());
  EXPECT_FALSE(InDevShm(a->name()));
  EXPECT_TRUE(SharedSegment::Unlink(a->name()).ok());  // already gone is fine
  EXPECT_EQ(b->data()[100], 42);                         // mappings outlive the name
  EXPECT_FALSE(SharedSegment::Open(a->name(), 8192).ok());
}

TEST(SharedSegmentTest, SegmentsOfDeadCreatorsAreSweptAtTheNextCreate) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);  // `child` is now a pid that runs nothing
  const std::string stale = absl::StrFormat("/tandem-coll-%d-00000000deadbeef", child);
  const std::string live = absl::StrFormat("/tandem-coll-%d-00000000cafef00d", getpid());
  for (const std::string& name : {stale, live}) {
    int fd = shm_open(name.c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd, 0) << name;
    close(fd);
  }
  auto fresh = SharedSegment::Create(4096);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_FALSE(InDevShm(stale));
  EXPECT_TRUE(InDevShm(live));  // its creator (this process) runs
  for (const std::string& name : {live, fresh->name()}) EXPECT_TRUE(SharedSegment::Unlink(name).ok());
}

TEST(SharedSegmentTest, HostFingerprintHasBootIdAndHostName) {
  const std::string f = HostFingerprint();
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  EXPECT_EQ(f.size() > 36 ? f.substr(37) : "", host) << f;
  EXPECT_EQ(f, HostFingerprint());
}

}  // namespace
}  // namespace tandem::collective
