// The TrainingJob API (tandem.dev/v1alpha1): spec, status, defaults, validation, JSON.
//
//   api::FieldErrors errors;
//   api::TrainingJob job = api::ParseTrainingJob(object, validators, &errors);  // defaults applied
//   for (const auto& e : errors) std::cerr << e.ToString() << "\n";  // every problem, not the first
//   nlohmann::json back = api::ToJson(job);
//
// One code path for a manifest file (YAML -> JSON via common/yaml_json.h) and an object from
// the Kubernetes API server. The inside of spec.model/data/optimizer is kept as JSON and
// validated by the trainer's SectionValidators (api/section_validator.h), which every caller passes. Field documentation: docs/api.md
// and `kubectl explain trainingjob.spec` (crds/trainingjob.yaml).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/exit_codes.h"
#include "api/field_error.h"
#include "api/object_meta.h"
#include "api/section_validator.h"
#include "nlohmann/json.hpp"

namespace tandem::api {

inline constexpr char kTrainingJobKind[] = "TrainingJob";
inline constexpr char kDefaultImage[] = "tandem/tandem:0.1.0";
inline constexpr char kDefaultQueue[] = "default";
// Pod names are "<job>-worker-<rank>" and must stay within 63 characters.
inline constexpr size_t kMaxJobNameLength = 48;

// Condition types (status.conditions[].type).
inline constexpr char kConditionQueued[] = "Queued";
inline constexpr char kConditionAdmitted[] = "Admitted";
inline constexpr char kConditionRunning[] = "Running";
inline constexpr char kConditionRestarting[] = "Restarting";
inline constexpr char kConditionSucceeded[] = "Succeeded";
inline constexpr char kConditionFailed[] = "Failed";
inline constexpr char kConditionSuspended[] = "Suspended";
inline constexpr char kConditionPreempted[] = "Preempted";

// Phases (status.phase). Preemption is a condition; a preempted job goes back to Queued.
inline constexpr char kPhasePending[] = "Pending";  // seen, not yet queued
inline constexpr char kPhaseQueued[] = "Queued";
inline constexpr char kPhaseAdmitted[] = "Admitted";  // placed; workers starting
inline constexpr char kPhaseRunning[] = "Running";
inline constexpr char kPhaseRestarting[] = "Restarting";
inline constexpr char kPhaseSucceeded[] = "Succeeded";
inline constexpr char kPhaseFailed[] = "Failed";
inline constexpr char kPhaseSuspended[] = "Suspended";

struct WorkersSpec {
  int64_t count = 1;
  int64_t min_count = 0;  // 0 until defaulted: defaults to count (a fixed-size gang)
  int64_t max_count = 0;  // 0 until defaulted: defaults to count
  bool operator==(const WorkersSpec&) const = default;
};

// One process role of a worker (the trainer or the pserver); both run on the same node.
struct RoleSpec {
  ResourceRequirements resources;
  // 0: decided where the process runs: in a pod, the CPU request rounded up (EffectiveThreads);
  // under `tandem run`, the trainer's own default (all cores).
  int64_t threads = 0;
  bool operator==(const RoleSpec&) const = default;
};

// spec.elastic: the job may change its worker count while it runs, between
// spec.workers.minCount and maxCount (docs/elastic.md). Absent: a fixed-size gang.
inline constexpr char kElasticConstantGlobalBatch[] = "constantGlobalBatch";
inline constexpr char kElasticLinear[] = "linear";
struct ElasticSpec {
  // constantGlobalBatch (default): the global batch stays data.batchSize x workers.count, split
  // over however many workers run, and the learning rate is unchanged. linear: every worker keeps
  // data.batchSize, and the learning rate is scaled by workers / workers.count, ramped linearly
  // to the new scale over warmupSteps steps after each resize.
  std::string policy = kElasticConstantGlobalBatch;
  int64_t warmup_steps = 100;
  bool operator==(const ElasticSpec&) const = default;
};

struct SyncSpec {
  std::string dense = "ring";  // ring | pserver: how dense gradients are combined
  std::string mode = "sync";   // sync | async (async requires dense: pserver)
  int64_t staleness = 4;       // async only: max steps a trainer may run ahead
  int64_t bucket_mib = 4;      // ring all-reduce bucket size
  std::string compression = "none";  // none | bf16
  bool operator==(const SyncSpec&) const = default;
};

// Where checkpoints live (spec.checkpoint.storage). The default is a claim the operator creates
// and owns per job, so that a gang restarted on other nodes finds its checkpoints.
inline constexpr char kStoragePersistentVolumeClaim[] = "PersistentVolumeClaim";  // <job>-checkpoints, RWX
inline constexpr char kStorageExistingClaim[] = "ExistingClaim";  // spec.checkpoint.claimName, never deleted
inline constexpr char kStorageHostPath[] = "HostPath";            // node-local: single-node/dev clusters only
inline constexpr char kDefaultCheckpointSize[] = "10Gi";

struct CheckpointSpec {
  int64_t interval_steps = 500;
  int64_t keep = 3;
  std::string storage = kStoragePersistentVolumeClaim;
  std::string size;                // PersistentVolumeClaim: the claim's request (default 10Gi)
  std::string storage_class_name;  // PersistentVolumeClaim: empty = the cluster's default class
  std::string claim_name;          // ExistingClaim: required
  std::string host_path;           // HostPath: node directory; empty = the operator's --checkpoint-root
  bool operator==(const CheckpointSpec&) const = default;
};

// spec.publish: rank 0 publishes the model (dense weights and the pservers' embedding rows) as
// versioned snapshots while it trains, for tandem-serve (docs/serving.md). Absent: no publishing.
inline constexpr char kDefaultPublishDirectory[] = "published";
struct PublishSpec {
  int64_t every_steps = 0;    // 0: not by steps
  int64_t every_minutes = 0;  // 0: not by time; at least one of the two is > 0
  int64_t keep = 3;           // newest versions kept
  // Relative to the job's checkpoint directory (its volume, which the serving pods mount).
  std::string directory = kDefaultPublishDirectory;
  bool operator==(const PublishSpec&) const = default;
};

// Where the published versions live: spec.publish.directory under the job's checkpoint
// directory, which is the parent of every process's TANDEM_CHECKPOINT_DIR (".../trainer-0",
// ".../pserver-1": siblings, in pods and under `tandem run`), so rank 0 and every pserver shard
// resolve the same folder. "" when `process_checkpoint_dir` is empty.
std::string PublishDirectory(const std::string& process_checkpoint_dir, const PublishSpec& publish);

// spec.serving: the operator runs a Deployment and a Service of tandem-serve following the
// published models (requires spec.publish). Absent: no serving.
struct ServingSpec {
  int64_t replicas = 1;
  std::string image;  // empty until defaulted: spec.image
  RoleSpec server;    // resources (default requests {cpu: 1, memory: 1Gi}) and threads (workers)
  int64_t max_batch_size = 32;
  int64_t max_queue_delay_micros = 1000;
  bool operator==(const ServingSpec&) const = default;
};

struct RestartPolicySpec {
  int64_t backoff_limit = 3;    // restarts of the job before it fails
  int64_t backoff_seconds = 10; // first delay, doubled per restart (capped at 10 minutes)
  std::vector<int64_t> retryable_exit_codes{std::begin(kDefaultRetryableExitCodes),
                                            std::end(kDefaultRetryableExitCodes)};
  bool operator==(const RestartPolicySpec&) const = default;
};

struct TrainingJobSpec {
  std::string queue = kDefaultQueue;
  int64_t priority = 0;
  bool suspend = false;
  std::optional<int64_t> ttl_seconds_after_finished;  // unset: kept until deleted
  std::string image = kDefaultImage;
  WorkersSpec workers;
  RoleSpec trainer;  // defaults: requests {cpu: 1, memory: 2Gi}
  RoleSpec pserver;  // defaults: requests {cpu: 500m, memory: 1Gi}
  std::map<std::string, std::string> node_selector;
  int64_t passes = 1;
  nlohmann::json model = nlohmann::json::object();  // trainer-owned subtrees
  nlohmann::json data = nlohmann::json::object();
  nlohmann::json optimizer = nlohmann::json::object();
  SyncSpec sync;
  std::optional<ElasticSpec> elastic;  // unset: the job never changes size
  CheckpointSpec checkpoint;
  RestartPolicySpec restart_policy;
  std::optional<PublishSpec> publish;
  std::optional<ServingSpec> serving;
  bool operator==(const TrainingJobSpec&) const = default;
};

struct WorkerCounts {
  int64_t desired = 0, ready = 0, running = 0, succeeded = 0, failed = 0;
  bool operator==(const WorkerCounts&) const = default;
};

// Reported by the trainers (rank 0), copied into the status by the operator.
struct Progress {
  int64_t step = 0;
  int64_t pass = 0;
  double loss = 0;
  double accuracy = 0;  // 0..1, last evaluation
  double examples_per_sec = 0;
  double percent = 0;   // 0..100 of all passes
  std::string summary;  // the kubectl "Progress" column, e.g. "pass 2/3 41%"
  std::string update_time;
  // The last evaluation on the test set (after each pass): the objective of a Sweep's trials.
  int64_t test_pass = 0;  // passes done then; 0: no evaluation yet (the test_* are unset)
  double test_loss = 0;
  double test_accuracy = 0;
  std::optional<double> test_auc;  // binary and ranking costs only
  bool operator==(const Progress&) const = default;
};

// One resize of an elastic job (status.elastic.resizes), newest last.
struct ResizeRecord {
  int64_t from = 0;
  int64_t to = 0;
  // Grow (idle capacity), ReclaimBorrowed (another queue reclaimed its share), LowerPriority (a
  // higher-priority job of the queue), WorkerFailed (a worker failed for good).
  std::string reason;
  std::string message;
  std::string time;       // RFC 3339: when the operator decided it
  int64_t epoch = 0;      // the membership epoch that carries it
  // Training steps lost by it, where the operator knows: 0 for a planned resize (the trainers
  // switch at a step boundary); unset after a failure (the trainers' `resized` event says 0 or 1).
  std::optional<int64_t> lost_steps;
  bool operator==(const ResizeRecord&) const = default;
};
inline constexpr size_t kMaxResizeHistory = 10;

// status.elastic: the membership the operator publishes in the ConfigMap "<job>-membership"
// (api/membership.h) and its history. Set while an elastic job is admitted.
struct ElasticStatus {
  int64_t workers = 0;  // trainers in the published membership
  int64_t epoch = 0;    // its epoch
  std::string reason;   // why that epoch began
  // Worker slots (pod "<job>-worker-<slot>") in rank order: the published members, then any
  // new ones of a grow in progress (they start first and are published once they all run).
  std::vector<int64_t> members;
  std::vector<ResizeRecord> resizes;  // the last kMaxResizeHistory, oldest first
  bool operator==(const ElasticStatus&) const = default;
};

struct TrainingJobStatus {
  std::string phase;  // "" until the operator first sees the job
  std::vector<Condition> conditions;
  WorkerCounts workers;
  int64_t restarts = 0;
  std::string start_time;
  std::string completion_time;
  std::optional<Progress> progress;
  // While Queued: why, in words that stay the same while the job waits for the same thing (the
  // short resource, the binding queue limit, the preemption); its position and the free capacity
  // are in its Queue's status.waiting, not here.
  std::string pending_reason;
  std::vector<std::string> placement;  // node of each worker, rank order, once admitted
  int64_t observed_generation = 0;
  std::optional<ElasticStatus> elastic;  // elastic jobs (spec.elastic) once admitted
  bool operator==(const TrainingJobStatus&) const = default;
};

struct TrainingJob {
  std::string api_version = kApiVersion;
  std::string kind = kTrainingJobKind;
  ObjectMeta metadata;
  TrainingJobSpec spec;
  TrainingJobStatus status;
  bool operator==(const TrainingJob&) const = default;
};

// Parses `object`, applies defaults, validates every field (schema, then cross-field rules,
// then `validators` on spec.model/data/optimizer) and appends every problem to `errors`. Always
// returns a job (best effort when there are errors). Never throws.
TrainingJob ParseTrainingJob(const nlohmann::json& object, const SectionValidators& validators,
                             FieldErrors* errors);

// ParseTrainingJob, failing with InvalidArgument listing every problem (one per line).
absl::StatusOr<TrainingJob> TrainingJobFromJson(const nlohmann::json& object,
                                                const SectionValidators& validators);

// Fills unset fields with their defaults (idempotent).
void ApplyDefaults(TrainingJob* job);

// Cross-field and semantic rules on a typed (defaulted) job; the schema rules (types, ranges,
// enums, unknown fields) are checked on JSON by ParseTrainingJob.
FieldErrors ValidateTrainingJob(const TrainingJob& job);

// The whole object; status is omitted while empty. Round-trips through ParseTrainingJob.
nlohmann::json ToJson(const TrainingJob& job);
nlohmann::json SpecToJson(const TrainingJobSpec& spec);
nlohmann::json StatusToJson(const TrainingJobStatus& status);

// Threads for a process in a pod: spec threads, or the CPU request rounded up (at least 1).
int64_t EffectiveThreads(const RoleSpec& role);

// True when spec.model has an embedding layer: its table lives on the pservers (a job that runs
// pservers), which an elastic job under `tandem run` then starts beside its trainers.
bool HasEmbeddingLayers(const TrainingJobSpec& spec);

// THE rule for whether a job runs pservers at all: only when something lives on them, i.e. the
// model has embedding tables (their rows are sharded over the pservers) or the dense parameters
// are kept there (spec.sync.dense: pserver). A job with neither (dense sync over the ring, the
// README's main job, every sweep trial) runs trainers only: `tandem run` starts no pserver
// process, the operator's worker pods have no pserver container, the trainers get no
// TANDEM_PSERVERS and the scheduler counts no spec.pserver.resources. The same rule holds for
// elastic jobs (which validation keeps off sync.dense: pserver, so for them it is "has
// embedding tables").
bool UsesPServers(const TrainingJobSpec& spec);

// What one worker requests of its node: its trainer, plus its pserver when the job runs them
// (UsesPServers). The scheduler's demand and queue usage, and the worker pod's containers'
// requests, are both this.
ResourceList WorkerRequests(const TrainingJobSpec& spec);

// "pass 2/3 41%" from status.progress and spec.passes.
std::string ProgressSummary(const TrainingJob& job);

}  // namespace tandem::api
