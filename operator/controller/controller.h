// The controller loop, sample-controller style: informers feed keys into a rate-limited work
// queue; worker threads pop a key and run TrainingJobReconciler::Reconcile(key) (or a scheduling
// pass for the special key kScheduleKey). Success forgets the key's backoff; an error requeues it
// rate-limited; a requested delay requeues it after that delay.
//
//   controller::Controller c(&client, {});
//   TANDEM_RETURN_IF_ERROR(c.Start());   // lists and watches, waits for the caches, starts workers
//   ...
//   c.Stop();
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "operator/controller/cluster_cache.h"
#include "operator/controller/trainingjob_reconciler.h"
#include "operator/kube/event_recorder.h"
#include "operator/kube/informer.h"
#include "operator/kube/request_pool.h"
#include "operator/kube/work_queue.h"

namespace tandem::controller {

inline constexpr char kScheduleKey[] = "!schedule";

struct ControllerOptions {
  int workers = 2;
  // API requests in flight at once, across all workers (kube::RequestPool): a job's children and
  // workers are created together, the scheduling pass's status writes go out together, and
  // Events are sent without making the reconcile wait. 0: every call in line on its worker.
  int api_concurrency = 32;
  // Scheduling passes start at most this often. The pass goes ahead of every job key, and every
  // job that is queued or finishes asks for one, so without a floor passes would run back to
  // back, each re-reading every job and rewriting the reasons of every waiting one.
  double schedule_min_interval_s = 1;
  ReconcilerOptions reconciler{};
  kube::InformerOptions informer{};  // ns/selectors are set per informer; timeouts and backoff apply to all
  double cache_sync_timeout_s = 60;
  std::string component = "tandem-operator";
  std::string host{};
  // Scraping of rank-0 trainers for status.progress; interval_s <= 0 turns it off.
  // (on_update is set by the controller: a changed job is queued.)
  ProgressProberOptions progress{};
};

// After one Reconcile(key) that took `seconds`: records tandem_operator_reconcile_duration_seconds
// and forgets the key's backoff (success), requeues it rate-limited (error) or after the asked
// delay. Shared by every controller loop.
void FinishReconcile(kube::WorkQueue& queue, const std::string& key, const ReconcileResult& r, double seconds);

class Controller {
 public:
  Controller(kube::KubeApi* api, ControllerOptions options);
  ~Controller();  // Stop()s

  absl::Status Start();
  void Stop();
  kube::WorkQueue& queue() { return queue_; }

  // Whether a TrainingJob update calls for its Reconcile. Not when the job was Queued and still
  // is, with the same generation and no deletion: that is the scheduling pass rewriting its
  // pendingReason (a new reason), which its Reconcile has nothing to do about (and with
  // thousands of pending jobs, one no-op reconcile each would hold up the work that matters).
  static bool JobUpdateNeedsReconcile(const nlohmann::json& old_job, const nlohmann::json& new_job);
  const ClusterCache& cache() const { return cache_; }
  // Every waiting job as the last scheduling pass saw it (TrainingJobReconciler::PendingView).
  nlohmann::json PendingView() const { return reconciler_->PendingView(); }

 private:
  void Worker();
  void Process(const std::string& key);

  kube::KubeApi* api_;
  const ControllerOptions options_;
  std::unique_ptr<kube::RequestPool> requests_;  // null when api_concurrency == 0
  kube::EventRecorder events_;
  std::vector<std::unique_ptr<kube::Informer>> informers_;
  InformerCache cache_;
  kube::WorkQueue queue_;
  std::unique_ptr<ProgressProber> prober_;
  std::unique_ptr<TrainingJobReconciler> reconciler_;
  std::vector<std::thread> workers_;
  bool started_ = false;
  // When the last scheduling pass started; only the worker running a pass touches it (the key
  // is never handed to two workers at once).
  std::chrono::steady_clock::time_point last_pass_{};
};

}  // namespace tandem::controller
