#include "operator/controller/trainingjob_reconciler.h"

#include "api/worker_result.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "api/worker_result.h"
#include "common/logging.h"
#include "common/status.h"
#include "operator/controller/elastic_state.h"
#include "operator/controller/object_state.h"
#include "operator/controller/operator_metrics.h"
#include "operator/controller/serving_builder.h"
#include "operator/kube/api_error.h"

namespace tandem::controller {

using nlohmann::json;

namespace {

bool PodReady(const json& pod) {
  const json* conds = kube::FieldAt(pod, "status.conditions");
  if (conds != nullptr && conds->is_array()) {
    for (const auto& c : *conds) {
      if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
    }
  }
  return false;
}

// A worker's phase: the pod's, except that a Running pod whose trainer has exited is done with
// the trainer's outcome (exit 0: Succeeded, else Failed). On a real kubelet the pod stays Running
// then, because its pserver serves until SIGTERM; the job's end stops it (finished jobs delete
// their live pods with the grace period, so the pserver writes its last checkpoint). A pod with
// the trainer alone (a job without pservers, api::UsesPServers) simply ends with the trainer.
std::string WorkerPhase(const json& pod) {
  std::string phase = PodPhase(pod);
  if (phase != "Running") return phase;
  const json* st = kube::FieldAt(pod, "status.containerStatuses");
  if (st == nullptr || !st->is_array()) return phase;
  for (const auto& c : *st) {
    if (c.value("name", "") != kTrainerContainer) continue;
    const json* code = kube::FieldAt(c, "state.terminated.exitCode");
    if (code != nullptr && code->is_number_integer()) return code->get<int64_t>() == 0 ? "Succeeded" : "Failed";
  }
  return phase;
}

// Non-zero exit codes of terminated containers: "container:code".
std::vector<std::pair<std::string, int64_t>> ExitCodes(const json& pod) {
  std::vector<std::pair<std::string, int64_t>> out;
  const json* st = kube::FieldAt(pod, "status.containerStatuses");
  if (st == nullptr || !st->is_array()) return out;
  for (const auto& c : *st) {
    const json* code = kube::FieldAt(c, "state.terminated.exitCode");
    if (code != nullptr && code->is_number_integer() && code->get<int64_t>() != 0) {
      out.emplace_back(c.value("name", "?"), code->get<int64_t>());
    }
  }
  return out;
}

// The message the kubelet reported for a terminated container ("" when none): the trainer's
// result on success, the log's tail on a failure (FallbackToLogsOnError, worker_builder.cc).
std::string TerminationMessage(const json& pod, const char* container) {
  const json* st = kube::FieldAt(pod, "status.containerStatuses");
  if (st == nullptr || !st->is_array()) return "";
  for (const auto& c : *st) {
    if (c.value("name", "") != container) continue;
    const json* m = kube::FieldAt(c, "state.terminated.message");
    if (m != nullptr && m->is_string()) return m->get<std::string>();
  }
  return "";
}

// The last non-empty line of a log tail, shortened for a condition message.
std::string LastLine(const std::string& text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.empty()) return "";
  std::string line(absl::StripAsciiWhitespace(lines.back()));
  constexpr size_t kMax = 300;
  if (line.size() > kMax) line = absl::StrCat(line.substr(0, kMax), "...");
  return line;
}

int RankOf(const json& pod) {
  // Label keys contain dots, so no dotted-path lookup here.
  const json* labels = kube::FieldAt(pod, "metadata.labels");
  int rank = -1;
  if (labels == nullptr || !labels->is_object()) return rank;
  auto it = labels->find(kRankLabel);
  if (it != labels->end() && it->is_string()) absl::SimpleAtoi(it->get<std::string>(), &rank);
  return rank;
}

std::string RandomToken() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 32; ++i) out += absl::StrFormat("%02x", rd() & 0xff);
  return out;
}

double RestartBackoff(const api::RestartPolicySpec& p, int64_t restarts) {
  double b = static_cast<double>(p.backoff_seconds) * std::pow(2.0, std::max<int64_t>(0, restarts - 1));
  return std::min(b, 600.0);
}

}  // namespace

TrainingJobReconciler::TrainingJobReconciler(kube::KubeApi* api, const ClusterCache* cache,
                                             kube::EventRecorder* events, ReconcilerOptions options)
    : api_(api),
      cache_(cache),
      events_(events),
      options_(std::move(options)),
      validators_(options_.validators ? *options_.validators : trainer::TrainerSectionValidators()),
      tls_(api, cache, options_.tls_rotation),
      parsed_jobs_(options_.parsed_job_cache_size) {}

