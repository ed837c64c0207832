// Ranks as separate processes over loopback TCP: the happy path, and a rank killed with SIGKILL
// in the middle of its all-reduces, after which every other rank must exit with 75 (EX_TEMPFAIL)
// and an error naming the killed rank.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/trainer/collective/ring_harness.h"
#include "trainer/collective/exit_codes.h"

extern char** environ;

namespace tandem::collective {
namespace {

std::string HelperPath() {
  // The helper is built next to this test.
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::string path(self, len > 0 ? len : 0);
  return path.substr(0, path.rfind('/') + 1) + "collective_test_rank";
}

struct Rank {
  pid_t pid = -1;
  std::string log;
};

std::vector<Rank> Spawn(int n, size_t count, long loops, bool shm) {
  std::vector<int> ports;
  {
    testing::Ring ring = testing::BindRing(n);  // free ports; released just before spawning
    for (auto& e : ring.endpoints) ports.push_back(e.port);
  }
  std::string peers;
  for (int p : ports) absl::StrAppend(&peers, peers.empty() ? "" : ",", "127.0.0.1:", p);
  std::vector<Rank> ranks(n);
  for (int r = 0; r < n; ++r) {
    ranks[r].log = absl::StrCat(::testing::TempDir(), "collective_rank_", getpid(), "_", r, ".log");
    std::vector<std::string> env = {"TANDEM_PEERS=" + peers, absl::StrCat("TANDEM_RANK=", r),
                                    absl::StrCat("TANDEM_WORLD_SIZE=", n),
                                    "TANDEM_COLLECTIVE_TIMEOUT_S=5",
                                    "TANDEM_COLLECTIVE_RENDEZVOUS_TIMEOUT_S=30",
                                    absl::StrCat("TANDEM_COLLECTIVE_SHM=", shm ? 1 : 0)};
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string helper = HelperPath(), count_s = std::to_string(count),
                loops_s = std::to_string(loops);
    char* argv[] = {helper.data(), count_s.data(), loops_s.data(), nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, ranks[r].log.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    EXPECT_EQ(posix_spawn(&ranks[r].pid, helper.c_str(), &fa, nullptr, argv, envp.data()), 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  return ranks;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string ReadLog(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The segment name a rank printed ("" on TCP).
std::string SegmentOf(const std::string& log) {
  const size_t at = log.find("segment '");
  if (at == std::string::npos) return "";
  const size_t begin = at + 9, end = log.find('\'', begin);
  return log.substr(begin, end - begin);
}

bool InDevShm(const std::string& name) {
  return !name.empty() && access(("/dev/shm" + name).c_str(), F_OK) == 0;
}

// TANDEM_COLLECTIVE_SHM=0 / =1 (the default) as a real trainer would be configured.
class ProcessTest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Wires, ProcessTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "shm" : "tcp"; });

TEST_P(ProcessTest, ThreeProcessesAgree) {
  auto ranks = Spawn(3, 300007, 3, GetParam());
  for (auto& r : ranks) {
    EXPECT_EQ(WaitExit(r.pid), 0) << ReadLog(r.log);
    const std::string log = ReadLog(r.log);
    EXPECT_NE(log.find(GetParam() ? "transport shm" : "transport tcp"), std::string::npos) << log;
    EXPECT_FALSE(InDevShm(SegmentOf(log))) << log;
  }
}

TEST_P(ProcessTest, KilledRankMakesTheOthersExitWithTheRetryableCode) {
  const int n = 3, victim = 1;
  auto ranks = Spawn(n, 1 << 20, 1000000, GetParam());
  // Wait until the victim is inside its loop of all-reduces, then kill it.
  for (int i = 0; i < 400 && ReadLog(ranks[victim].log).find("done") == std::string::npos; ++i)
    usleep(25000);
  usleep(100000);
  kill(ranks[victim].pid, SIGKILL);
  EXPECT_EQ(WaitExit(ranks[victim].pid), 128 + SIGKILL);
  for (int r = 0; r < n; ++r) {
    if (r == victim) continue;
    EXPECT_EQ(WaitExit(ranks[r].pid), kPeerFailureExitCode) << ReadLog(ranks[r].log);
    EXPECT_NE(ReadLog(ranks[r].log).find("rank 1 (127.0.0.1:"), std::string::npos)
        << ReadLog(ranks[r].log);
    // The segment was unlinked at start-up: nothing is left behind by the crash.
    EXPECT_FALSE(InDevShm(SegmentOf(ReadLog(ranks[r].log)))) << ReadLog(ranks[r].log);
  }
}

}  // namespace
}  // namespace tandem::collective
