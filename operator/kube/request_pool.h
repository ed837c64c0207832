// Bounded concurrency for blocking Kubernetes API calls. The API server answers one request in
// tens to hundreds of milliseconds under load; a reconcile that creates a job's children and
// workers one after another, or a scheduling pass that writes thousands of statuses in a row,
// is then bound by that latency, not by either side's CPU. A RequestPool is a fixed set of
// threads shared by the whole operator (so the number of requests in flight stays bounded);
// a CallGroup is one batch of independent calls that a caller issues at once and waits for.
//
//   kube::RequestPool pool(32);
//   kube::CallGroup group(&pool);   // pool == nullptr: calls run inline, in Add order
//   for (const auto& pod : pods)
//     group.Add([&api, pod] { return api.Create(kube::kPods, "ns", pod).status(); });
//   absl::Status first_error = group.Wait();
//
// Calls go through one KubeClient, whose cpprestsdk client keeps connections alive and opens
// another one only when every pooled connection is busy, so W calls in flight use W
// connections that are reused by later calls.
//
// Thread-safe. REQUIRES: a call run by the pool never waits on a CallGroup of the same pool
// (every thread could be waiting, and nothing would run the calls they wait for).
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace tandem::kube {

class RequestPool {
 public:
  // REQUIRES: threads >= 1.
  explicit RequestPool(int threads);
  ~RequestPool();  // ShutDown()

  // Queues `fn` to run on a pool thread; false (and `fn` not run) once shut down.
  bool Submit(std::function<void()> fn);
  // Stops accepting work, drops what is queued and not started (a CallGroup's dropped calls
  // finish with CANCELLED, so nobody waits forever), and joins the threads (calls in progress
  // finish).
  void ShutDown();
  int threads() const { return static_cast<int>(threads_.size()); }

 private:
  friend class CallGroup;
  // `task(true)` runs it; `task(false)` tells it that it was dropped at shutdown.
  bool SubmitTask(std::function<void(bool run)> task);
  void Run();

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<std::function<void(bool)>> queue_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// One batch of independent calls. Add() starts a call on the pool (or runs it at once when the
// pool is null or shut down); Wait() returns when all have finished, with the first error in
// Add order (OK when all succeeded; CANCELLED for calls the pool dropped at shutdown). The
// destructor waits too.
class CallGroup {
 public:
  explicit CallGroup(RequestPool* pool) : pool_(pool) {}
  ~CallGroup() { Wait().IgnoreError(); }
  CallGroup(const CallGroup&) = delete;
  CallGroup& operator=(const CallGroup&) = delete;

  void Add(std::function<absl::Status()> call);
  absl::Status Wait();

 private:
  RequestPool* const pool_;
  absl::Mutex mu_;
  absl::CondVar done_;
  std::vector<absl::Status> results_ ABSL_GUARDED_BY(mu_);  // in Add order
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::kube
