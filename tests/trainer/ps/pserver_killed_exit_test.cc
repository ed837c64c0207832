// A trainer that leaves for a restart because a pserver died under it exits 75 (retryable), never
// with an abort or a signal. `tandem run` of the CTR job of consistent_restart_test.cc (2 trainers
// + 2 pservers, sync, dense ring) whose pserver 1 is killed with SIGKILL mid-step several times:
// after each kill both trainers leave (the shards abort the step) and are restarted, and every exit
// of a trainer the supervisor reports must be code 75. One such exit once ended with glibc's
// "double free or corruption (fasttop)" (exit 134, which the restart policy does not retry, so the
// job failed) in trainer_ps_consistent_restart_test; see docs/hardening.md.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/local_run_harness.h"
#include "tests/trainer/ps/ctr_restart_job.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::FindChild;
using testing::HasCheckpoint;
using testing::ReadFile;
using testing::StepsDone;

constexpr int kInterval = testing::kCheckpointInterval;
constexpr int kKills = 3;

// 2 workers x 60,000 examples of batch 128: 469 steps per trainer. A restart budget that the
// kills' charged pserver restarts (1 + 2 + 4 s of backoff) stay well inside.
const std::string kJob = testing::CtrRestartJob("ctr-exit", 120000, /*backoff_limit=*/8);

struct Exit {
  std::string process;  // "worker-1/trainer"
  int code;
};

// Every exit of a worker process the supervisor reported ("[tandem] worker-1/trainer exited with
// code N; restarting ...", "... failed with exit code N ...").
std::vector<Exit> ExitsOf(const std::string& output) {
  std::vector<Exit> out;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("[tandem] worker-", 0) != 0) continue;
    const size_t name_end = line.find(' ', 9);
    if (name_end == std::string::npos) continue;
    for (const char* said : {" exited with code ", " failed with exit code "}) {
      if (line.compare(name_end, std::strlen(said), said) != 0) continue;
      int code = -1;
      const std::string rest = line.substr(name_end + std::strlen(said));
      if (absl::SimpleAtoi(rest.substr(0, rest.find_first_not_of("0123456789")), &code))
        out.push_back({line.substr(9, name_end - 9), code});
    }
  }
  return out;
}

TEST(PServerKilledExitTest, TrainersLeavingForARestartExit75) {
  const fs::path root =
      fs::temp_directory_path() / absl::StrCat("pserver-killed-exit-", ::getpid());
  fs::remove_all(root);
  fs::create_directories(root);
  std::ofstream(root / "job.yaml") << kJob;
  const std::string run_dir = (root / "run").string();
  const std::string out_path = (root / "out.txt").string();
  int code = -1;
  int kills = 0;
  {
    testing::TandemRun run((root / "job.yaml").string(), run_dir, out_path,
                           {{"OMP_WAIT_POLICY", "passive"}});
    int64_t resume_floor = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(240);
    while (kills < kKills && run.Running() && Clock::now() < deadline) {
      // Mid-way between two checkpoints, once the trainers (restarted after the previous kill)
      // have passed a checkpoint of their own: the kill then aborts a step in flight.
      const int64_t done = StepsDone(run_dir, 0);
      const bool ready = HasCheckpoint(run_dir + "/checkpoints/trainer-0") &&
                         HasCheckpoint(run_dir + "/checkpoints/trainer-1") &&
                         done >= resume_floor + kInterval + 5 && done % kInterval >= 5 &&
                         done % kInterval <= 15;
      if (!ready) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }
      const pid_t pserver = FindChild(run.pid(), "pserver", 1);
      const pid_t t0 = FindChild(run.pid(), "trainer", 0), t1 = FindChild(run.pid(), "trainer", 1);
      if (pserver <= 0 || t0 <= 0 || t1 <= 0) continue;
      ASSERT_EQ(::kill(pserver, SIGKILL), 0);
      ++kills;
      std::cout << "kill " << kills << ": pserver 1 after step " << done << std::endl;
      resume_floor = done;
      // Both trainers leave and come back before the next kill.
      const auto back_by = Clock::now() + std::chrono::seconds(90);
      while (run.Running() && Clock::now() < back_by &&
             (FindChild(run.pid(), "trainer", 0) == t0 || FindChild(run.pid(), "trainer", 0) <= 0 ||
              FindChild(run.pid(), "trainer", 1) == t1 || FindChild(run.pid(), "trainer", 1) <= 0))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    code = run.Wait(std::chrono::seconds(300));
  }
  const std::string out = ReadFile(out_path);
  ASSERT_EQ(kills, kKills) << out;
  EXPECT_EQ(code, 0) << out;
  int trainer_exits = 0;
  for (const Exit& e : ExitsOf(out)) {
    if (e.process.find("/trainer") == std::string::npos) continue;
    ++trainer_exits;
    EXPECT_EQ(e.code, 75) << e.process << " exited with code " << e.code
                          << " instead of 75 (leaving for a restart)\n"
                          << out;
  }
  // Each kill makes at least one trainer leave (in practice both).
  EXPECT_GE(trainer_exits, kKills) << out;
  std::cout << kills << " kills, " << trainer_exits << " trainer exits" << std::endl;
  for (int w = 0; w < 2; ++w) {
    const std::string log = ReadFile(absl::StrCat(run_dir, "/logs/worker-", w, "-trainer.log"));
    EXPECT_EQ(log.find("double free"), std::string::npos) << log;
    EXPECT_EQ(log.find("Sanitizer"), std::string::npos) << log;
  }
  if (!HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace tandem
