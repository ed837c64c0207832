// The TrainingJob reconciler: level-based and idempotent. Reconcile(key) reads the job, its pods
// and children from the cache (never trusting which event fired), makes the API calls that move
// the world toward the spec, and writes the job's status at most once per pass.
//
// Lifecycle (status.phase): "" -> Queued -> Admitted -> Running -> Succeeded | Failed, with
// Restarting (a worker failed with a retryable exit code: the whole gang restarts from the
// checkpoint after backoffSeconds * 2^(restarts-1), at most backoffLimit times) and Suspended
// (spec.suspend: workers deleted, capacity released; resume requeues). Admission and preemption
// are decided by Schedule() (scheduling_pass.cc), one fair-share pass over a snapshot of the cache
// (operator/scheduler): it writes Admitted + status.placement on admitted jobs, deletes the
// workers of preemption victims with a grace period (SIGTERM -> checkpoint) and puts them back
// in the queue, and writes each pending job's reason and queue position. Every transition
// records a Kubernetes Event. Finished jobs are deleted ttlSecondsAfterFinished after completion.
//
// Thread-safe: Reconcile for different keys and Schedule may run concurrently (conflicting
// writes fail with 409 and are retried by the caller).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "api/training_job.h"
#include "operator/controller/cluster_cache.h"
#include "operator/controller/parsed_job_cache.h"
#include "operator/controller/progress_prober.h"
#include "operator/controller/worker_builder.h"
#include "trainer/model/trainer_spec.h"
#include "operator/controller/job_tls.h"
#include "operator/kube/event_recorder.h"
#include "operator/kube/kube_api.h"
#include "operator/kube/request_pool.h"
#include "operator/scheduler/scheduler.h"

namespace tandem::controller {

struct ReconcileResult {
  absl::Status error;           // not OK: requeue with rate-limited backoff
  double requeue_after_s = 0;   // > 0: look again after this long
  bool schedule = false;        // run a scheduling pass (capacity or demand changed)
};

struct ReconcilerOptions {
  BuildOptions build{};
  // The checks of spec.model/data/optimizer, the same every binary runs: a job they refuse is
  // Failed (InvalidSpec), never started. Unset: trainer::TrainerSectionValidators().
  std::optional<api::SectionValidators> validators;
  // While jobs are pending, scheduling passes repeat at least this often.
  double schedule_interval_s = 10;
  // The clock (seconds since the epoch) and the job-token generator; injectable for tests.
  std::function<double()> now{};
  std::function<std::string()> new_token{};
  // Where status.progress comes from: the rank-0 trainer's metrics, scraped off the reconcile
  // path (ProgressProber). Null: progress is not reported.
  ProgressSource* progress = nullptr;
  // An admitted job whose checkpoint claim is still Pending this long gets Running=False,
  // reason CheckpointClaimPending, and a Warning Event.
  double claim_pending_warning_s = 120;
  // Independent API calls of one reconcile (a job's children, its workers, the scheduling
  // pass's status writes) go through this pool at once. Null: one after another, in order
  // (what the reconcile tests compare).
  kube::RequestPool* requests = nullptr;
  // Lifetimes and propagation delay of the jobs' TLS certificates (operator/controller/job_tls.h).
  tls::RotationPolicy tls_rotation{};
  // An elastic job is not grown again until this long after its last resize (shrinks for
  // another queue's reclaim are not held back).
  double elastic_cooldown_s = 60;
  // Each Queue's status.waiting lists its first `queue_status_top` waiting jobs, with their
  // position and the figures behind their reason (free capacity, the queue's usage). Those
  // change with every pass, so a list that changed is rewritten at most every
  // `queue_status_interval_s`; a change of the queue's counts or usage is written at once (and
  // takes the current list along). The jobs' own status holds only a reason that stays the same
  // while they wait for the same thing.
  int queue_status_top = 10;
  double queue_status_interval_s = 5;
  // Parsed jobs kept (by uid and resourceVersion) so that a pass does not parse every job again.
  size_t parsed_job_cache_size = 50000;
};

class TrainingJobReconciler {
 public:
  TrainingJobReconciler(kube::KubeApi* api, const ClusterCache* cache, kube::EventRecorder* events,
                        ReconcilerOptions options = {});

  // Reads the job and hands it to the handler of its phase (below); each handler moves the job
  // one step and writes its status at most once.
  ReconcileResult Reconcile(const std::string& key);
  // One scheduling pass over every queue (scheduling_pass.cc).
  ReconcileResult Schedule();
  // Every waiting job as the last pass saw it, by queue in queue order: position, reason, the
  // job's message and the figures behind it, as JSON (the operator serves it at /pending).
  nlohmann::json PendingView() const;
  const ParsedJobCache& parsed_jobs() const { return parsed_jobs_; }

  // The port of the rank-0 trainer's metrics endpoint: TANDEM_METRICS_PORT of the pod's trainer
  // container (what the trainer really listens on), else `fallback`.
  static int TrainerMetricsPort(const nlohmann::json& pod, int fallback);

  // Key of a job's owner for a child object (pods, services...): "ns/<job>" or "" when not ours.
  static std::string OwnerKey(const nlohmann::json& child);

 private:
  struct Pods {
    std::vector<kube::Object> all;        // owned by this job (this uid)
    std::map<int, kube::Object> by_rank;  // live (not being deleted) pods, by rank
    std::vector<kube::Object> live;       // not terminal, not being deleted
  };
  struct Pass;  // one Reconcile of one job (trainingjob_reconciler.cc)
  struct WorkerFailure {
    std::string reason;  // WorkerFailed or WorkerLost
    std::string message;
    bool retryable = true;
    int slot = -1;              // the worker's slot (tandem.dev/rank)
    bool peer_failure = false;  // its trainer exited 75: it saw a peer fail, it did not fail itself
  };

