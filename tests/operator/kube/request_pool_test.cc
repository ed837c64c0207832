// RequestPool / CallGroup: calls run concurrently up to the pool's size and no further, results
// come back in Add order, a null pool runs calls inline in order, and shutting the pool down
// cancels queued calls instead of leaving a waiter hanging.
#include "operator/kube/request_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tandem::kube {
namespace {

// A gate that calls block on until the test opens it, counting how many wait at once.
class Gate {
 public:
  void Pass() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    most_ = std::max(most_, waiting_);
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    --waiting_;
  }
  bool WaitForWaiters(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return waiting_ >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int waiting() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_;
  }
  int most() {
    std::lock_guard<std::mutex> lock(mu_);
    return most_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0, most_ = 0;
};

TEST(RequestPoolTest, CallsOverlapUpToThePoolSizeAndNoFurther) {
  RequestPool pool(4);
  Gate gate;
  CallGroup group(&pool);
  for (int i = 0; i < 10; ++i) {
    group.Add([&gate] {
      gate.Pass();
      return absl::OkStatus();
    });
  }
  // Four calls are in flight together (they would never meet if run one after another) ...
  ASSERT_TRUE(gate.WaitForWaiters(4));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // ... and no fifth joins them while they block.
  EXPECT_EQ(gate.waiting(), 4);
  gate.Open();
  EXPECT_TRUE(group.Wait().ok());
  EXPECT_EQ(gate.most(), 4);
}

TEST(RequestPoolTest, WaitReturnsTheFirstErrorInAddOrder) {
  RequestPool pool(3);
  CallGroup group(&pool);
  std::atomic<int> ran{0};
  for (int i = 0; i < 6; ++i) {
    group.Add([i, &ran]() -> absl::Status {
      // The later failure finishes first; Wait still reports the earlier one.
      std::this_thread::sleep_for(std::chrono::milliseconds(i == 2 ? 60 : 1));
      ++ran;
      if (i == 2) return absl::UnavailableError("call 2");
      if (i == 4) return absl::AlreadyExistsError("call 4");
      return absl::OkStatus();
    });
  }
  absl::Status s = group.Wait();
  EXPECT_EQ(ran.load(), 6) << "every call runs even after one failed";
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST(RequestPoolTest, WithoutAPoolCallsRunInlineInOrder) {
  CallGroup group(nullptr);
  std::vector<int> order;
  const auto caller = std::this_thread::get_id();
  for (int i = 0; i < 5; ++i) {
    group.Add([i, &order, caller] {
      EXPECT_EQ(std::this_thread::get_id(), caller);
      order.push_back(i);
      return i == 3 ? absl::InternalError("3") : absl::OkStatus();
    });
    EXPECT_EQ(order.size(), static_cast<size_t>(i + 1)) << "ran at Add";
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(group.Wait().code(), absl::StatusCode::kInternal);
}

TEST(RequestPoolTest, ShutDownCancelsQueuedCallsAndLaterOnesRunInline) {
  auto pool = std::make_unique<RequestPool>(1);
  Gate gate;
  CallGroup group(pool.get());
  group.Add([&gate] {
    gate.Pass();
    return absl::OkStatus();
  });
  ASSERT_TRUE(gate.WaitForWaiters(1));
  std::atomic<bool> queued_ran{false};
  group.Add([&queued_ran] {
    queued_ran = true;
    return absl::OkStatus();
  });
  std::thread stopper([&] { pool->ShutDown(); });
  // Submit is refused once ShutDown has taken the queue (one critical section): only then let
  // the running call finish, so the queued one cannot have started.
  while (pool->Submit([] {})) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  gate.Open();  // the running call finishes; the queued one is dropped
  stopper.join();
  absl::Status s = group.Wait();
  EXPECT_FALSE(queued_ran.load());
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;

  // A shut-down pool runs new calls on the caller's thread rather than dropping them.
  CallGroup after(pool.get());
  bool ran = false;
  after.Add([&ran] {
    ran = true;
    return absl::OkStatus();
  });
  EXPECT_TRUE(ran);
  EXPECT_TRUE(after.Wait().ok());
  EXPECT_FALSE(pool->Submit([] {})) << "fire-and-forget work is refused once shut down";
}

TEST(RequestPoolTest, ManyCallersShareOnePool) {
  RequestPool pool(8);
  std::atomic<int> done{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 6; ++c) {
    callers.emplace_back([&] {
      CallGroup group(&pool);
      for (int i = 0; i < 50; ++i) {
        group.Add([&done] {
          ++done;
          return absl::OkStatus();
        });
      }
      EXPECT_TRUE(group.Wait().ok());
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(done.load(), 300);
}

}  // namespace
}  // namespace tandem::kube
