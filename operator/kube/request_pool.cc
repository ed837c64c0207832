#include "operator/kube/request_pool.h"

#include <memory>

#include "common/check.h"

namespace tandem::kube {

RequestPool::RequestPool(int threads) {
  TANDEM_CHECK(threads >= 1);
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

RequestPool::~RequestPool() { ShutDown(); }

bool RequestPool::Submit(std::function<void()> fn) {
  return SubmitTask([fn = std::move(fn)](bool run) {
    if (run) fn();
  });
}

bool RequestPool::SubmitTask(std::function<void(bool)> task) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.Signal();
  return true;
}

void RequestPool::ShutDown() {
  std::deque<std::function<void(bool)>> dropped;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    dropped.swap(queue_);
  }
  cv_.SignalAll();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  for (auto& task : dropped) task(false);
}

void RequestPool::Run() {
  while (true) {
    std::function<void(bool)> task;
    {
      absl::MutexLock lock(&mu_);
      while (!shut_down_ && queue_.empty()) cv_.Wait(&mu_);
      if (queue_.empty()) return;  // shut down
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task(true);
  }
}

void CallGroup::Add(std::function<absl::Status()> call) {
  size_t slot;
  {
    absl::MutexLock lock(&mu_);
    slot = results_.size();
    results_.emplace_back();
    ++pending_;
  }
  auto finish = [this, slot](absl::Status s) {
    absl::MutexLock lock(&mu_);
    results_[slot] = std::move(s);
    if (--pending_ == 0) done_.SignalAll();
  };
  if (pool_ != nullptr) {
    // Shared so that the call survives a refused submission (the task is then destroyed unrun).
    auto shared = std::make_shared<std::function<absl::Status()>>(std::move(call));
    bool queued = pool_->SubmitTask([shared, finish](bool run) {
      finish(run ? (*shared)() : absl::CancelledError("the API request pool shut down before this call ran"));
    });
    if (queued) return;
    call = std::move(*shared);
  }
  finish(call());
}

absl::Status CallGroup::Wait() {
  absl::MutexLock lock(&mu_);
  while (pending_ != 0) done_.Wait(&mu_);
  for (const auto& s : results_) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace tandem::kube
