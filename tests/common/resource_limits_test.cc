// Resource limits are errors, not aborts: a failed allocation ends the process with a message and
// kOutOfMemoryExitCode (no signal, no core dump), and a disk that fills up during a checkpoint
// leaves the previous checkpoint readable. Limits are set with setrlimit in a forked child
// (RLIMIT_AS for memory, RLIMIT_FSIZE standing in for a full disk: write() fails with EFBIG
// exactly where a full disk fails with ENOSPC), so the test process itself is not limited.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "common/out_of_memory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;
using testing::ChildResult;
using testing::RunInChild;
namespace fs = std::filesystem;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

void LimitAddressSpace(rlim_t bytes) {
  rlimit rl{bytes, bytes};
  if (::setrlimit(RLIMIT_AS, &rl) != 0) ::_exit(90);
}

TEST(OutOfMemoryTest, FailedNewExitsWithTheNonRetryableCodeAndAMessage) {
  if (kAsan) GTEST_SKIP() << "ASan reserves terabytes of address space; RLIMIT_AS cannot apply";
  ChildResult r = RunInChild([] {
    InstallOutOfMemoryHandler("limits-test");
    LimitAddressSpace(rlim_t{512} << 20);
    std::vector<std::vector<char>> hog;
    for (int i = 0; i < 64; ++i) hog.emplace_back(size_t{64} << 20, 'x');  // 4 GiB in all
    return 0;  // not reached
  });
  ASSERT_TRUE(WIFEXITED(r.status)) << "killed by signal " << WTERMSIG(r.status);
  EXPECT_EQ(WEXITSTATUS(r.status), kOutOfMemoryExitCode);
  EXPECT_THAT(r.output, HasSubstr("limits-test: out of memory"));
  EXPECT_THAT(r.output, HasSubstr("address-space limit 536870912 bytes"));
  EXPECT_THAT(r.output, HasSubstr("not retried"));
}

TEST(OutOfMemoryTest, WithoutTheHandlerAFailedNewAborts) {
  // What the handler replaces: std::bad_alloc, uncaught, is std::terminate -> SIGABRT (a core).
  if (kAsan) GTEST_SKIP() << "ASan reserves terabytes of address space; RLIMIT_AS cannot apply";
  ChildResult r = RunInChild([] {
    LimitAddressSpace(rlim_t{512} << 20);
    std::vector<char> hog(size_t{4} << 30, 'x');
    return 0;
  });
  ASSERT_TRUE(WIFSIGNALED(r.status));
  EXPECT_EQ(WTERMSIG(r.status), SIGABRT);
}

TEST(OutOfMemoryTest, ExitOutOfMemoryNamesTheSizeAndWhat) {
  ChildResult r = RunInChild([]() -> int { ExitOutOfMemory(123456789, "a tensor"); });
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), kOutOfMemoryExitCode);
  EXPECT_THAT(r.output, HasSubstr("cannot allocate 123456789 bytes for a tensor"));
}

std::string TestDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/limits-" + name + "-" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Exit codes of the full-disk child, so a failure says which step went wrong.
enum : int { kWroteOk = 0, kFirstWriteFailed = 10, kBigWriteSucceeded, kWrongError, kLimitFailed };

TEST(FullDiskTest, ACheckpointThatDoesNotFitLeavesThePreviousOneIntact) {
  const std::string dir = TestDir("fsize");
  const std::string path = dir + "/model.ckpt";
  const std::vector<float> small(1000, 1.5f);
  ChildResult r = RunInChild([&] {
    if (!WriteCheckpoint(path, {{"step", 1}}, std::vector<NamedFloats>{{"w", {1000}, small}}).ok())
      return int{kFirstWriteFailed};
    ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead of killing the process
    rlimit rl{64 << 10, 64 << 10};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) return int{kLimitFailed};
    const std::vector<float> big(1 << 20, 2.5f);  // 4 MiB: cannot fit under 64 KiB
    absl::Status s = WriteCheckpoint(path, {{"step", 2}}, std::vector<NamedFloats>{{"w", {1 << 20}, big}});
    if (s.ok()) return int{kBigWriteSucceeded};
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return s.message().find(path) == std::string::npos ? int{kWrongError} : int{kWroteOk};
  });
  ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
  ASSERT_EQ(WEXITSTATUS(r.status), kWroteOk) << r.output;
  // The failed write's error named the file; the old checkpoint is what is on disk, whole.
  auto ckpt = ReadCheckpoint(path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(ckpt->metadata["step"], 1);
  ASSERT_NE(ckpt->Find("w"), nullptr);
  EXPECT_EQ(ckpt->Find("w")->Floats()[999], 1.5f);
  // No temporary file is left behind to fill the disk further.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(e.path().filename(), "model.ckpt");
  }
  EXPECT_EQ(files, 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tandem
