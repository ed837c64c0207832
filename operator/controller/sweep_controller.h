// The Sweep controller: its own informers (Sweeps, and TrainingJobs labelled tandem.dev/sweep),
// key queue and workers running SweepReconciler::Reconcile(key). It runs beside the TrainingJob
// Controller (which admits and runs the trials like any job) and needs nothing from it.
//
//   controller::SweepController sweeps(&client, {});
//   TANDEM_RETURN_IF_ERROR(sweeps.Start());   // lists and watches, waits for the caches
//   ...
//   sweeps.Stop();
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "operator/controller/cluster_cache.h"
#include "operator/controller/sweep_reconciler.h"
#include "operator/kube/event_recorder.h"
#include "operator/kube/informer.h"
#include "operator/kube/work_queue.h"

namespace tandem::controller {

struct SweepControllerOptions {
  int workers = 1;
  SweepReconcilerOptions reconciler{};
  kube::InformerOptions informer{};  // timeouts and backoff; selectors are set per informer
  double cache_sync_timeout_s = 60;
  std::string component = "tandem-operator";
  std::string host{};
};

class SweepController {
 public:
  SweepController(kube::KubeApi* api, SweepControllerOptions options);
  ~SweepController();  // Stop()s

  absl::Status Start();
  void Stop();
  kube::WorkQueue& queue() { return queue_; }

 private:
  void Worker();

  kube::KubeApi* api_;
  const SweepControllerOptions options_;
  kube::EventRecorder events_;
  std::vector<std::unique_ptr<kube::Informer>> informers_;
  InformerCache cache_;
  kube::WorkQueue queue_;
  std::unique_ptr<SweepReconciler> reconciler_;
  std::vector<std::thread> workers_;
  bool started_ = false;
};

}  // namespace tandem::controller
