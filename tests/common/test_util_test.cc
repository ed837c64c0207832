// tests/common/test_util.h itself: RunProgram from several threads at once, as the elastic
// start-up test runs three trainers. A program's output pipe must reach end of file when that
// program exits, whatever other programs the test started meanwhile. Once a trainer forked by
// one thread inherited the pipe another thread had just made for its own trainer (before that
// thread closed its copy of the write end); the test then waited for that pipe's end of file
// while the inheriting trainer waited for the test, and ctest killed it after 300 s.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem::testing {
namespace {

namespace fs = std::filesystem;

// One long program (it waits for a release file) and many short ones start at the same moment,
// in rounds; the short ones must all return while the long one still waits. Without
// close-on-exec pipes the long one's fork often lands while a short one's pipe is open in the
// test process (between its pipe() and its close after fork), keeping that short one's
// RunProgram from returning: the long one then times out (20 s) instead of being released.
TEST(RunProgramTest, AProgramDoesNotHoldAnotherThreadsOutputOpen) {
  const fs::path dir = fs::path(::testing::TempDir()) / absl::StrCat("tandem_run_program_test_", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
  for (int round = 0; round < 5; ++round) {
    const std::string release = (dir / absl::StrCat("release-", round)).string();
    std::atomic<int> ready{0};
    constexpr int kShort = 12;
    auto go = [&] {
      ready.fetch_add(1);
      while (ready.load() < kShort + 1) std::this_thread::yield();
    };
    CommandResult long_result;
    std::thread long_thread([&] {
      go();
      long_result = RunProgram({"/bin/sh", "-c",
                                absl::StrCat("i=0; while [ ! -e '", release, "' ] && [ $i -lt 200 ]; do sleep 0.1; ",
                                             "i=$((i+1)); done; if [ -e '", release, "' ]; then echo released; ",
                                             "else echo timed-out; fi")},
                               env);
    });
    std::vector<CommandResult> results(kShort);
    std::vector<std::thread> threads;
    for (int i = 0; i < kShort; ++i)
      threads.emplace_back([&, i] {
        go();
        results[static_cast<size_t>(i)] = RunProgram({"/bin/sh", "-c", absl::StrCat("echo ", i)}, env);
      });
    for (std::thread& t : threads) t.join();
    std::ofstream(release) << "go\n";
    long_thread.join();
    for (int i = 0; i < kShort; ++i) EXPECT_EQ(results[static_cast<size_t>(i)].output, absl::StrCat(i, "\n"));
    ASSERT_EQ(long_result.output, "released\n")
        << "round " << round << ": a short program's RunProgram returned only once the long one had exited";
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tandem::testing
