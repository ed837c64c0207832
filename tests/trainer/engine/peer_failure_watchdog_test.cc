// PeerFailureWatchdog: calls its action once a failure has lasted the grace period, never for a
// healthy ring, and not after it was destroyed (the training thread acted on the failure first).
#include "trainer/engine/peer_failure_watchdog.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace tandem::trainer {
namespace {

TEST(PeerFailureWatchdogTest, HealthyRingIsLeftAlone) {
  std::atomic<int> polls{0}, stuck{0};
  {
    PeerFailureWatchdog dog([&] { ++polls; return absl::OkStatus(); }, absl::ZeroDuration(),
                            [&](const absl::Status&) { ++stuck; }, absl::Milliseconds(1));
    while (polls.load() < 20) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(stuck.load(), 0);
}

TEST(PeerFailureWatchdogTest, LastingFailureCallsTheActionOnceWithTheStatus) {
  std::atomic<int> polls{0}, stuck{0};
  absl::Notification called;
  absl::Status seen;
  PeerFailureWatchdog dog(
      [&] {
        // Healthy for a few polls, then failed for good (as a communicator stays failed).
        return ++polls < 5 ? absl::OkStatus() : absl::UnavailableError("rank 1 (10.0.0.2:1) cut");
      },
      absl::Milliseconds(20),
      [&](const absl::Status& s) {
        seen = s;
        ++stuck;
        called.Notify();
      },
      absl::Milliseconds(1));
  called.WaitForNotification();
  const int polls_then = polls.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(stuck.load(), 1);
  EXPECT_EQ(polls.load(), polls_then) << "the watchdog kept polling after acting";
  EXPECT_TRUE(absl::IsUnavailable(seen)) << seen;
  EXPECT_GE(polls_then, 5);
}

TEST(PeerFailureWatchdogTest, FailureHandledWithinTheGraceIsNotActedOn) {
  std::atomic<int> polls{0}, stuck{0};
  {
    PeerFailureWatchdog dog([&] { ++polls; return absl::UnavailableError("peer gone"); },
                            absl::Hours(1), [&](const absl::Status&) { ++stuck; },
                            absl::Milliseconds(1));
    while (polls.load() < 20) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }  // the trainer returned with the failure itself: the watchdog goes away quietly
  EXPECT_EQ(stuck.load(), 0);
}

// A failed rank's teardown is bounded: the process ends with the code even when the main thread
// is stuck (here: asleep for an hour).
TEST(ExitAfterTest, EndsAStuckProcessWithTheCode) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ExitAfter(absl::Milliseconds(20), 75);
    absl::SleepFor(absl::Hours(1));
    ::_exit(1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 75);
}

}  // namespace
}  // namespace tandem::trainer