  // The phase handlers of Reconcile.
  ReconcileResult OnInvalidSpec(Pass& p, const api::FieldErrors& errors);  // -> Failed
  ReconcileResult OnFinished(Pass& p);   // Succeeded/Failed: stop live pods, TTL deletion
  ReconcileResult OnSuspend(Pass& p);    // spec.suspend: release the workers
  ReconcileResult OnResume(Pass& p);     // Suspended, spec.suspend false: back to the queue
  ReconcileResult OnNew(Pass& p);        // "" or Pending: queue it
  ReconcileResult OnNotPlaced(Pass& p);  // Queued or preempted: no worker may run
  ReconcileResult OnPlaced(Pass& p);     // Admitted, Running, Restarting
  // The steps of OnPlaced.
  std::optional<WorkerFailure> FindWorkerFailure(const Pass& p) const;
  ReconcileResult OnWorkerFailure(Pass& p, const WorkerFailure& failure);
  bool RestartGang(Pass& p);
  absl::StatusOr<bool> CreateMissingWorkers(Pass& p);
  void RotateCertificates(Pass& p);
  // Elastic jobs (spec.elastic, elastic_state.h): the membership ConfigMap follows status.elastic;
  // a worker that fails for good above minCount is dropped from the membership; workers that
  // left are deleted once their trainer has exited; a grow is published once its new workers run.
  absl::Status SyncMembership(Pass& p);
  bool ShrinkAfterFailure(Pass& p, const WorkerFailure& failure);
  void CancelGrow(Pass& p, const std::string& why);
  void ReleaseLeavingWorkers(Pass& p);
  void PublishGrow(Pass& p);
  void RecordResized(const nlohmann::json& obj, const std::string& type, const api::ResizeRecord& r);
  void UpdateWorkers(Pass& p);
  void WarnIfClaimPending(Pass& p);
  // Finish: the job ends in `phase` (Succeeded or Failed). Write: the status, if it changed.
  void Finish(Pass& p, const std::string& phase, const std::string& reason,
              const std::string& message);
  ReconcileResult Write(Pass& p);
  void DeleteWorkers(Pass& p, const std::vector<kube::Object>& pods);

  double Now() const;
  std::string NowText() const;
  Pods PodsOf(const api::TrainingJob& job, const std::string& uid) const;
  absl::Status EnsureChildren(const nlohmann::json& obj, const api::TrainingJob& job);
  absl::Status DeletePods(const std::vector<kube::Object>& pods, int grace_s);
  absl::Status WriteStatus(const nlohmann::json& obj, const api::TrainingJobStatus& status);
  void UpdateProgress(const std::string& key, const api::TrainingJob& job, const kube::Object& rank0,
                      api::TrainingJobStatus* st);
  void ForgetProgress(const std::string& key);
  void ApplyWorkerResult(const api::TrainingJob& job, const nlohmann::json& rank0, api::TrainingJobStatus* st);
  void Event(const nlohmann::json& obj, const std::string& type, const std::string& reason,
             const std::string& message);
  // `invalid_queues`: Queues that exist but do not parse (name -> why), left out of the snapshot.
  scheduler::Snapshot BuildSnapshot(std::map<std::string, kube::Object>* job_objects,
                                    std::map<std::string, std::shared_ptr<const ParsedJob>>* jobs,
                                    std::map<std::string, std::string>* invalid_queues);

  kube::KubeApi* api_;
  const ClusterCache* cache_;
  kube::EventRecorder* events_;
  const ReconcilerOptions options_;
  const api::SectionValidators validators_;  // options_.validators, or the trainer's
  JobTls tls_;                               // the jobs' certificates
  ParsedJobCache parsed_jobs_;               // parses of the cached jobs, by uid + resourceVersion

  // Admissions and preemptions written but maybe not yet visible in the cache: the next pass
  // must not hand the same capacity out again (Kueue's "assumed" workloads).
  struct Assumed {
    std::vector<std::string> placement;  // empty: preempted (terminating)
    std::string written_rv;
    // An elastic resize, written against the cached version `base_rv`: visible once the cache
    // shows any other version (the write was conditional on that one, so any newer version is
    // it or later).
    bool resize = false;
    std::string base_rv;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Assumed> assumed_ ABSL_GUARDED_BY(mu_);
  // The pending reason each waiting job was last given, and the resourceVersion its cached
  // object had then. While the cache still shows that version (the write has not come back
  // through the watch yet, or it conflicted with a change not seen yet) nothing is written to
  // that job: the server holds a newer version, so the write would be a certain 409 (a pass a
  // second later used to rewrite every waiting job against the old resourceVersion: 6,035
  // conflicts in a 1,000-job run). A changed reason is written once the cache has caught up.
  struct PendingWritten {
    std::string cached_rv, reason, message;
  };
  std::map<std::string, PendingWritten> pending_written_ ABSL_GUARDED_BY(mu_);
  // Per Queue: when its status.waiting was last written, and the resourceVersion of the cached
  // Queue it was written against (while the cache still shows that version, the write has not
  // come back yet, and another would conflict).
  struct QueueWritten {
    double waiting_time = 0;
    std::string cached_rv;
  };
  std::map<std::string, QueueWritten> queue_written_ ABSL_GUARDED_BY(mu_);
  // The last pass's waiting jobs (PendingView).
  nlohmann::json pending_view_ ABSL_GUARDED_BY(mu_) = nlohmann::json::object();
};

}  // namespace tandem::controller