double TrainingJobReconciler::Now() const {
  if (options_.now) return options_.now();
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string TrainingJobReconciler::NowText() const { return kube::FormatRfc3339(Now()); }

std::string TrainingJobReconciler::OwnerKey(const json& child) {
  const json* refs = kube::FieldAt(child, "metadata.ownerReferences");
  if (refs == nullptr || !refs->is_array()) return "";
  for (const auto& r : *refs) {
    if (r.value("kind", "") == api::kTrainingJobKind && r.value("controller", false)) {
      return kube::NamespaceOf(child) + "/" + r.value("name", "");
    }
  }
  return "";
}

TrainingJobReconciler::Pods TrainingJobReconciler::PodsOf(const api::TrainingJob& job,
                                                          const std::string& uid) const {
  Pods pods;
  for (const auto& p : cache_->List(kube::kPods)) {
    if (kube::NamespaceOf(*p) != job.metadata.namespace_) continue;
    if (kube::ControllerUidOf(*p) != uid) continue;
    pods.all.push_back(p);
    if (Deleting(*p)) continue;
    int rank = RankOf(*p);
    if (rank >= 0) pods.by_rank[rank] = p;
    std::string phase = PodPhase(*p);
    if (phase != "Succeeded" && phase != "Failed") pods.live.push_back(p);
  }
  return pods;
}

// The restart a worker pod was created for (its kRestartAnnotation; -1 when absent or bad).
static int64_t RestartOf(const json& pod) {
  const json* a = kube::FieldAt(pod, "metadata.annotations");
  if (a == nullptr || !a->is_object()) return -1;
  auto it = a->find(kRestartAnnotation);
  int64_t restart = -1;
  if (it == a->end() || !it->is_string() || !absl::SimpleAtoi(it->get<std::string>(), &restart)) return -1;
  return restart;
}

int TrainingJobReconciler::TrainerMetricsPort(const json& pod, int fallback) {
  const json* containers = kube::FieldAt(pod, "spec.containers");
  if (containers == nullptr || !containers->is_array()) return fallback;
  for (const auto& c : *containers) {
    if (c.value("name", "") != "trainer") continue;
    const json* env = kube::FieldAt(c, "env");
    if (env == nullptr || !env->is_array()) break;
    for (const auto& e : *env) {
      if (e.value("name", "") != "TANDEM_METRICS_PORT" || !e.contains("value") || !e["value"].is_string()) continue;
      int port = 0;
      if (absl::SimpleAtoi(e["value"].get<std::string>(), &port) && port > 0 && port <= 65535) return port;
    }
  }
  return fallback;
}

void TrainingJobReconciler::ForgetProgress(const std::string& key) {
  if (options_.progress != nullptr) options_.progress->Forget(key);
}

void TrainingJobReconciler::UpdateProgress(const std::string& key, const api::TrainingJob& job,
                                           const kube::Object& rank0, api::TrainingJobStatus* st) {
  if (options_.progress == nullptr) return;
  const json* ip = kube::FieldAt(*rank0, "status.podIP");
  if (PodPhase(*rank0) != "Running" || ip == nullptr || !ip->is_string() || ip->get<std::string>().empty()) {
    return;  // nothing to scrape yet (or any more): the last known progress stays
  }
  std::optional<ProgressSample> sample = options_.progress->Observe(
      key, {job.metadata.name, ip->get<std::string>(), TrainerMetricsPort(*rank0, options_.build.ports.trainer_metrics)});
  if (!sample) return;
  const TrainerMetrics& m = sample->metrics;
  api::Progress p;
  p.step = m.steps;
  const int64_t passes = job.spec.passes;
  // The trainer's pass gauge is the 0-based pass in progress: show it 1-based, and count the
  // passes before it as done.
  p.pass = passes > 0 ? std::min(m.pass + 1, passes) : m.pass + 1;
  p.percent = passes > 0 ? std::min(100.0, std::round(1000.0 * static_cast<double>(m.pass) / static_cast<double>(passes)) / 10.0)
                         : 0;
  p.loss = m.loss;
  // status.progress.accuracy is the test accuracy of the last evaluation (after each pass); until
  // there is one, the training accuracy stands in.
  p.accuracy = m.test_accuracy > 0 ? m.test_accuracy : m.accuracy;
  // The whole job's throughput, estimated from rank 0: in sync data parallelism every rank
  // processes a batch per step, so the job runs world-size times rank 0's rate.
  p.examples_per_sec = m.examples_per_sec * static_cast<double>(std::max<size_t>(1, job.status.placement.size()));
  p.update_time = kube::FormatRfc3339(sample->changed_at);
  p.test_pass = passes > 0 ? std::min(m.test_pass, passes) : m.test_pass;
  if (p.test_pass > 0) {
    p.test_loss = m.test_loss;
    p.test_accuracy = std::clamp(m.test_accuracy, 0.0, 1.0);
    if (m.test_auc) p.test_auc = std::clamp(*m.test_auc, 0.0, 1.0);
  }
  api::TrainingJob view = job;
  view.status.progress = p;
  p.summary = api::ProgressSummary(view);
  st->progress = p;
}

// The final figures, from the result rank 0's trainer left in its termination message: they
// replace what the last scrape saw, which may predate the last evaluation (the prober looks at
// most every --progress-interval). A message that is not a result changes nothing.
void TrainingJobReconciler::ApplyWorkerResult(const api::TrainingJob& job, const json& rank0,
                                              api::TrainingJobStatus* st) {
  std::string message = TerminationMessage(rank0, kTrainerContainer);
  if (message.empty()) return;
  absl::StatusOr<api::WorkerResult> r = api::ParseWorkerResult(message);
  if (!r.ok()) {
    TANDEM_LOG(warn, "trainingjob {}/{}: rank 0's termination message: {}", job.metadata.namespace_, job.metadata.name,
             std::string(r.status().message()));
    return;
  }
  api::Progress p = st->progress.value_or(api::Progress{});
  p.step = std::max(p.step, r->steps);
  if (r->examples_per_sec)
    p.examples_per_sec = *r->examples_per_sec * static_cast<double>(std::max<size_t>(1, st->placement.size()));
  if (r->passes > 0 && (r->test_accuracy || r->test_loss || r->test_auc)) {
    p.test_pass = job.spec.passes > 0 ? std::min(r->passes, job.spec.passes) : r->passes;
    if (r->test_loss) p.test_loss = *r->test_loss;
    if (r->test_accuracy) p.test_accuracy = p.accuracy = *r->test_accuracy;
    if (r->test_auc) p.test_auc = *r->test_auc;
  }
  st->progress = p;
}

void TrainingJobReconciler::Event(const json& obj, const std::string& type, const std::string& reason,
                                  const std::string& message) {
  if (events_ != nullptr) events_->Record(obj, type, reason, message);
}

absl::Status TrainingJobReconciler::WriteStatus(const json& obj, const api::TrainingJobStatus& status) {
  auto r = api_->UpdateStatus(kube::kTrainingJobs, kube::StatusUpdateBody(obj, api::StatusToJson(status)));
  return r.status();
}

absl::Status TrainingJobReconciler::DeletePods(const std::vector<kube::Object>& pods, int grace_s) {
  kube::CallGroup deletes(options_.requests);
  for (const auto& p : pods) {
    if (Deleting(*p)) continue;
    deletes.Add([this, p, grace_s] {
      kube::DeleteOptions o;
      o.grace_period_seconds = grace_s;
      o.precondition_uid = kube::UidOf(*p);
      absl::Status s = api_->Delete(kube::kPods, kube::NamespaceOf(*p), kube::NameOf(*p), o);
      return kube::IsNotFound(s) ? absl::OkStatus() : s;
    });
  }
  return deletes.Wait();
}

absl::Status TrainingJobReconciler::EnsureChildren(const json& obj, const api::TrainingJob& job) {
  const std::string& ns = job.metadata.namespace_;
  auto create = [&](const kube::Resource& r, const std::string& name, const json& child) -> absl::Status {
    if (cache_->Get(r, ns + "/" + name) != nullptr) return absl::OkStatus();
    auto s = api_->Create(r, ns, child);
    if (s.ok() || kube::IsAlreadyExists(s.status())) return absl::OkStatus();
    return s.status();
  };
  // The checkpoint claim first: pods that mount a missing claim would never start.
  if (job.spec.checkpoint.storage == api::kStoragePersistentVolumeClaim) {
    const std::string name = CheckpointClaimName(job.metadata.name);
    auto not_ours = [&](const json& claim) {
      std::string message = absl::StrCat(
          "PersistentVolumeClaim ", ns, "/", name, " exists and is not owned by this TrainingJob",
          kube::ControllerUidOf(claim).empty() ? "" : " (it belongs to an earlier job of that name, being deleted)",
          "; delete it, or use spec.checkpoint.storage: ExistingClaim with claimName: ", name);
      Event(obj, "Warning", "CheckpointClaimConflict", message);
      return absl::FailedPreconditionError(message);
    };
    kube::Object have = cache_->Get(kube::kPersistentVolumeClaims, ns + "/" + name);
    if (have != nullptr) {
      if (kube::ControllerUidOf(*have) != kube::UidOf(obj)) return not_ours(*have);
    } else {
      auto created = api_->Create(kube::kPersistentVolumeClaims, ns, BuildCheckpointClaim(obj, job));
      if (!created.ok()) {
        if (!kube::IsAlreadyExists(created.status())) return created.status();
        // Not in our (label-selected) cache: someone else's claim, or ours not seen yet.
        auto got = api_->Get(kube::kPersistentVolumeClaims, ns, name);
        if (!got.ok()) return got.status();
        if (kube::ControllerUidOf(*got) != kube::UidOf(obj)) return not_ours(*got);
      }
    }
  }
  // Independent of each other: created at once.
  kube::CallGroup children(options_.requests);
  children.Add([&] { return create(kube::kConfigMaps, ConfigMapName(job.metadata.name), BuildConfigMap(obj, job)); });
  children.Add([&] {
    return create(kube::kServices, ServiceName(job.metadata.name), BuildService(obj, job, options_.build));
  });
  children.Add([&] {
    return create(kube::kNetworkPolicies, NetworkPolicyName(job.metadata.name),
                  BuildNetworkPolicy(obj, job, options_.build));
  });
  const std::string serve = ServingName(job.metadata.name);  // outlives the calls (Wait below)
  if (job.spec.serving.has_value()) {  // tandem-serve following the published models
    children.Add([&] { return create(kube::kDeployments, serve, BuildServingDeployment(obj, job, options_.build)); });
    children.Add([&] { return create(kube::kServices, serve, BuildServingService(obj, job)); });
  }
  return children.Wait();
}

// One pass of Reconcile over one job: what the phase handlers read and change. The status is
// written once, at the end of the pass, and only if it changed (Write).
struct TrainingJobReconciler::Pass {
  std::string key;
  const json& obj;  // the cached object: shared, never modified
  std::string uid;
  std::string now;
  api::TrainingJob job;  // parsed from obj; its status is the one written back
  api::TrainingJobStatus before;
  Pods pods;
  ReconcileResult result;

  api::TrainingJobStatus& st() { return job.status; }
};

ReconcileResult TrainingJobReconciler::Reconcile(const std::string& key) {
  kube::Object cached = cache_->Get(kube::kTrainingJobs, key);
  if (cached == nullptr) {
    ReconcileResult result;
    ForgetProgress(key);
    absl::MutexLock lock(&mu_);
    if (assumed_.erase(key) > 0) result.schedule = true;
    return result;  // deleted: owner references let the garbage collector remove the children
  }
  if (Deleting(*cached)) return {};
  // The parse of this version, shared with the scheduling pass (parsed once per resourceVersion).
  std::shared_ptr<const ParsedJob> parsed = parsed_jobs_.Get(cached, validators_);
  const api::FieldErrors& errors = parsed->errors;
  Pass p{.key = key,
         .obj = *cached,
         .uid = kube::UidOf(*cached),
         .now = NowText(),
         .job = parsed->job};
  p.before = p.job.status;
  p.st().observed_generation = p.job.metadata.generation;
  if (!errors.empty()) return OnInvalidSpec(p, errors);
  // Valid (tandem run resizes it, resharding the pservers), but the operator does not run
  // joining pserver shards nor publish a pserver layout yet: a resize on Kubernetes would leave
  // the trainers without their tables. Refused here, with the reason, instead of failing later.
  if (p.job.spec.elastic.has_value() && api::HasEmbeddingLayers(p.job.spec) &&
      !Finished(p.st().phase)) {
    Finish(p, api::kPhaseFailed, "Unsupported",
           "spec.elastic: an elastic job with embedding tables on the pservers runs under "
           "`tandem run` only; the operator does not move pserver shards yet (docs/elastic.md). "
           "Remove spec.elastic to run it as a fixed-size job");
    return Write(p);
  }

  p.pods = PodsOf(p.job, p.uid);
  const std::string& phase = p.st().phase;
  if (Finished(phase)) return OnFinished(p);
  if (p.job.spec.suspend) return OnSuspend(p);
  if (phase == api::kPhaseSuspended) return OnResume(p);
  if (phase.empty() || phase == api::kPhasePending) return OnNew(p);
  if (phase == api::kPhaseQueued || p.st().placement.empty()) return OnNotPlaced(p);
  return OnPlaced(p);  // Admitted, Running or Restarting: the workers run on status.placement
}

// Deletes `pods` with the grace period (SIGTERM: they checkpoint); a failure is the pass's error.
void TrainingJobReconciler::DeleteWorkers(Pass& p, const std::vector<kube::Object>& pods) {
  if (absl::Status s = DeletePods(pods, options_.build.termination_grace_s); !s.ok()) {
    p.result.error = s;
  }
}

ReconcileResult TrainingJobReconciler::Write(Pass& p) {
  if (!(p.st() == p.before)) {
    absl::Status s = WriteStatus(p.obj, p.st());
    if (!s.ok()) p.result.error = s;
  }
  return p.result;
}

void TrainingJobReconciler::Finish(Pass& p, const std::string& phase, const std::string& reason,
                                   const std::string& message) {
  api::TrainingJobStatus& st = p.st();
  st.phase = phase;
  if (st.completion_time.empty()) st.completion_time = p.now;
  api::SetCondition(&st.conditions, phase == api::kPhaseSucceeded ? api::kConditionSucceeded
                                                                   : api::kConditionFailed,
                    "True", reason, message, p.now);
  api::SetCondition(&st.conditions, api::kConditionRunning, "False", reason, message, p.now);
  st.pending_reason.clear();
  Event(p.obj, phase == api::kPhaseSucceeded ? "Normal" : "Warning", reason, message);
  p.result.schedule = true;
}

ReconcileResult TrainingJobReconciler::OnInvalidSpec(Pass& p, const api::FieldErrors& errors) {
  if (p.st().phase != api::kPhaseFailed) {
    std::vector<std::string> lines;
    for (const auto& e : errors) lines.push_back(e.ToString());
    Finish(p, api::kPhaseFailed, "InvalidSpec", absl::StrJoin(lines, "; "));
  }
  return Write(p);
}

// Finished: leave completed pods for their logs; remove the TTL'd job.
ReconcileResult TrainingJobReconciler::OnFinished(Pass& p) {
  const api::TrainingJob& job = p.job;
  ForgetProgress(p.key);
  DeleteWorkers(p, p.pods.live);
  if (job.spec.ttl_seconds_after_finished && !p.st().completion_time.empty()) {
    auto done = kube::ParseRfc3339(p.st().completion_time);
    double expires = (done.ok() ? *done : Now()) + static_cast<double>(*job.spec.ttl_seconds_after_finished);
    if (Now() >= expires) {
      kube::DeleteOptions o;
      o.propagation_policy = "Background";
      o.precondition_uid = p.uid;
      absl::Status s = api_->Delete(kube::kTrainingJobs, job.metadata.namespace_, job.metadata.name, o);
      if (!s.ok() && !kube::IsNotFound(s)) p.result.error = s;
      else Event(p.obj, "Normal", "TTLExpired",
                 absl::StrCat("deleted ", *job.spec.ttl_seconds_after_finished, "s after it finished"));
      return p.result;
    }
    p.result.requeue_after_s = expires - Now();
  }
  return Write(p);
}

// spec.suspend: release everything; resuming goes back to the queue.
ReconcileResult TrainingJobReconciler::OnSuspend(Pass& p) {
  api::TrainingJobStatus& st = p.st();
  ForgetProgress(p.key);
  DeleteWorkers(p, p.pods.all);
  if (st.phase != api::kPhaseSuspended) {
    st.phase = api::kPhaseSuspended;
    st.placement.clear();
    st.pending_reason.clear();
    api::SetCondition(&st.conditions, api::kConditionSuspended, "True", "Suspended", "spec.suspend is true", p.now);
    api::SetCondition(&st.conditions, api::kConditionAdmitted, "False", "Suspended", "workers released", p.now);
    api::SetCondition(&st.conditions, api::kConditionRunning, "False", "Suspended", "workers released", p.now);
    Event(p.obj, "Normal", "Suspended", absl::StrCat("suspended; ", p.pods.live.size(), " workers stopped"));
    p.result.schedule = true;
    absl::MutexLock lock(&mu_);
    assumed_.erase(p.key);
  }
  return Write(p);
}

ReconcileResult TrainingJobReconciler::OnResume(Pass& p) {
  api::TrainingJobStatus& st = p.st();
  st.phase = api::kPhaseQueued;
  api::SetCondition(&st.conditions, api::kConditionSuspended, "False", "Resumed", "spec.suspend is false", p.now);
  api::SetCondition(&st.conditions, api::kConditionQueued, "True", "Resumed", "waiting for admission", p.now);
  Event(p.obj, "Normal", "Resumed", absl::StrCat("resumed; queued in ", p.job.spec.queue));
  p.result.schedule = true;
  return Write(p);
}

ReconcileResult TrainingJobReconciler::OnNew(Pass& p) {
  api::TrainingJobStatus& st = p.st();
  st.phase = api::kPhaseQueued;
  st.workers.desired = p.job.spec.workers.count;
  api::SetCondition(&st.conditions, api::kConditionQueued, "True", "WaitingForAdmission",
                    absl::StrCat("waiting for admission by queue ", p.job.spec.queue), p.now);
  Event(p.obj, "Normal", "Queued", absl::StrCat("queued in ", p.job.spec.queue));
  p.result.schedule = true;
  return Write(p);
}

// Not admitted (or preempted): no workers may run.
ReconcileResult TrainingJobReconciler::OnNotPlaced(Pass& p) {
  api::TrainingJobStatus& st = p.st();
  ForgetProgress(p.key);
  DeleteWorkers(p, p.pods.all);
  if (st.phase != api::kPhaseQueued) st.phase = api::kPhaseQueued;
  st.workers.running = st.workers.ready = 0;
  p.result.schedule = true;
  return Write(p);
}

ReconcileResult TrainingJobReconciler::OnPlaced(Pass& p) {
  if (absl::Status s = EnsureChildren(p.obj, p.job); !s.ok()) {
    p.result.error = s;
    return Write(p);
  }
  const bool elastic = p.job.spec.elastic.has_value();
  if (elastic && !p.st().elastic.has_value()) {
    // Admitted before status.elastic existed: its membership starts now (the pods wait for it).
    StartMembership(&p.st(), static_cast<int>(p.st().placement.size()),
                    absl::StrCat("started with ", p.st().placement.size(), " workers"));
    return Write(p);
  }
  if (elastic) {
    if (absl::Status s = SyncMembership(p); !s.ok()) {
      p.result.error = s;
      return Write(p);
    }
  }
  std::optional<WorkerFailure> failure = FindWorkerFailure(p);
  const bool restarting = p.st().phase == api::kPhaseRestarting;
  if (failure.has_value() && !restarting && elastic && ShrinkAfterFailure(p, *failure)) failure.reset();
  // Rank 0 is going away; its successor is scraped when it runs.
  if (failure.has_value() || restarting) ForgetProgress(p.key);
  if (failure.has_value() && !restarting) return OnWorkerFailure(p, *failure);
  if (restarting && !RestartGang(p)) return Write(p);
  absl::StatusOr<bool> created = CreateMissingWorkers(p);
  if (!created.ok()) p.result.error = created.status();
  if (!created.ok() || !*created) return Write(p);
  if (elastic) {
    ReleaseLeavingWorkers(p);
    PublishGrow(p);
  }
  RotateCertificates(p);
  UpdateWorkers(p);
  return Write(p);
}

// The ConfigMap "<job>-membership" says what status.elastic says is published. It is written
// only from the status as cached (a status this pass changes reaches it on the next pass), and
// never back to an older epoch, so the trainers' epoch only rises.
absl::Status TrainingJobReconciler::SyncMembership(Pass& p) {
  const api::TrainingJob& job = p.job;
  if (!job.status.elastic || job.status.elastic->workers <= 0) return absl::OkStatus();
  const std::string& ns = job.metadata.namespace_;
  const std::string name = MembershipConfigMapName(job.metadata.name);
  json want = BuildMembershipConfigMap(p.obj, job, options_.build);
  const std::string text = want["data"][kMembershipKey].get<std::string>();
  kube::Object have = cache_->Get(kube::kConfigMaps, ns + "/" + name);
  if (have == nullptr) {
    auto created = api_->Create(kube::kConfigMaps, ns, want);
    if (created.ok() || kube::IsAlreadyExists(created.status())) return absl::OkStatus();
    return created.status();
  }
  const json* data = kube::FieldAt(*have, "data");
  std::string current;
  if (data != nullptr && data->is_object() && data->contains(kMembershipKey) && (*data)[kMembershipKey].is_string())
    current = (*data)[kMembershipKey].get<std::string>();
  if (current == text) return absl::OkStatus();
  if (auto old = api::ParseMembership(current, name); old.ok() && old->epoch > job.status.elastic->epoch) {
    // The cached job is older than the ConfigMap: its next version will say more.
    p.result.requeue_after_s = 1;
    return absl::OkStatus();
  }
  auto patched = api_->Patch(kube::kConfigMaps, ns, name, kube::PatchType::kMerge,
                             json{{"data", {{kMembershipKey, text}}}});
  return patched.status();
}

// A member that failed for good (any exit but 75, which only says it saw a peer fail; or a pod
// that vanished), while the job stays at or above minCount: a new epoch without it, instead of
// failing or restarting the whole job. True when the failure is handled so.
bool TrainingJobReconciler::ShrinkAfterFailure(Pass& p, const WorkerFailure& failure) {
  api::TrainingJobStatus& st = p.st();
  if (!st.elastic || failure.slot < 0 || failure.peer_failure) return false;
  api::ElasticStatus& e = *st.elastic;
  auto it = std::find(e.members.begin(), e.members.end(), failure.slot);
  if (it == e.members.end()) return false;
  const size_t index = static_cast<size_t>(it - e.members.begin());
  if (static_cast<int64_t>(index) >= e.workers) {
    // One of a grow's new workers: the grow is called off; the job goes on as it was.
    CancelGrow(p, failure.message);
    return true;
  }
  if (GrowPending(st)) CancelGrow(p, failure.message);
  const int64_t lowest = std::max<int64_t>(1, p.job.spec.workers.min_count);
  if (e.workers - 1 < lowest) return false;
  const int64_t from = e.workers;
  e.members.erase(e.members.begin() + static_cast<long>(index));
  st.placement.erase(st.placement.begin() + static_cast<long>(index));
  PublishMembers(&st, from, "WorkerFailed",
                 absl::StrCat(failure.message, "; continuing with ", from - 1, " workers (minCount ", lowest, ")"), p.now,
                 std::nullopt);
  RecordResized(p.obj, "Warning", e.resizes.back());
  OperatorMetrics::Get().resizes.WithLabels({"shrink", "WorkerFailed"})->Inc();
  return true;  // its pod, no longer a member, is deleted by ReleaseLeavingWorkers
}

void TrainingJobReconciler::CancelGrow(Pass& p, const std::string& why) {
  api::TrainingJobStatus& st = p.st();
  api::ElasticStatus& e = *st.elastic;
  const size_t keep = static_cast<size_t>(e.workers);
  if (e.members.size() <= keep) return;
  const size_t planned = e.members.size();
  e.members.resize(keep);
  st.placement.resize(keep);
  Event(p.obj, "Warning", "GrowCancelled",
        absl::StrCat("grow ", keep, " -> ", planned, " workers called off: ", why));
}

// Workers no longer in the membership: deleted once their trainer has exited (it leaves at a
// step boundary and exits 0), or at once when it never ran or failed.
void TrainingJobReconciler::ReleaseLeavingWorkers(Pass& p) {
  const std::vector<int> slots = WorkerSlots(p.job);
  std::vector<kube::Object> gone;
  bool waiting = false;
  for (const auto& [slot, pod] : p.pods.by_rank) {
    if (std::find(slots.begin(), slots.end(), slot) != slots.end()) continue;
    if (WorkerPhase(*pod) == "Running") {
      waiting = true;
      continue;
    }
    gone.push_back(pod);
  }
  if (!gone.empty()) DeleteWorkers(p, gone);
  if (waiting && (p.result.requeue_after_s <= 0 || p.result.requeue_after_s > 5)) p.result.requeue_after_s = 5;
  if (!gone.empty() || waiting) p.result.schedule = true;  // their capacity is free once they are gone
}

// A grow's new workers run (they load their data and wait to be named): publish the new epoch.
void TrainingJobReconciler::PublishGrow(Pass& p) {
  api::TrainingJobStatus& st = p.st();
  if (!GrowPending(st)) return;
  api::ElasticStatus& e = *st.elastic;
  for (size_t i = static_cast<size_t>(e.workers); i < e.members.size(); ++i) {
    auto pod = p.pods.by_rank.find(static_cast<int>(e.members[i]));
    if (pod == p.pods.by_rank.end() || WorkerPhase(*pod->second) != "Running" || !PodReady(*pod->second)) return;
  }
  const int64_t from = e.workers;
  PublishMembers(&st, from, "Grow",
                 absl::StrCat("grown ", from, " -> ", e.members.size(), " workers into idle capacity of queue ",
                              p.job.spec.queue),
                 p.now, 0);
  RecordResized(p.obj, "Normal", e.resizes.back());
  OperatorMetrics::Get().resizes.WithLabels({"grow", "Grow"})->Inc();
}

void TrainingJobReconciler::RecordResized(const json& obj, const std::string& type, const api::ResizeRecord& r) {
  Event(obj, type, "Resized", absl::StrCat(r.from, " -> ", r.to, " workers (membership epoch ", r.epoch, "): ", r.message));
}

// A failed pod (the last one seen, or the first whose exit code is not retryable), else, while
// Running, a missing one.
std::optional<TrainingJobReconciler::WorkerFailure> TrainingJobReconciler::FindWorkerFailure(
    const Pass& p) const {
  std::optional<WorkerFailure> failure;
  bool retryable = true;
  const std::vector<int> slots = WorkerSlots(p.job);
  for (const auto& [rank, pod] : p.pods.by_rank) {
    if (WorkerPhase(*pod) != "Failed") continue;
    // A worker that left an elastic job is not the job's failure.
    if (std::find(slots.begin(), slots.end(), rank) == slots.end()) continue;
    std::vector<std::string> parts;
    bool peer_failure = false;
    for (const auto& [container, code] : ExitCodes(*pod)) {
      if (container == kTrainerContainer && code == api::kExitPeerFailure) peer_failure = true;
      std::string why = LastLine(TerminationMessage(*pod, container.c_str()));
      parts.push_back(absl::StrCat(container, " exited with ", code, why.empty() ? "" : " (" + why + ")"));
      const auto& ok = p.job.spec.restart_policy.retryable_exit_codes;
      if (std::find(ok.begin(), ok.end(), code) == ok.end()) retryable = false;
    }
    failure = WorkerFailure{"WorkerFailed",
                            absl::StrCat("worker ", rank, " (", kube::NameOf(*pod), ") failed",
                                         parts.empty() ? "" : ": " + absl::StrJoin(parts, ", ")),
                            retryable, rank, peer_failure};
    if (!retryable) break;
  }
  if (!failure.has_value() && p.job.status.phase == api::kPhaseRunning) {
    // The published members (a grow's new workers may not be in the cache yet).
    size_t published = slots.size();
    if (p.job.status.elastic && p.job.spec.elastic)
      published = std::min(published, static_cast<size_t>(std::max<int64_t>(0, p.job.status.elastic->workers)));
    for (size_t i = 0; i < published; ++i) {
      const int r = slots[i];
      if (p.pods.by_rank.count(r) == 0) {
        return WorkerFailure{"WorkerLost",
                             absl::StrCat("worker ", r, " (", WorkerPodName(p.job.metadata.name, r),
                                          ") disappeared"),
                             true, r, false};
      }
    }
  }
  return failure;
}

// Restart the gang from the checkpoint after a backoff, or fail the job.
ReconcileResult TrainingJobReconciler::OnWorkerFailure(Pass& p, const WorkerFailure& failure) {
  api::TrainingJobStatus& st = p.st();
  const auto& policy = p.job.spec.restart_policy;
  if (!failure.retryable) {
    Finish(p, api::kPhaseFailed, "NonRetryableExitCode", failure.message);
  } else if (st.restarts >= policy.backoff_limit) {
    Finish(p, api::kPhaseFailed, "BackoffLimitExceeded",
           absl::StrCat(failure.message, "; restarted ", st.restarts, " times (backoffLimit ",
                        policy.backoff_limit, ")"));
  } else {
    st.restarts++;
    st.phase = api::kPhaseRestarting;
    double backoff = RestartBackoff(policy, st.restarts);
    api::SetCondition(&st.conditions, api::kConditionRestarting, "True", failure.reason,
                      absl::StrCat(failure.message, "; restart ", st.restarts, " of ", policy.backoff_limit,
                                   " from the last checkpoint in ", backoff, "s"),
                      p.now);
    api::SetCondition(&st.conditions, api::kConditionRunning, "False", failure.reason, failure.message, p.now);
    Event(p.obj, "Warning", failure.reason,
          absl::StrCat(failure.message, "; restarting all workers from the checkpoint in ", backoff, "s"));
    OperatorMetrics::Get().restarts.WithLabels({p.job.spec.queue})->Inc();
    p.result.requeue_after_s = backoff;
  }
  DeleteWorkers(p, p.pods.all);
  st.workers.running = st.workers.ready = 0;
  return Write(p);
}

// Restarting: true once the old gang is gone and the backoff has passed (the phase is then
// Admitted again); false while waiting (requeue set).
bool TrainingJobReconciler::RestartGang(Pass& p) {
  api::TrainingJobStatus& st = p.st();
  // Pods of this restart already exist: this pass read the job from a cache that has not yet
  // seen our own write that started them (the pods' watch events can overtake the job's).
  // Deleting them would restart the gang a second time for one failure.
  std::vector<kube::Object> old_gang;
  for (const auto& pod : p.pods.all) {
    if (RestartOf(*pod) >= st.restarts) {
      p.result.requeue_after_s = 1;
      return false;
    }
    old_gang.push_back(pod);
  }
  if (!old_gang.empty()) {
    DeleteWorkers(p, old_gang);
    p.result.requeue_after_s = 1;  // wait for the old gang to be gone
    return false;
  }
  const api::Condition* c = api::FindCondition(st.conditions, api::kConditionRestarting);
  double since = c != nullptr && kube::ParseRfc3339(c->last_transition_time).ok()
                     ? *kube::ParseRfc3339(c->last_transition_time) : Now();
  double wait = since + RestartBackoff(p.job.spec.restart_policy, st.restarts) - Now();
  if (wait > 0) {
    p.result.requeue_after_s = wait;
    return false;
  }
  st.phase = api::kPhaseAdmitted;
  api::SetCondition(&st.conditions, api::kConditionRestarting, "False", "Restarted",
                    absl::StrCat("restart ", st.restarts, " started"), p.now);
  Event(p.obj, "Normal", "Restarted",
        absl::StrCat("restarting ", st.placement.size(), " workers from the last checkpoint (restart ",
                     st.restarts, ")"));
  return true;
}

// Creates the workers that do not exist yet. False (requeue set) while a user's checkpoint claim
// is missing: the operator does not own it, so a typo in claimName would otherwise leave every
// worker stuck in ContainerCreating.
absl::StatusOr<bool> TrainingJobReconciler::CreateMissingWorkers(Pass& p) {
  const api::TrainingJob& job = p.job;
  const std::vector<int> slots = WorkerSlots(job);
  bool missing = false;
  for (int slot : slots) missing |= p.pods.by_rank.count(slot) == 0;
  if (missing && job.spec.checkpoint.storage == api::kStorageExistingClaim) {
    auto claim = api_->Get(kube::kPersistentVolumeClaims, job.metadata.namespace_, job.spec.checkpoint.claim_name);
    if (!claim.ok()) {
      if (!kube::IsNotFound(claim.status())) return claim.status();
      Event(p.obj, "Warning", "CheckpointClaimMissing",
            absl::StrCat("spec.checkpoint.claimName: PersistentVolumeClaim ", job.metadata.namespace_, "/",
                         job.spec.checkpoint.claim_name, " not found; workers wait for it"));
      p.result.requeue_after_s = 15;
      return false;
    }
  }
  // The token Secret is created only when workers are (they are its only readers), and never
  // read back: the operator needs no get/list/watch on Secrets, so it cannot read any Secret in
  // the cluster. AlreadyExists means an earlier pass created it.
  if (missing) {
    std::string token = options_.new_token ? options_.new_token() : RandomToken();
    auto secret = api_->Create(kube::kSecrets, job.metadata.namespace_, BuildTokenSecret(p.obj, job, token));
    if (!secret.ok() && !kube::IsAlreadyExists(secret.status())) return secret.status();
    // The job's certificate and trust bundle (job_tls.h), before any worker that mounts them.
    if (absl::Status s = tls_.EnsureIssued(job, Now()); !s.ok()) return s;
  }
  kube::CallGroup workers(options_.requests);  // the gang's pods at once
  for (size_t r = 0; r < slots.size(); ++r) {
    const int rank = slots[r];
    if (p.pods.by_rank.count(rank) != 0) continue;
    workers.Add([this, ns = job.metadata.namespace_,
                 pod = BuildWorkerPod(p.obj, job, rank, job.status.placement[r], job.status.restarts,
                                      options_.build)] {
      auto created = api_->Create(kube::kPods, ns, pod);
      return created.ok() || kube::IsAlreadyExists(created.status()) ? absl::OkStatus() : created.status();
    });
  }
  TANDEM_RETURN_IF_ERROR(workers.Wait());
  return true;
}

// Certificates renewed while the workers run (job_tls.h).
void TrainingJobReconciler::RotateCertificates(Pass& p) {
  JobTls::Pass tls = tls_.Rotate(p.job, Now());
  if (!tls.changes.empty()) Event(p.obj, "Normal", "CertificateRotated", absl::StrJoin(tls.changes, "; "));
  if (!tls.error.ok()) {
    Event(p.obj, "Warning", "CertificateRotationFailed", std::string(tls.error.message()));
    p.result.error = tls.error;
  }
  if (tls.requeue_after_s > 0 && (p.result.requeue_after_s <= 0 || tls.requeue_after_s < p.result.requeue_after_s))
    p.result.requeue_after_s = tls.requeue_after_s;
}

// Counts, progress, and the move to Running or Succeeded.
void TrainingJobReconciler::UpdateWorkers(Pass& p) {
  const api::TrainingJob& job = p.job;
  api::TrainingJobStatus& st = p.st();
  if (GrowPending(st)) {
    // The published members finished before the grow's new ones joined: nothing to join.
    bool done = st.elastic->workers > 0;
    for (int64_t i = 0; i < st.elastic->workers && done; ++i) {
      auto pod = p.pods.by_rank.find(static_cast<int>(st.elastic->members[static_cast<size_t>(i)]));
      done = pod != p.pods.by_rank.end() && WorkerPhase(*pod->second) == "Succeeded";
    }
    if (done) CancelGrow(p, "the job's workers finished first");
  }
  const int world = static_cast<int>(st.placement.size());
  const std::vector<int> slots = WorkerSlots(job);
  int running = 0, ready = 0, succeeded = 0, failed = 0;
  for (const auto& [rank, pod] : p.pods.by_rank) {
    if (std::find(slots.begin(), slots.end(), rank) == slots.end()) continue;  // left the job
    std::string phase = WorkerPhase(*pod);
    if (phase == "Running") running++;
    if (phase == "Running" && PodReady(*pod)) ready++;
    if (phase == "Succeeded") succeeded++;
    if (phase == "Failed") failed++;
  }
  st.workers.desired = world;
  st.workers.running = running;
  st.workers.ready = ready;
  st.workers.succeeded = succeeded;
  st.workers.failed = failed;
  if (auto it = p.pods.by_rank.find(0); it != p.pods.by_rank.end()) UpdateProgress(p.key, job, it->second, &st);
  if (succeeded == world && world > 0) {
    if (auto it = p.pods.by_rank.find(0); it != p.pods.by_rank.end()) ApplyWorkerResult(job, *it->second, &st);
    if (st.progress && job.spec.passes > 0) {
      st.progress->pass = job.spec.passes;
      st.progress->percent = 100;
      api::TrainingJob view = job;
      view.status.progress = st.progress;
      st.progress->summary = api::ProgressSummary(view);
    }
    Finish(p, api::kPhaseSucceeded, "Completed", absl::StrCat("all ", world, " workers completed"));
  } else if (ready == world && st.phase == api::kPhaseAdmitted) {
    st.phase = api::kPhaseRunning;
    if (st.start_time.empty()) st.start_time = p.now;
    api::SetCondition(&st.conditions, api::kConditionRunning, "True", "WorkersReady",
                      absl::StrCat("all ", world, " workers are ready"), p.now);
    Event(p.obj, "Normal", "Running", absl::StrCat("all ", world, " workers are ready"));
  } else if (st.phase == api::kPhaseAdmitted && job.spec.checkpoint.storage == api::kStoragePersistentVolumeClaim) {
    WarnIfClaimPending(p);
  }
}

// Workers that cannot mount their checkpoint claim never start, and their pods only say
// ContainerCreating: name the cause on the job once the claim has been unbound a while.
void TrainingJobReconciler::WarnIfClaimPending(Pass& p) {
  const api::TrainingJob& job = p.job;
  api::TrainingJobStatus& st = p.st();
  const std::string claim_name = CheckpointClaimName(job.metadata.name);
  kube::Object claim = cache_->Get(kube::kPersistentVolumeClaims, job.metadata.namespace_ + "/" + claim_name);
  const json* phase = claim != nullptr ? kube::FieldAt(*claim, "status.phase") : nullptr;
  if (phase == nullptr || !phase->is_string() || phase->get<std::string>() != "Pending") return;
  const api::Condition* admitted = api::FindCondition(st.conditions, api::kConditionAdmitted);
  auto since = admitted != nullptr ? kube::ParseRfc3339(admitted->last_transition_time) : absl::StatusOr<double>(Now());
  const double waited = Now() - (since.ok() ? *since : Now());
  if (waited >= options_.claim_pending_warning_s) {
    std::string message = absl::StrCat(
        "checkpoint claim ", claim_name, " is not bound after ", static_cast<int64_t>(waited),
        "s; workers cannot start until it is. Its StorageClass (",
        job.spec.checkpoint.storage_class_name.empty() ? "the cluster default" : job.spec.checkpoint.storage_class_name,
        ") must offer ReadWriteMany with Immediate binding; or set spec.checkpoint.storage");
    if (api::SetCondition(&st.conditions, api::kConditionRunning, "False", "CheckpointClaimPending", message, p.now)) {
      Event(p.obj, "Warning", "CheckpointClaimPending", message);
    }
  } else {
    p.result.requeue_after_s = options_.claim_pending_warning_s - waited;
  }
}

}  // namespace tandem::controller
