// Helpers for tests that drive `tandem run` end to end (tests/cli/run_test.cc,
// tests/trainer/ps/consistent_restart_test.cc): the run as a child process, its worker processes
// found through /proc, and what it leaves in its run folder.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace tandem::testing {

// The whole file, or "" when it cannot be read.
std::string ReadFile(const std::string& path);

// `tandem run JOB --run-dir RUN_DIR --grace 10` as a child process in a process group of its own
// (the test's signals reach tandem only), stdout and stderr to `out`, with `env` added to its
// environment. Killed with its whole group if still running when destroyed.
class TandemRun {
 public:
  TandemRun(const std::string& job, const std::string& run_dir, const std::string& out,
            const std::vector<std::pair<std::string, std::string>>& env = {});
  ~TandemRun();
  TandemRun(const TandemRun&) = delete;
  TandemRun& operator=(const TandemRun&) = delete;

  pid_t pid() const { return pid_; }
  // False once tandem has exited (then Wait() returns its code at once).
  bool Running();
  // The exit code (128 + signal when killed), or -1 when it still runs after `timeout`.
  int Wait(std::chrono::seconds timeout);

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = -1;
};

struct Child {
  pid_t pid;
  std::string role;  // "trainer" or "pserver"
  int rank;          // its TANDEM_RANK, -1 if none
};
// The live tandem-trainer / tandem-pserver children of `parent`.
std::vector<Child> ChildrenOf(pid_t parent);
// The live child of `parent` with this role and rank, or -1.
pid_t FindChild(pid_t parent, const std::string& role, int rank);
// True while `pid` exists and is not a zombie.
bool Alive(pid_t pid);

// Steps worker `rank`'s trainer has finished: its step journal (trainer/engine/events.h), which it
// rewrites after every step (tandem's own log files are buffered).
int64_t StepsDone(const std::string& run_dir, int rank);
// True when `dir` holds a *.ckpt file.
bool HasCheckpoint(const std::string& dir);
// The `key=value` pairs of tandem run's summary line (the last line with `lost_steps=` and
// `workers=`; the trainers' own summary lines have neither).
std::map<std::string, std::string> SummaryOf(const std::string& output);
// The events the run has written to `run_dir`/metrics.jsonl so far, in order; only those whose
// `event` is `kind` unless `kind` is empty. Lines that are not JSON objects are skipped.
std::vector<nlohmann::json> RunEvents(const std::string& run_dir, const std::string& kind = "");
// `tandem resize ARGS` with its output in the file `out`: its exit code and that output.
std::pair<int, std::string> TandemResize(const std::string& args, const std::string& out);

}  // namespace tandem::testing
