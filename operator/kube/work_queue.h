// A rate-limited, de-duplicating work queue of keys, with client-go's semantics:
// - a key added while queued is not queued twice;
// - a key added while being processed (between Get and Done) is re-queued once at Done, so one
//   key is never processed by two workers at once;
// - AddRateLimited waits max(per-item exponential backoff, overall token bucket) before adding;
//   Forget resets the item's backoff;
// - AddAfter adds after a delay.
//
//   while (queue.Get(&key)) {
//     absl::Status s = Reconcile(key);
//     if (s.ok()) queue.Forget(key); else queue.AddRateLimited(key);
//     queue.Done(key);
//   }
//
// Thread-safe. Exports tandem_operator_workqueue_depth{name} and
// tandem_operator_workqueue_adds_total{name}, tandem_operator_workqueue_retries_total{name}.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/metrics.h"

namespace tandem::kube {

using Duration = std::chrono::duration<double>;

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // How long to wait before the item is processed again.
  virtual Duration When(const std::string& item) = 0;
  virtual void Forget(const std::string& item) = 0;
  virtual int NumRequeues(const std::string& item) = 0;
};

// base * 2^failures, capped at max (client-go: 5ms .. 1000s).
class ItemExponentialRateLimiter : public RateLimiter {
 public:
  ItemExponentialRateLimiter(Duration base, Duration max) : base_(base), max_(max) {}
  Duration When(const std::string& item) override;
  void Forget(const std::string& item) override;
  int NumRequeues(const std::string& item) override;

 private:
  const Duration base_, max_;
  absl::Mutex mu_;
  std::map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
};

// An overall token bucket: `qps` tokens per second, `burst` at most (client-go: 10 qps, 100).
class TokenBucketRateLimiter : public RateLimiter {
 public:
  TokenBucketRateLimiter(double qps, int burst);
  Duration When(const std::string& item) override;
  void Forget(const std::string&) override {}
  int NumRequeues(const std::string&) override { return 0; }

 private:
  const double qps_;
  const double burst_;
  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_ ABSL_GUARDED_BY(mu_);
};

// The longest wait of several limiters.
class MaxOfRateLimiter : public RateLimiter {
 public:
  explicit MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters)
      : limiters_(std::move(limiters)) {}
  Duration When(const std::string& item) override;
  void Forget(const std::string& item) override;
  int NumRequeues(const std::string& item) override;

 private:
  std::vector<std::unique_ptr<RateLimiter>> limiters_;
};

// Per-item 5ms..1000s exponential, and 10 qps / burst 100 overall.
std::unique_ptr<RateLimiter> DefaultControllerRateLimiter();

class WorkQueue {
 public:
  explicit WorkQueue(std::string name,
                     std::unique_ptr<RateLimiter> limiter = DefaultControllerRateLimiter());
  ~WorkQueue();

  // Marks `key` urgent: whenever it is queued (Add, a due AddAfter, a re-queue at Done) it goes
  // to the front, ahead of every other key. For a key whose work unblocks the others (the
  // scheduling pass, which admits the jobs those keys are waiting on): in plain FIFO order it
  // waits behind every key queued before it, however long that backlog is.
  void SetUrgent(const std::string& key);

  void Add(const std::string& key);
  void AddAfter(const std::string& key, Duration delay);
  void AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key);

  // Blocks until a key is ready or the queue shuts down (then returns false).
  bool Get(std::string* key);
  // Blocks at most `timeout`; false on timeout or shutdown.
  bool GetFor(std::string* key, Duration timeout);
  void Done(const std::string& key);

  // Wakes every Get with false; later Adds are dropped.
  void ShutDown();
  bool ShuttingDown();
  // Keys ready to be processed now (not counting delayed ones or those being processed).
  int Len();
  // Keys waiting for a delay to pass.
  int DelayedLen();

 private:
  void AddLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PromoteDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateDepthLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnqueueLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string name_;
  std::unique_ptr<RateLimiter> limiter_;
  absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> processing_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> urgent_ ABSL_GUARDED_BY(mu_);
  std::multimap<std::chrono::steady_clock::time_point, std::string> waiting_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  metrics::Gauge* depth_;
  metrics::Counter* adds_;
  metrics::Counter* retries_;
};

}  // namespace tandem::kube
