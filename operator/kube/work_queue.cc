#include "operator/kube/work_queue.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/synchronization/mutex.h"

namespace tandem::kube {

Duration ItemExponentialRateLimiter::When(const std::string& item) {
  absl::MutexLock lock(&mu_);
  int n = failures_[item]++;
  double d = base_.count() * std::pow(2.0, std::min(n, 62));
  return Duration(std::min(d, max_.count()));
}

void ItemExponentialRateLimiter::Forget(const std::string& item) {
  absl::MutexLock lock(&mu_);
  failures_.erase(item);
}

int ItemExponentialRateLimiter::NumRequeues(const std::string& item) {
  absl::MutexLock lock(&mu_);
  auto it = failures_.find(item);
  return it == failures_.end() ? 0 : it->second;
}

TokenBucketRateLimiter::TokenBucketRateLimiter(double qps, int burst)
    : qps_(qps), burst_(burst), tokens_(burst), last_(std::chrono::steady_clock::now()) {}

Duration TokenBucketRateLimiter::When(const std::string&) {
  absl::MutexLock lock(&mu_);
  auto now = std::chrono::steady_clock::now();
  tokens_ = std::min(burst_, tokens_ + Duration(now - last_).count() * qps_);
  last_ = now;
  // Reserve a token; a negative balance is the wait until it is available.
  tokens_ -= 1.0;
  if (tokens_ >= 0) return Duration(0);
  return Duration(-tokens_ / qps_);
}

Duration MaxOfRateLimiter::When(const std::string& item) {
  Duration longest(0);
  for (auto& l : limiters_) longest = std::max(longest, l->When(item));
  return longest;
}

void MaxOfRateLimiter::Forget(const std::string& item) {
  for (auto& l : limiters_) l->Forget(item);
}

int MaxOfRateLimiter::NumRequeues(const std::string& item) {
  int most = 0;
  for (auto& l : limiters_) most = std::max(most, l->NumRequeues(item));
  return most;
}

std::unique_ptr<RateLimiter> DefaultControllerRateLimiter() {
  std::vector<std::unique_ptr<RateLimiter>> v;
  v.push_back(std::make_unique<ItemExponentialRateLimiter>(Duration(0.005), Duration(1000)));
  v.push_back(std::make_unique<TokenBucketRateLimiter>(10.0, 100));
  return std::make_unique<MaxOfRateLimiter>(std::move(v));
}

WorkQueue::WorkQueue(std::string name, std::unique_ptr<RateLimiter> limiter)
    : name_(std::move(name)), limiter_(std::move(limiter)) {
  auto& reg = metrics::Registry::Default();
  depth_ = reg.AddGauge("tandem_operator_workqueue_depth", "Keys waiting in the work queue",
                        {"name"})
               .WithLabels({name_});
  adds_ = reg.AddCounter("tandem_operator_workqueue_adds_total", "Keys added to the work queue",
                         {"name"})
              .WithLabels({name_});
  retries_ = reg.AddCounter("tandem_operator_workqueue_retries_total",
                            "Keys re-added with rate limiting after a failure", {"name"})
                 .WithLabels({name_});
}

WorkQueue::~WorkQueue() { ShutDown(); }

void WorkQueue::UpdateDepthLocked() { depth_->Set(static_cast<double>(queue_.size())); }

void WorkQueue::EnqueueLocked(const std::string& key) {
  if (urgent_.count(key) != 0) {
    queue_.push_front(key);
  } else {
    queue_.push_back(key);
  }
  UpdateDepthLocked();
  cv_.Signal();
}

void WorkQueue::SetUrgent(const std::string& key) {
  absl::MutexLock lock(&mu_);
  urgent_.insert(key);
  auto it = std::find(queue_.begin(), queue_.end(), key);
  if (it != queue_.end()) {  // already waiting: move it to the front
    queue_.erase(it);
    queue_.push_front(key);
  }
}

void WorkQueue::AddLocked(const std::string& key) {
  if (shutting_down_ || dirty_.count(key) != 0) return;
  adds_->Inc();
  dirty_.insert(key);
  if (processing_.count(key) != 0) return;  // re-queued by Done
  EnqueueLocked(key);
}

void WorkQueue::Add(const std::string& key) {
  absl::MutexLock lock(&mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, Duration delay) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  if (delay.count() <= 0) {
    AddLocked(key);
    return;
  }
  auto at = std::chrono::steady_clock::now() +
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay);
  // Keep only the earliest pending delay per key (client-go's waitingForQueue de-duplication).
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->second == key) {
      if (it->first <= at) return;
      waiting_.erase(it);
      break;
    }
  }
  waiting_.emplace(at, key);
  cv_.SignalAll();
}

void WorkQueue::AddRateLimited(const std::string& key) {
  retries_->Inc();
  AddAfter(key, limiter_->When(key));
}

void WorkQueue::Forget(const std::string& key) { limiter_->Forget(key); }
int WorkQueue::NumRequeues(const std::string& key) { return limiter_->NumRequeues(key); }

void WorkQueue::PromoteDueLocked() {
  auto now = std::chrono::steady_clock::now();
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    std::string key = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    AddLocked(key);
  }
}

bool WorkQueue::Get(std::string* key) {
  return GetFor(key, Duration(std::numeric_limits<double>::infinity()));
}

bool WorkQueue::GetFor(std::string* key, Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto deadline = std::isinf(timeout.count())
                      ? std::chrono::steady_clock::time_point::max()
                      : std::chrono::steady_clock::now() +
                            std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
  while (true) {
    PromoteDueLocked();
    if (shutting_down_) return false;
    if (!queue_.empty()) break;
    auto wake = deadline;
    if (!waiting_.empty()) wake = std::min(wake, waiting_.begin()->first);
    if (wake == std::chrono::steady_clock::time_point::max()) {
      cv_.Wait(&mu_);
    } else {
      const bool timed_out =
          cv_.WaitWithTimeout(&mu_, absl::FromChrono(wake - std::chrono::steady_clock::now()));
      if (timed_out &&
          std::chrono::steady_clock::now() >= deadline) {
        PromoteDueLocked();
        if (queue_.empty() || shutting_down_) return false;
      }
    }
  }
  *key = queue_.front();
  queue_.pop_front();
  processing_.insert(*key);
  dirty_.erase(*key);
  UpdateDepthLocked();
  return true;
}

void WorkQueue::Done(const std::string& key) {
  absl::MutexLock lock(&mu_);
  processing_.erase(key);
  if (dirty_.count(key) != 0 && !shutting_down_) EnqueueLocked(key);
}

void WorkQueue::ShutDown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  cv_.SignalAll();
}

bool WorkQueue::ShuttingDown() {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

int WorkQueue::Len() {
  absl::MutexLock lock(&mu_);
  PromoteDueLocked();
  return static_cast<int>(queue_.size());
}

int WorkQueue::DelayedLen() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(waiting_.size());
}

}  // namespace tandem::kube
