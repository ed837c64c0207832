#include "operator/controller/sweep_reconciler.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "operator/controller/sweep_metrics.h"
#include "operator/kube/api_error.h"
#include "sweep/planner.h"
#include "trainer/model/trainer_spec.h"

namespace tandem::controller {
namespace {

using json = nlohmann::json;

// The trial's phase from its TrainingJob's; a trial the sweep stopped stays Stopped.
std::string TrialPhaseOf(const api::TrainingJob& job, const std::string& previous) {
  if (previous == api::kTrialStopped) return previous;
  const std::string& p = job.status.phase;
  if (p == api::kPhaseSucceeded) return api::kTrialSucceeded;
  if (p == api::kPhaseFailed) return api::kTrialFailed;
  if (p == api::kPhaseRunning || p == api::kPhaseRestarting) return api::kTrialRunning;
  return api::kTrialPending;  // "", Pending, Queued, Admitted, Suspended (by someone else)
}

// An integer annotation of the job (0: none).
int64_t AnnotationInt(const api::TrainingJob& job, const char* name) {
  auto a = job.metadata.annotations.find(name);
  int64_t v = 0;
  if (a == job.metadata.annotations.end() || !absl::SimpleAtoi(a->second, &v)) return 0;
  return v;
}

std::string AnnotationString(const api::TrainingJob& job, const char* name) {
  auto a = job.metadata.annotations.find(name);
  return a == job.metadata.annotations.end() ? "" : a->second;
}

std::string FailureOf(const api::TrainingJob& job) {
  const api::Condition* c = api::FindCondition(job.status.conditions, api::kConditionFailed);
  if (c == nullptr) return "the trial's TrainingJob failed";
  return c->message.empty() ? c->reason : absl::StrCat(c->reason, ": ", c->message);
}

const char* EventReasonOf(const std::string& phase) {
  if (phase == api::kTrialRunning) return "TrialRunning";
  if (phase == api::kTrialSucceeded) return "TrialSucceeded";
  if (phase == api::kTrialFailed) return "TrialFailed";
  if (phase == api::kTrialStopped) return "TrialStopped";
  if (phase == api::kTrialPaused) return "TrialPaused";
  return "TrialPending";
}

}  // namespace

std::optional<api::MetricPoint> TrialObjective(const api::TrainingJob& job, const std::string& metric) {
  if (!job.status.progress || job.status.progress->test_pass <= 0) return std::nullopt;
  const api::Progress& p = *job.status.progress;
  if (metric == api::kMetricTestLoss) return api::MetricPoint{p.test_pass, p.test_loss};
  if (metric == api::kMetricTestAuc) {
    if (!p.test_auc) return std::nullopt;
    return api::MetricPoint{p.test_pass, *p.test_auc};
  }
  return api::MetricPoint{p.test_pass, p.test_accuracy};
}

SweepReconciler::SweepReconciler(kube::KubeApi* api, const ClusterCache* cache, kube::EventRecorder* events,
                                 SweepReconcilerOptions options)
    : api_(api),
      cache_(cache),
      events_(events),
      options_(std::move(options)),
      validators_(options_.validators ? *options_.validators : trainer::TrainerSectionValidators()) {}

std::string SweepReconciler::SweepKeyOf(const json& job) {
  const json* sweep = kube::FieldAt(job, "metadata.labels");
  if (sweep == nullptr || !sweep->is_object() || !sweep->contains(api::kSweepLabel)) return "";
  const json& name = (*sweep)[api::kSweepLabel];
  if (!name.is_string() || name.get<std::string>().empty()) return "";
  return absl::StrCat(kube::NamespaceOf(job), "/", name.get<std::string>());
}

std::string SweepReconciler::NowText() const {
  if (options_.now) return kube::FormatRfc3339(options_.now());
  return kube::NowRfc3339();
}

void SweepReconciler::Event(const json& obj, const std::string& type, const std::string& reason,
                            const std::string& message) {
  if (events_ != nullptr) events_->Record(obj, type, reason, message);
}

ReconcileResult SweepReconciler::Reconcile(const std::string& key) {
  ReconcileResult result;
  kube::Object obj = cache_->Get(kube::kSweeps, key);
  SweepMetrics& metrics = SweepMetrics::Get();
  const kube::ObjectKey k = kube::ObjectKey::Parse(key);
  if (obj == nullptr) {
    metrics.Forget(k.ns, k.name);
    return result;  // deleted: owner references take the trials with it
  }
  if (kube::FieldAt(*obj, "metadata.deletionTimestamp") != nullptr) return result;
  const std::string now = NowText();

  api::FieldErrors errors;
  api::Sweep sweep = api::ParseSweep(*obj, validators_, &errors);
  api::SweepStatus st = sweep.status;
  // The CPU charged to the trials moves at every look; without a budget it is written only with
  // some other change (the next look charges from the last written time, so nothing is lost).
  auto without_charges = [](api::SweepStatus s) {
    s.cpu_accounted_time.clear();
    for (api::TrialStatus& t : s.trials) t.cpu_seconds = 0;
    return s;
  };
  auto write = [&]() {
    if (st == sweep.status) return;
    if (sweep.spec.budget.cpu_seconds <= 0 && without_charges(st) == without_charges(sweep.status)) return;
    json updated = *obj;
    updated["status"] = api::SweepStatusToJson(st);
    if (auto w = api_->UpdateStatus(kube::kSweeps, updated); !w.ok() && result.error.ok()) result.error = w.status();
  };
  if (!errors.empty()) {
    // A spec error is permanent until the spec changes: say so once and stop.
    std::string message = errors[0].ToString();
    if (errors.size() > 1) absl::StrAppend(&message, " (and ", errors.size() - 1, " more)");
    if (st.phase != api::kSweepFailed) Event(*obj, "Warning", "InvalidSpec", message);
    st.phase = api::kSweepFailed;
    api::SetCondition(&st.conditions, api::kConditionFailed, "True", "InvalidSpec", message, now);
    st.observed_generation = sweep.metadata.generation;
    write();
    metrics.Observe(sweep, st);  // its phase (TandemSweepFailed), trials and CPU as they are
    return result;
  }
  const bool finished = st.phase == api::kSweepSucceeded || st.phase == api::kSweepFailed;
  if (finished && st.observed_generation == sweep.metadata.generation) {
    metrics.Observe(sweep, st);
    return result;
  }

  // The trial jobs of this sweep (ours: controlled by this incarnation).
  const std::string uid = kube::UidOf(*obj);
  std::map<int64_t, api::TrainingJob> jobs;
  for (const kube::Object& j : cache_->List(kube::kTrainingJobs)) {
    if (kube::NamespaceOf(*j) != sweep.metadata.namespace_ || SweepKeyOf(*j) != key) continue;
    if (kube::ControllerUidOf(*j) != uid) continue;
    int64_t index = -1;
    const json* label = kube::FieldAt(*j, "metadata.labels");
    if (label != nullptr && label->contains(api::kTrialIndexLabel) && (*label)[api::kTrialIndexLabel].is_string())
      (void)absl::SimpleAtoi((*label)[api::kTrialIndexLabel].get<std::string>(), &index);
    if (index < 0) continue;
    api::FieldErrors ignored;
    jobs[index] = api::ParseTrainingJob(*j, api::SectionValidators{}, &ignored);
  }

  // The trials: the status' records, plus any job whose record was lost (adopted).
  std::map<int64_t, api::TrialStatus> by_index;
  for (const api::TrialStatus& t : st.trials) by_index[t.index] = t;
  for (const auto& [index, job] : jobs) {
    if (by_index.count(index)) continue;
    api::TrialStatus t;
    t.index = index;
    t.name = job.metadata.name;
    auto a = job.metadata.annotations.find(api::kTrialParametersAnnotation);
    if (a != job.metadata.annotations.end()) {
      json p = json::parse(a->second, nullptr, /*allow_exceptions=*/false);
      if (p.is_object()) t.parameters = p;
    }
    by_index[index] = t;
  }
  std::vector<api::TrialStatus> trials;
  for (int64_t i = 0; !by_index.empty() && i <= by_index.rbegin()->first; ++i) {
    auto it = by_index.find(i);
    if (it != by_index.end()) {
      trials.push_back(it->second);
      continue;
    }
    api::TrialStatus lost;  // created, then its record and its job were both lost
    lost.index = i;
    lost.name = absl::StrCat(sweep.metadata.name, "-", i);
    lost.phase = api::kTrialFailed;
    lost.reason = "the trial's TrainingJob and its record are gone";
    trials.push_back(lost);
  }

  // Refresh each trial from its job.
  const std::string metric = sweep.spec.objective.metric;
  for (api::TrialStatus& t : trials) {
    const std::string before = t.phase;
    auto j = jobs.find(t.index);
    if (j == jobs.end() && !sweep::IsFinished(t)) {
      // Not in the cache: just created (the cache lags behind the create), or deleted. Ask.
      absl::StatusOr<json> live = api_->Get(kube::kTrainingJobs, sweep.metadata.namespace_, t.name);
      if (live.ok() && kube::ControllerUidOf(*live) == uid) {
        api::FieldErrors ignored;
        j = jobs.emplace(t.index, api::ParseTrainingJob(*live, api::SectionValidators{}, &ignored)).first;
      } else if (!live.ok() && !kube::IsNotFound(live.status())) {
        if (result.error.ok()) result.error = live.status();
        continue;
      }
    }
    if (j == jobs.end()) {
      if (!sweep::IsFinished(t)) {
        t.phase = api::kTrialFailed;
        t.reason = "the trial's TrainingJob was deleted";
      }
    } else {
      if (std::optional<api::MetricPoint> v = TrialObjective(j->second, metric)) sweep::RecordValue(&t, v->pass, v->value);
      // Its cost for the cost-aware sampler (docs/sweeps.md): worker-seconds per training example,
      // the trainers' own throughput (the newest measured; wall time, the only cost a pod reports).
      if (const std::optional<api::Progress>& p = j->second.status.progress; p && p->examples_per_sec > 0) {
        const size_t workers = std::max<size_t>(1, j->second.status.placement.size());
        t.cost = static_cast<double>(workers) / p->examples_per_sec;
      }
      // ASHA: the job's annotations say whether it waits at a rung (Paused; unless it finished
      // before the suspension reached it) and which rung it was promoted from.
      const int64_t paused_at = AnnotationInt(j->second, api::kTrialPausedAtAnnotation);
      if (const int64_t from = AnnotationInt(j->second, api::kTrialPromotedFromAnnotation); from > 0)
        t.promoted_from = from;
      if (t.phase != api::kTrialStopped) t.paused_at = paused_at;
      const std::string phase = TrialPhaseOf(j->second, t.phase == api::kTrialPaused ? "" : t.phase);
      t.phase = paused_at > 0 && t.phase != api::kTrialStopped && phase != api::kTrialSucceeded &&
                        phase != api::kTrialFailed
                    ? api::kTrialPaused
                    : phase;
      if (t.phase == api::kTrialFailed && t.reason.empty()) t.reason = FailureOf(j->second);
      // A stop or a pause whose status write was lost: the job's annotations still say it.
      if (const std::string why = AnnotationString(j->second, api::kTrialStoppedAnnotation);
          !why.empty() && t.phase != api::kTrialSucceeded && t.phase != api::kTrialFailed) {
        t.phase = api::kTrialStopped;
        if (t.reason.empty()) t.reason = why;
      }
      if (t.phase == api::kTrialPaused && t.reason.empty())
        t.reason = absl::StrCat(sweep.spec.early_stopping.policy, ": paused at rung ", t.paused_at);
    }
    if (t.phase != before && before != "" && t.phase != api::kTrialPaused && before != api::kTrialPaused) {
      Event(*obj, t.phase == api::kTrialFailed ? "Warning" : "Normal", EventReasonOf(t.phase),
            absl::StrCat("trial ", t.name, " ", t.phase,
                         t.objective ? absl::StrFormat(": %s %.4f after pass %d", metric, *t.objective,
                                                       t.intermediate.back().pass)
                                     : "",
                         t.reason.empty() ? "" : absl::StrCat(" (", t.reason, ")")));
    }
  }

  // The template's passes (defaulted), for the early-stopping rungs.
  api::FieldErrors template_errors;
  const api::TrainingJob tmpl = api::ParseTrainingJob(
      {{"apiVersion", api::kApiVersion}, {"kind", api::kTrainingJobKind}, {"metadata", {{"name", "t"}}},
       {"spec", sweep.spec.trial_template.spec}},
      api::SectionValidators{}, &template_errors);
  // spec.budget's CPU seconds on a cluster: what the trials reserved. Each trial Running with
  // workers placed is charged its workers' CPU requests (trainer, and pserver where the job has
  // one: api::WorkerRequests) times the seconds since the last charge (status.cpuAccountedTime).
  {
    const double now_s = options_.now ? options_.now() : absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
    double since = now_s;
    if (absl::StatusOr<double> t0 = kube::ParseRfc3339(st.cpu_accounted_time); t0.ok()) since = std::min(*t0, now_s);
    for (api::TrialStatus& t : trials) {
      auto j = jobs.find(t.index);
      if (t.phase != api::kTrialRunning || j == jobs.end() || j->second.status.placement.empty()) continue;
      const api::ResourceList per_worker = api::WorkerRequests(j->second.spec);
      auto cpu = per_worker.find("cpu");
      if (cpu == per_worker.end()) continue;
      t.cpu_seconds += static_cast<double>(cpu->second.milli()) / 1000.0 *
                       static_cast<double>(j->second.status.placement.size()) * (now_s - since);
    }
    st.cpu_accounted_time = kube::FormatRfc3339(now_s, /*micro=*/true);
  }

  std::unique_ptr<sweep::Sampler> sampler = sweep::NewSampler(sweep.spec);
  sweep::Plan plan = sweep::PlanSweep(sweep.spec, tmpl.spec.passes, trials, *sampler, absl::StrCat(sweep.metadata.name, "-"));

  // Patched whatever the cache shows (a pause and a promotion in two quick passes would otherwise
  // see the cache's older value and skip the second patch); a merge patch to the same value is a
  // no-op.
  // `annotations`: the ASHA annotations, written in the same patch.
  auto set_suspend = [&](const api::TrialStatus& t, bool suspend, json annotations = json::object()) -> bool {
    auto job = jobs.find(t.index);
    if (job == jobs.end()) return true;
    json patch = {{"spec", {{"suspend", suspend}}}};
    if (!annotations.empty()) patch["metadata"]["annotations"] = annotations;
    absl::Status s =
        api_->Patch(kube::kTrainingJobs, sweep.metadata.namespace_, t.name, kube::PatchType::kMerge, patch).status();
    if (!s.ok() && !kube::IsNotFound(s)) {
      result.error = s;
      return false;
    }
    return true;
  };

  // ASHA: pause a trial at its rung (suspend its job: its workers checkpoint and go, its claim and
  // checkpoints stay), and promote one (unsuspend: it is queued again and its trainers resume
  // from the checkpoint). A pass whose status write is lost repeats them harmlessly (a patch to
  // the value the job already has changes nothing).
  std::vector<sweep::RungStep> paused, resumed;
  for (const sweep::RungStep& p : plan.pause) {
    if (!set_suspend(trials[p.trial], true, {{api::kTrialPausedAtAnnotation, absl::StrCat(p.rung)}})) break;
    paused.push_back(p);
    Event(*obj, "Normal", "TrialPaused", absl::StrCat("trial ", trials[p.trial].name, " ", p.reason));
  }
  for (const sweep::RungStep& r : plan.resume) {
    if (!result.error.ok() ||
        !set_suspend(trials[r.trial], false,
                     {{api::kTrialPausedAtAnnotation, nullptr}, {api::kTrialPromotedFromAnnotation, absl::StrCat(r.rung)}}))
      break;
    resumed.push_back(r);
    Event(*obj, "Normal", "TrialResumed",
          absl::StrCat("trial ", trials[r.trial].name, " promoted", r.running ? " (goes on): " : ": ", r.reason));
  }
  sweep::Plan done;
  done.pause = paused;
  done.resume = resumed;
  sweep::ApplyRungSteps(done, &trials);
  if (!result.error.ok()) plan.start.clear();  // the next pass decides again

  // Stop early: suspend the trial (its workers go; its record and checkpoints stay).
  for (const auto& [i, why] : plan.stop) {
    if (!result.error.ok()) break;
    api::TrialStatus& t = trials[i];
    auto job = jobs.find(t.index);
    // A trial suspended by an earlier pass whose status write was lost is not stopped (or
    // counted) twice; a Paused one is already suspended and ends Stopped now.
    const bool already = job != jobs.end() &&
                         (!AnnotationString(job->second, api::kTrialStoppedAnnotation).empty() ||
                          (job->second.spec.suspend && t.phase != api::kTrialPaused));
    if (!already && job != jobs.end()) {
      if (!set_suspend(t, true, {{api::kTrialStoppedAnnotation, why}})) break;
      // A plan that ends the sweep for its budget stops trials for that reason, whatever the policy.
      metrics.stopped.WithLabels({plan.reason == "BudgetSpent" ? std::string("budget")
                                                               : sweep.spec.early_stopping.policy})->Inc();
      Event(*obj, "Normal", "TrialStopped", absl::StrCat("trial ", t.name, " stopped early: ", why));
    }
    t.phase = api::kTrialStopped;
    t.reason = why;
  }

  // Start: create each new trial as a TrainingJob owned by the sweep.
  for (api::TrialStatus& t : plan.start) {
    if (!result.error.ok()) break;
    absl::StatusOr<json> job = api::BuildTrialJob(sweep, t.parameters, t.name);
    if (!job.ok()) {
      result.error = job.status();
      break;
    }
    (*job)["metadata"]["labels"][api::kTrialIndexLabel] = absl::StrCat(t.index);
    (*job)["metadata"]["annotations"][api::kTrialParametersAnnotation] = t.parameters.dump();
    (*job)["metadata"]["ownerReferences"] = json::array({kube::ControllerRef(*obj)});
    absl::StatusOr<json> created = api_->Create(kube::kTrainingJobs, sweep.metadata.namespace_, *job);
    if (!created.ok() && kube::IsAlreadyExists(created.status())) {
      // Created by an earlier pass whose record was lost, and not yet in the cache: the retry
      // adopts it from its annotation once the cache shows it. A TrainingJob of that name that is
      // not this sweep's trial is never shown (the cache holds trials only) and blocks the sweep,
      // with this message, until it is removed.
      const std::string message = absl::StrCat("TrainingJob ", t.name, " already exists; waiting to adopt it as trial ",
                                               t.index, " (if it is not this sweep's, remove it)");
      api::SetCondition(&st.conditions, api::kConditionRunning, "False", "TrialNameTaken", message, now);
      result.error = absl::AlreadyExistsError(message);
      break;
    }
    if (!created.ok()) {
      result.error = created.status();
      break;
    }
    metrics.created.Get()->Inc();
    Event(*obj, "Normal", "TrialCreated", absl::StrCat("trial ", t.name, ": ", t.parameters.dump()));
    trials.push_back(t);
  }

  // Status: one write per pass.
  st.trials = trials;
  st.trial_counts = sweep::CountTrials(trials);
  const std::optional<api::BestTrial> best = sweep::FindBestTrial(sweep.spec, trials);
  if (best && (!st.best_trial || st.best_trial->name != best->name))
    Event(*obj, "Normal", "NewBestTrial",
          absl::StrFormat("%s: %s %.4f after pass %d", best->name, metric, best->objective, best->pass));
  st.best_trial = best;
  if (st.start_time.empty() && !trials.empty()) st.start_time = now;
  st.observed_generation = sweep.metadata.generation;
  if (result.error.ok()) {
    if (st.phase != plan.phase && plan.phase != api::kSweepRunning) {
      Event(*obj, plan.phase == api::kSweepFailed ? "Warning" : "Normal", plan.reason, plan.message);
      st.completion_time = now;
    }
    st.phase = plan.phase;
    const bool running = plan.phase == api::kSweepRunning;
    api::SetCondition(&st.conditions, api::kConditionRunning, running ? "True" : "False", plan.reason, plan.message, now);
    if (!running)
      api::SetCondition(&st.conditions, plan.phase == api::kSweepSucceeded ? api::kConditionSucceeded : api::kConditionFailed,
                        "True", plan.reason, plan.message, now);
  }
  write();
  metrics.Observe(sweep, st);
  // A budget is charged while trials run, whether or not their jobs change meanwhile.
  if (sweep.spec.budget.cpu_seconds > 0 && st.phase == api::kSweepRunning && st.trial_counts.running > 0 &&
      result.error.ok())
    result.requeue_after_s = 5;
  return result;
}

}  // namespace tandem::controller
