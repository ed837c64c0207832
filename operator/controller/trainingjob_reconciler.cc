#include "operator/controller/trainingjob_reconciler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "api/queue.h"
#include "common/logging.h"
#include "common/status.h"
#include "operator/controller/operator_metrics.h"
#include "operator/kube/api_error.h"
#include "operator/scheduler/resources.h"
#include "operator/scheduler/snapshot.h"

namespace tandem::controller {

using nlohmann::json;

namespace {

bool Finished(const std::string& phase) {
  return phase == api::kPhaseSucceeded || phase == api::kPhaseFailed;
}
bool Placed(const std::string& phase) {
  return phase == api::kPhaseAdmitted || phase == api::kPhaseRunning || phase == api::kPhaseRestarting;
}

std::string PodPhase(const json& pod) {
  const json* p = kube::FieldAt(pod, "status.phase");
  return p != nullptr && p->is_string() ? p->get<std::string>() : "";
}
bool Deleting(const json& o) { return kube::FieldAt(o, "metadata.deletionTimestamp") != nullptr; }
bool PodReady(const json& pod) {
  const json* conds = kube::FieldAt(pod, "status.conditions");
  if (conds != nullptr && conds->is_array()) {
    for (const auto& c : *conds) {
      if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
    }
  }
  return false;
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

struct TrainingJobReconciler::Pods {
  std::vector<kube::Object> all;      // owned by this job (this uid)
  std::map<int, kube::Object> by_rank;  // live (not being deleted) pods, by rank
  std::vector<kube::Object> live;     // not terminal, not being deleted
};

TrainingJobReconciler::TrainingJobReconciler(kube::KubeApi* api, const ClusterCache* cache,
                                             kube::EventRecorder* events, ReconcilerOptions options)
    : api_(api),
      cache_(cache),
      events_(events),
      options_(std::move(options)),
      validators_(options_.validators ? *options_.validators : trainer::TrainerSectionValidators()) {}

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
  api::TrainingJob view = job;
  view.status.progress = p;
  p.summary = api::ProgressSummary(view);
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
  return children.Wait();
}

ReconcileResult TrainingJobReconciler::Reconcile(const std::string& key) {
  ReconcileResult result;
  kube::Object cached = cache_->Get(kube::kTrainingJobs, key);
  if (cached == nullptr) {
    ForgetProgress(key);
    std::lock_guard<std::mutex> lock(mu_);
    if (assumed_.erase(key) > 0) result.schedule = true;
    return result;  // deleted: owner references let the garbage collector remove the children
  }
  const json& obj = *cached;  // never modified: the cache is shared
  if (Deleting(obj)) return result;
  const std::string uid = kube::UidOf(obj);
  const std::string now = NowText();

  api::FieldErrors errors;
  api::TrainingJob job = api::ParseTrainingJob(obj, validators_, &errors);
  const api::TrainingJobStatus before = job.status;
  api::TrainingJobStatus& st = job.status;
  st.observed_generation = job.metadata.generation;

  auto finish = [&](const std::string& phase, const std::string& reason, const std::string& message) {
    st.phase = phase;
    if (st.completion_time.empty()) st.completion_time = now;
    api::SetCondition(&st.conditions, phase == api::kPhaseSucceeded ? api::kConditionSucceeded
                                                                     : api::kConditionFailed,
                      "True", reason, message, now);
    api::SetCondition(&st.conditions, api::kConditionRunning, "False", reason, message, now);
    st.pending_reason.clear();
    st.queue_position = 0;
    Event(obj, phase == api::kPhaseSucceeded ? "Normal" : "Warning", reason, message);
    result.schedule = true;
  };
  auto write = [&]() {
    if (!(st == before)) {
      absl::Status s = WriteStatus(obj, st);
      if (!s.ok()) result.error = s;
    }
    return result;
  };

  if (!errors.empty()) {
    if (st.phase != api::kPhaseFailed) {
      std::vector<std::string> lines;
      for (const auto& e : errors) lines.push_back(e.ToString());
      finish(api::kPhaseFailed, "InvalidSpec", absl::StrJoin(lines, "; "));
    }
    return write();
  }

  Pods pods = PodsOf(job, uid);
  const auto& policy = job.spec.restart_policy;
  const int grace = options_.build.termination_grace_s;

  // Finished: leave completed pods for their logs; remove the TTL'd job.
  if (Finished(st.phase)) {
    ForgetProgress(key);
    if (absl::Status s = DeletePods(pods.live, grace); !s.ok()) result.error = s;
    if (job.spec.ttl_seconds_after_finished && !st.completion_time.empty()) {
      auto done = kube::ParseRfc3339(st.completion_time);
      double expires = (done.ok() ? *done : Now()) + static_cast<double>(*job.spec.ttl_seconds_after_finished);
      if (Now() >= expires) {
        kube::DeleteOptions o;
        o.propagation_policy = "Background";
        o.precondition_uid = uid;
        absl::Status s = api_->Delete(kube::kTrainingJobs, job.metadata.namespace_, job.metadata.name, o);
        if (!s.ok() && !kube::IsNotFound(s)) result.error = s;
        else Event(obj, "Normal", "TTLExpired",
                   absl::StrCat("deleted ", *job.spec.ttl_seconds_after_finished, "s after it finished"));
        return result;
      }
      result.requeue_after_s = expires - Now();
    }
    return write();
  }

  // Suspend: release everything; resume goes back to the queue.
  if (job.spec.suspend) {
    ForgetProgress(key);
    if (absl::Status s = DeletePods(pods.all, grace); !s.ok()) result.error = s;
    if (st.phase != api::kPhaseSuspended) {
      st.phase = api::kPhaseSuspended;
      st.placement.clear();
      st.pending_reason.clear();
      st.queue_position = 0;
      api::SetCondition(&st.conditions, api::kConditionSuspended, "True", "Suspended", "spec.suspend is true", now);
      api::SetCondition(&st.conditions, api::kConditionAdmitted, "False", "Suspended", "workers released", now);
      api::SetCondition(&st.conditions, api::kConditionRunning, "False", "Suspended", "workers released", now);
      Event(obj, "Normal", "Suspended", absl::StrCat("suspended; ", pods.live.size(), " workers stopped"));
      result.schedule = true;
      std::lock_guard<std::mutex> lock(mu_);
      assumed_.erase(key);
    }
    return write();
  }
  if (st.phase == api::kPhaseSuspended) {
    st.phase = api::kPhaseQueued;
    api::SetCondition(&st.conditions, api::kConditionSuspended, "False", "Resumed", "spec.suspend is false", now);
    api::SetCondition(&st.conditions, api::kConditionQueued, "True", "Resumed", "waiting for admission", now);
    Event(obj, "Normal", "Resumed", absl::StrCat("resumed; queued in ", job.spec.queue));
    result.schedule = true;
    return write();
  }
  if (st.phase.empty() || st.phase == api::kPhasePending) {
    st.phase = api::kPhaseQueued;
    st.workers.desired = job.spec.workers.count;
    api::SetCondition(&st.conditions, api::kConditionQueued, "True", "WaitingForAdmission",
                      absl::StrCat("waiting for admission by queue ", job.spec.queue), now);
    Event(obj, "Normal", "Queued", absl::StrCat("queued in ", job.spec.queue));
    result.schedule = true;
    return write();
  }
  if (st.phase == api::kPhaseQueued || st.placement.empty()) {
    // Not admitted (or preempted): no workers may run.
    ForgetProgress(key);
    if (absl::Status s = DeletePods(pods.all, grace); !s.ok()) result.error = s;
    if (st.phase != api::kPhaseQueued) st.phase = api::kPhaseQueued;
    st.workers.running = st.workers.ready = 0;
    result.schedule = true;
    return write();
  }

  // Admitted, Running or Restarting: the workers run on status.placement.
  const int world = static_cast<int>(st.placement.size());
  if (absl::Status s = EnsureChildren(obj, job); !s.ok()) {
    result.error = s;
    return write();
  }

  // Failures: classify, then restart the gang or fail the job.
  std::string failure_reason, failure_message;
  bool retryable = true;
  for (const auto& [rank, pod] : pods.by_rank) {
    if (PodPhase(*pod) != "Failed") continue;
    auto codes = ExitCodes(*pod);
    std::vector<std::string> parts;
    for (const auto& [container, code] : codes) {
      parts.push_back(absl::StrCat(container, " exited with ", code));
      const auto& ok = policy.retryable_exit_codes;
      if (std::find(ok.begin(), ok.end(), code) == ok.end()) retryable = false;
    }
    failure_reason = "WorkerFailed";
    failure_message = absl::StrCat("worker ", rank, " (", kube::NameOf(*pod), ") failed",
                                   parts.empty() ? "" : ": " + absl::StrJoin(parts, ", "));
    if (!retryable) break;
  }
  if (failure_reason.empty() && st.phase == api::kPhaseRunning) {
    for (int r = 0; r < world; ++r) {
      if (pods.by_rank.count(r) == 0) {
        failure_reason = "WorkerLost";
        failure_message = absl::StrCat("worker ", r, " (", WorkerPodName(job.metadata.name, r), ") disappeared");
        break;
      }
    }
  }
  if (!failure_reason.empty() || st.phase == api::kPhaseRestarting) {
    ForgetProgress(key);  // rank 0 is going away; its successor is scraped when it runs
  }
  if (!failure_reason.empty() && st.phase != api::kPhaseRestarting) {
    if (!retryable) {
      finish(api::kPhaseFailed, "NonRetryableExitCode", failure_message);
    } else if (st.restarts >= policy.backoff_limit) {
      finish(api::kPhaseFailed, "BackoffLimitExceeded",
             absl::StrCat(failure_message, "; restarted ", st.restarts, " times (backoffLimit ",
                          policy.backoff_limit, ")"));
    } else {
      st.restarts++;
      st.phase = api::kPhaseRestarting;
      double backoff = RestartBackoff(policy, st.restarts);
      api::SetCondition(&st.conditions, api::kConditionRestarting, "True", failure_reason,
                        absl::StrCat(failure_message, "; restart ", st.restarts, " of ", policy.backoff_limit,
                                     " from the last checkpoint in ", backoff, "s"),
                        now);
      api::SetCondition(&st.conditions, api::kConditionRunning, "False", failure_reason, failure_message, now);
      Event(obj, "Warning", failure_reason,
            absl::StrCat(failure_message, "; restarting all workers from the checkpoint in ", backoff, "s"));
      OperatorMetrics::Get().restarts.WithLabels({job.spec.queue})->Inc();
      result.requeue_after_s = backoff;
    }
    if (absl::Status s = DeletePods(pods.all, grace); !s.ok()) result.error = s;
    st.workers.running = st.workers.ready = 0;
    return write();
  }

  if (st.phase == api::kPhaseRestarting) {
    if (!pods.all.empty()) {
      if (absl::Status s = DeletePods(pods.all, grace); !s.ok()) result.error = s;
      result.requeue_after_s = 1;  // wait for the old gang to be gone
      return write();
    }
    const api::Condition* c = api::FindCondition(st.conditions, api::kConditionRestarting);
    double since = c != nullptr && kube::ParseRfc3339(c->last_transition_time).ok()
                       ? *kube::ParseRfc3339(c->last_transition_time) : Now();
    double wait = since + RestartBackoff(policy, st.restarts) - Now();
    if (wait > 0) {
      result.requeue_after_s = wait;
      return write();
    }
    st.phase = api::kPhaseAdmitted;
    api::SetCondition(&st.conditions, api::kConditionRestarting, "False", "Restarted",
                      absl::StrCat("restart ", st.restarts, " started"), now);
    Event(obj, "Normal", "Restarted",
          absl::StrCat("restarting ", world, " workers from the last checkpoint (restart ", st.restarts, ")"));
  }

  // Create missing workers. A user's claim is checked first: the operator does not own it, so a
  // typo in claimName would otherwise leave every worker stuck in ContainerCreating.
  if (job.spec.checkpoint.storage == api::kStorageExistingClaim && pods.by_rank.size() < static_cast<size_t>(world)) {
    auto claim = api_->Get(kube::kPersistentVolumeClaims, job.metadata.namespace_, job.spec.checkpoint.claim_name);
    if (!claim.ok()) {
      if (!kube::IsNotFound(claim.status())) {
        result.error = claim.status();
        return write();
      }
      Event(obj, "Warning", "CheckpointClaimMissing",
            absl::StrCat("spec.checkpoint.claimName: PersistentVolumeClaim ", job.metadata.namespace_, "/",
                         job.spec.checkpoint.claim_name, " not found; workers wait for it"));
      result.requeue_after_s = 15;
      return write();
    }
  }
  // The token Secret is created only when workers are (they are its only readers), and never
  // read back: the operator needs no get/list/watch on Secrets, so it cannot read any Secret in
  // the cluster. AlreadyExists means an earlier pass created it.
  if (pods.by_rank.size() < static_cast<size_t>(world)) {
    std::string token = options_.new_token ? options_.new_token() : RandomToken();
    auto secret = api_->Create(kube::kSecrets, job.metadata.namespace_, BuildTokenSecret(obj, job, token));
    if (!secret.ok() && !kube::IsAlreadyExists(secret.status())) {
      result.error = secret.status();
      return write();
    }
  }
  kube::CallGroup workers(options_.requests);  // the gang's pods at once
  for (int r = 0; r < world; ++r) {
    if (pods.by_rank.count(r) != 0) continue;
    workers.Add([this, ns = job.metadata.namespace_,
                 pod = BuildWorkerPod(obj, job, r, st.placement[r], st.restarts, options_.build)] {
      auto created = api_->Create(kube::kPods, ns, pod);
      return created.ok() || kube::IsAlreadyExists(created.status()) ? absl::OkStatus() : created.status();
    });
  }
  if (absl::Status s = workers.Wait(); !s.ok()) {
    result.error = s;
    return write();
  }

  // Counts, progress and Running / Succeeded.
  int running = 0, ready = 0, succeeded = 0, failed = 0;
  for (const auto& [rank, pod] : pods.by_rank) {
    std::string phase = PodPhase(*pod);
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
  if (auto it = pods.by_rank.find(0); it != pods.by_rank.end()) UpdateProgress(key, job, it->second, &st);
  if (succeeded == world && world > 0) {
    if (st.progress && job.spec.passes > 0) {
      st.progress->pass = job.spec.passes;
      st.progress->percent = 100;
      api::TrainingJob view = job;
      st.progress->summary = api::ProgressSummary(view);
    }
    finish(api::kPhaseSucceeded, "Completed", absl::StrCat("all ", world, " workers completed"));
  } else if (ready == world && st.phase == api::kPhaseAdmitted) {
    st.phase = api::kPhaseRunning;
    if (st.start_time.empty()) st.start_time = now;
    api::SetCondition(&st.conditions, api::kConditionRunning, "True", "WorkersReady",
                      absl::StrCat("all ", world, " workers are ready"), now);
    Event(obj, "Normal", "Running", absl::StrCat("all ", world, " workers are ready"));
  } else if (st.phase == api::kPhaseAdmitted && job.spec.checkpoint.storage == api::kStoragePersistentVolumeClaim) {
    // Workers that cannot mount their checkpoint claim never start, and their pods only say
    // ContainerCreating: name the cause on the job once the claim has been unbound a while.
    const std::string claim_name = CheckpointClaimName(job.metadata.name);
    kube::Object claim = cache_->Get(kube::kPersistentVolumeClaims, job.metadata.namespace_ + "/" + claim_name);
    const json* phase = claim != nullptr ? kube::FieldAt(*claim, "status.phase") : nullptr;
    if (phase != nullptr && phase->is_string() && phase->get<std::string>() == "Pending") {
      const api::Condition* admitted = api::FindCondition(st.conditions, api::kConditionAdmitted);
      auto since = admitted != nullptr ? kube::ParseRfc3339(admitted->last_transition_time) : absl::StatusOr<double>(Now());
      const double waited = Now() - (since.ok() ? *since : Now());
      if (waited >= options_.claim_pending_warning_s) {
        std::string message = absl::StrCat(
            "checkpoint claim ", claim_name, " is not bound after ", static_cast<int64_t>(waited),
            "s; workers cannot start until it is. Its StorageClass (",
            job.spec.checkpoint.storage_class_name.empty() ? "the cluster default" : job.spec.checkpoint.storage_class_name,
            ") must offer ReadWriteMany with Immediate binding; or set spec.checkpoint.storage");
        if (api::SetCondition(&st.conditions, api::kConditionRunning, "False", "CheckpointClaimPending", message, now)) {
          Event(obj, "Warning", "CheckpointClaimPending", message);
        }
      } else {
        result.requeue_after_s = options_.claim_pending_warning_s - waited;
      }
    }
  }
  return write();
}

scheduler::Snapshot TrainingJobReconciler::BuildSnapshot(std::map<std::string, kube::Object>* job_objects,
                                                         std::map<std::string, api::TrainingJob>* jobs,
                                                         std::map<std::string, std::string>* invalid_queues) {
  scheduler::Snapshot snap;
  for (const auto& n : cache_->List(kube::kNodes)) {
    scheduler::NodeInfo info;
    info.name = kube::NameOf(*n);
    const json* alloc = kube::FieldAt(*n, "status.allocatable");
    if (alloc == nullptr) alloc = kube::FieldAt(*n, "status.capacity");
    if (alloc != nullptr) info.allocatable = scheduler::FromResourceList(api::ParseResourceList(*alloc));
    if (const json* l = kube::FieldAt(*n, "metadata.labels"); l != nullptr && l->is_object()) {
      for (const auto& [k, v] : l->items()) {
        if (v.is_string()) info.labels[k] = v.get<std::string>();
      }
    }
    const json* unsched = kube::FieldAt(*n, "spec.unschedulable");
    info.schedulable = !(unsched != nullptr && unsched->is_boolean() && unsched->get<bool>());
    if (const json* conds = kube::FieldAt(*n, "status.conditions"); conds != nullptr && conds->is_array()) {
      for (const auto& c : *conds) {
        if (c.value("type", "") == "Ready" && c.value("status", "") != "True") info.schedulable = false;
      }
    }
    if (const json* taints = kube::FieldAt(*n, "spec.taints"); taints != nullptr && taints->is_array()) {
      for (const auto& t : *taints) {
        if (t.value("effect", "") == "NoSchedule") info.schedulable = false;
      }
    }
    snap.nodes.push_back(std::move(info));
  }
  std::map<std::string, std::vector<std::string>> job_pod_nodes;  // job uid -> nodes of live pods
  for (const auto& p : cache_->List(kube::kPods)) {
    std::string phase = PodPhase(*p);
    if (phase == "Succeeded" || phase == "Failed") continue;
    const json* node = kube::FieldAt(*p, "spec.nodeName");
    if (node == nullptr || !node->is_string()) continue;
    if (!OwnerKey(*p).empty()) {
      job_pod_nodes[kube::ControllerUidOf(*p)].push_back(node->get<std::string>());
      continue;
    }
    scheduler::PodUsage u;
    u.node = node->get<std::string>();
    if (const json* cs = kube::FieldAt(*p, "spec.containers"); cs != nullptr && cs->is_array()) {
      for (const auto& c : *cs) {
        const json* req = kube::FieldAt(c, "resources.requests");
        if (req != nullptr) u.requests += scheduler::FromResourceList(api::ParseResourceList(*req));
      }
    }
    snap.other_pods.push_back(u);
  }
  for (const auto& q : cache_->List(kube::kQueues)) {
    auto parsed = api::QueueFromJson(*q);
    if (parsed.ok()) {
      snap.queues.push_back(scheduler::QueueInfoFrom(*parsed));
    } else {
      (*invalid_queues)[kube::NameOf(*q)] = std::string(parsed.status().message());
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::set<std::string> seen;
  for (const auto& o : cache_->List(kube::kTrainingJobs)) {
    api::FieldErrors errors;
    api::TrainingJob job = api::ParseTrainingJob(*o, validators_, &errors);
    if (!errors.empty()) continue;
    std::string key = kube::ObjectKey::Of(*o).String();
    seen.insert(key);
    auto created = kube::ParseRfc3339(job.metadata.creation_timestamp);
    scheduler::JobInfo info = scheduler::JobInfoFrom(job, created.ok() ? static_cast<int64_t>(*created * 1000) : 0);
    const std::string& phase = job.status.phase;
    auto live = job_pod_nodes.find(kube::UidOf(*o));
    auto assumed = assumed_.find(key);
    if (assumed != assumed_.end()) {
      // Our write is visible once the cache shows that version or a later admission decision.
      bool visible = kube::ResourceVersionOf(*o) == assumed->second.written_rv ||
                     (!assumed->second.placement.empty() && !job.status.placement.empty()) ||
                     (assumed->second.placement.empty() && job.status.placement.empty() && Placed(phase) == false);
      if (visible) {
        assumed_.erase(assumed);
        assumed = assumed_.end();
      }
    }
    if (Finished(phase) || job.spec.suspend || phase == api::kPhaseSuspended || Deleting(*o)) {
      // Finished or stopped jobs hold only what their pods still use.
      if (live != job_pod_nodes.end()) {
        info.placement = live->second;
        info.terminating = true;
        snap.jobs.push_back(info);
      }
      continue;
    }
    if (assumed != assumed_.end() && !assumed->second.placement.empty()) {
      info.placement = assumed->second.placement;
    } else if (Placed(phase) && !job.status.placement.empty() &&
               (assumed == assumed_.end() || !assumed->second.placement.empty())) {
      info.placement = job.status.placement;
    } else if (live != job_pod_nodes.end()) {
      info.placement = live->second;  // preempted: its workers are still shutting down
      info.terminating = true;
    } else if (phase != api::kPhaseQueued) {
      continue;  // not queued yet: its own reconcile queues it first
    } else {
      info.placement.clear();
    }
    snap.jobs.push_back(info);
    (*job_objects)[key] = o;
    (*jobs)[key] = std::move(job);
  }
  for (auto it = assumed_.begin(); it != assumed_.end();) {
    it = seen.count(it->first) ? std::next(it) : assumed_.erase(it);
  }
  return snap;
}

ReconcileResult TrainingJobReconciler::Schedule() {
  ReconcileResult result;
  auto& m = OperatorMetrics::Get();
  auto start = std::chrono::steady_clock::now();
  std::map<std::string, kube::Object> objects;
  std::map<std::string, api::TrainingJob> jobs;
  std::map<std::string, std::string> invalid_queues;
  scheduler::Snapshot snap = BuildSnapshot(&objects, &jobs, &invalid_queues);
  scheduler::SchedulingResult decision = scheduler::Schedule(snap);
  m.scheduling_pass->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  const std::string now = NowText();
  auto note_error = [&](const absl::Status& s) {
    if (!s.ok() && result.error.ok()) result.error = s;
  };

  for (const auto& p : decision.preemptions) {
    auto it = jobs.find(p.victim);
    if (it == jobs.end()) continue;
    api::TrainingJob& victim = it->second;
    const json& obj = *objects[p.victim];
    Pods pods = PodsOf(victim, kube::UidOf(obj));
    note_error(DeletePods(pods.all, options_.build.termination_grace_s));
    api::TrainingJobStatus st = victim.status;
    st.phase = api::kPhaseQueued;
    st.placement.clear();
    st.workers.running = st.workers.ready = 0;
    api::SetCondition(&st.conditions, api::kConditionPreempted, "True", p.reason, p.message, now);
    api::SetCondition(&st.conditions, api::kConditionAdmitted, "False", "Preempted", p.message, now);
    api::SetCondition(&st.conditions, api::kConditionRunning, "False", "Preempted", p.message, now);
    api::SetCondition(&st.conditions, api::kConditionQueued, "True", "Preempted",
                      absl::StrCat("preempted for ", p.preemptor, "; will resume from its checkpoint"), now);
    auto w = api_->UpdateStatus(kube::kTrainingJobs, kube::StatusUpdateBody(obj, api::StatusToJson(st)));
    note_error(w.status());
    if (w.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      assumed_[p.victim] = {{}, kube::ResourceVersionOf(*w)};
    }
    Event(obj, "Warning", "Preempted",
          absl::StrCat(p.message, "; workers get ", options_.build.termination_grace_s, "s to checkpoint"));
    m.preemptions.WithLabels({victim.spec.queue, p.reason})->Inc();
  }

  // The pass's status writes are independent of each other: issued at once, then waited for
  // together (one pass used to take pending-jobs x request latency).
  kube::CallGroup writes(options_.requests);
  for (const auto& a : decision.admissions) {
    auto it = jobs.find(a.job);
    if (it == jobs.end()) continue;
    api::TrainingJob& job = it->second;
    const json& obj = *objects[a.job];
    api::TrainingJobStatus st = job.status;
    st.phase = api::kPhaseAdmitted;
    st.placement = a.placement;
    st.pending_reason.clear();
    st.queue_position = 0;
    st.workers.desired = a.workers;
    std::set<std::string> nodes(a.placement.begin(), a.placement.end());
    std::string message = absl::StrCat("admitted by queue ", job.spec.queue, ": ", a.workers, " workers on ",
                                       absl::StrJoin(nodes, ","));
    api::SetCondition(&st.conditions, api::kConditionAdmitted, "True", "Admitted", message, now);
    api::SetCondition(&st.conditions, api::kConditionQueued, "False", "Admitted", message, now);
    if (api::FindCondition(st.conditions, api::kConditionPreempted) != nullptr) {
      api::SetCondition(&st.conditions, api::kConditionPreempted, "False", "Readmitted", message, now);
    }
    writes.Add([this, &m, &obj, &a, queue = job.spec.queue, message, st = std::move(st)]() -> absl::Status {
      auto w = api_->UpdateStatus(kube::kTrainingJobs, kube::StatusUpdateBody(obj, api::StatusToJson(st)));
      if (!w.ok()) return w.status();
      {
        std::lock_guard<std::mutex> lock(mu_);
        assumed_[a.job] = {a.placement, kube::ResourceVersionOf(*w)};
      }
      Event(obj, "Normal", "Admitted", message);
      m.admissions.WithLabels({queue})->Inc();
      return absl::OkStatus();
    });
  }

  for (const auto& p : decision.pending) {
    auto it = jobs.find(p.job);
    if (it == jobs.end() || !it->second.status.placement.empty()) continue;
    api::TrainingJob& job = it->second;
    api::TrainingJobStatus st = job.status;
    std::string reason = p.reason, message = p.message;
    if (auto bad = invalid_queues.find(job.spec.queue); reason == "NoSuchQueue" && bad != invalid_queues.end()) {
      // It exists but cannot be used: say why instead of "does not exist".
      reason = "InvalidQueue";
      message = absl::StrCat("queue ", job.spec.queue, " is invalid: ", bad->second);
    }
    st.pending_reason = message;
    st.queue_position = p.position;
    bool new_reason = api::SetCondition(&st.conditions, api::kConditionQueued, "True", reason, message, now);
    if (st == job.status) continue;
    const json& obj = *objects[p.job];
    PendingWritten written{kube::ResourceVersionOf(obj), reason, message, p.position};
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto w = pending_written_.find(p.job);
      if (w != pending_written_.end() && w->second.cached_rv == written.cached_rv) {
        // Written (or refused as stale) against this very version: the server holds a newer
        // one, so a write now would be a certain 409. A changed reason waits for the cache.
        continue;
      }
    }
    const api::Condition* before = api::FindCondition(job.status.conditions, api::kConditionQueued);
    const bool announce = new_reason && (before == nullptr || before->reason != reason);
    writes.Add([this, &obj, announce, reason, message, key = p.job, written = std::move(written), st = std::move(st)] {
      absl::Status s =
          api_->UpdateStatus(kube::kTrainingJobs, kube::StatusUpdateBody(obj, api::StatusToJson(st))).status();
      if (s.ok() || kube::IsConflict(s)) {  // a conflict: the cache will show the newer version
        std::lock_guard<std::mutex> lock(mu_);
        pending_written_[key] = written;
      }
      if (announce) Event(obj, reason == "InvalidQueue" ? "Warning" : "Normal", reason, message);
      return s;
    });
  }
  {
    std::set<std::string> waiting;
    for (const auto& p : decision.pending) waiting.insert(p.job);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = pending_written_.begin(); it != pending_written_.end();) {
      it = waiting.count(it->first) ? std::next(it) : pending_written_.erase(it);
    }
  }

  // Queue status (admitted/pending jobs, usage, borrowed, share): written when it changed.
  for (const auto& q : decision.queues) {
    kube::Object qobj = cache_->Get(kube::kQueues, q.name);
    if (qobj == nullptr) continue;
    auto parsed = api::QueueFromJson(*qobj);
    if (!parsed.ok()) continue;
    api::QueueStatus st = parsed->status;
    st.admitted_jobs = q.admitted;
    st.pending_jobs = q.pending;
    st.usage = scheduler::ToResourceList(q.usage);
    st.borrowed = scheduler::ToResourceList(q.borrowed);
    st.weighted_share = std::round(q.weighted_share * 1e6) / 1e6;  // no rewrite for float noise
    if (st == parsed->status) continue;
    api::Queue updated_queue = *parsed;
    updated_queue.status = st;
    json updated = kube::StatusUpdateBody(*qobj, api::ToJson(updated_queue).value("status", json::object()));
    writes.Add([this, updated = std::move(updated)] { return api_->UpdateStatus(kube::kQueues, updated).status(); });
  }
  note_error(writes.Wait());

  // Metrics: queues and jobs by phase.
  for (const auto& q : decision.queues) {
    for (int i = 0; i < 3; ++i) {
      double scale = i == 0 ? 1e-3 : 1.0;  // cpu in cores
      m.queue_usage.WithLabels({q.name, scheduler::kResourceNames[i]})
          ->Set(static_cast<double>(scheduler::Component(q.usage, i)) * scale);
      m.queue_borrowed.WithLabels({q.name, scheduler::kResourceNames[i]})
          ->Set(static_cast<double>(scheduler::Component(q.borrowed, i)) * scale);
    }
    m.queue_share.WithLabels({q.name})->Set(q.weighted_share);
    m.queue_pending.WithLabels({q.name})->Set(q.pending);
  }
  for (const auto& q : snap.queues) {
    for (int i = 0; i < 3; ++i) {
      double scale = i == 0 ? 1e-3 : 1.0;
      m.queue_guarantee.WithLabels({q.name, scheduler::kResourceNames[i]})
          ->Set(static_cast<double>(scheduler::Component(q.guaranteed, i)) * scale);
    }
  }
  std::map<std::pair<std::string, std::string>, int> by_phase;
  std::set<std::vector<std::string>> worker_series, queued_series;
  for (const auto& o : cache_->List(kube::kTrainingJobs)) {
    const json* phase = kube::FieldAt(*o, "status.phase");
    const json* queue = kube::FieldAt(*o, "spec.queue");
    std::string ph = phase != nullptr && phase->is_string() ? phase->get<std::string>() : "Pending";
    std::string qu = queue != nullptr && queue->is_string() ? queue->get<std::string>() : api::kDefaultQueue;
    by_phase[{ph, qu}]++;
    // Per-job series for the alerts (gang partly running, pending too long by reason).
    const std::string ns = kube::NamespaceOf(*o), name = kube::NameOf(*o);
    for (const char* state : {"desired", "running", "ready"}) {
      const json* v = kube::FieldAt(*o, absl::StrCat("status.workers.", state));
      std::vector<std::string> labels{ns, name, qu, state};
      m.job_workers.WithLabels(labels)->Set(v != nullptr && v->is_number() ? v->get<double>() : 0.0);
      worker_series.insert(std::move(labels));
    }
    const json* conditions = kube::FieldAt(*o, "status.conditions");
    if (ph != api::kPhaseQueued || conditions == nullptr || !conditions->is_array()) continue;
    for (const json& c : *conditions) {
      if (c.value("type", "") != api::kConditionQueued || c.value("status", "") != "True") continue;
      auto since = kube::ParseRfc3339(c.value("lastTransitionTime", ""));
      std::vector<std::string> labels{ns, name, qu, c.value("reason", "Unknown")};
      m.job_queued_since.WithLabels(labels)->Set(since.ok() ? *since : Now());
      queued_series.insert(std::move(labels));
    }
  }
  {
    static std::mutex series_mu;
    static std::set<std::vector<std::string>> last_workers, last_queued;
    std::lock_guard<std::mutex> lock(series_mu);
    for (const auto& l : last_workers) if (!worker_series.count(l)) m.job_workers.Remove(l);
    for (const auto& l : last_queued) if (!queued_series.count(l)) m.job_queued_since.Remove(l);
    last_workers = std::move(worker_series);
    last_queued = std::move(queued_series);
  }
  {
    static std::mutex seen_mu;
    static std::set<std::pair<std::string, std::string>> seen;
    std::lock_guard<std::mutex> lock(seen_mu);
    for (const auto& k : seen) {
      if (!by_phase.count(k)) m.jobs.WithLabels({k.first, k.second})->Set(0);
    }
    for (const auto& [k, n] : by_phase) {
      m.jobs.WithLabels({k.first, k.second})->Set(n);
      seen.insert(k);
    }
  }
  // Admitted jobs create their workers in their own reconcile; pending ones retry periodically.
  result.requeue_after_s = options_.schedule_interval_s;
  return result;
}

}  // namespace tandem::controller
