// The scheduling pass of the TrainingJob reconciler: a snapshot of the cache (nodes, other pods,
// queues, jobs and the admissions written but not yet seen), one fair-share decision by the pure
// scheduler (operator/scheduler), then the API writes that carry it out: preemptions, admissions,
// pending reasons and queue status.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <unordered_set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "api/queue.h"
#include "operator/controller/elastic_state.h"
#include "operator/controller/object_state.h"
#include "operator/controller/operator_metrics.h"
#include "operator/controller/trainingjob_reconciler.h"
#include "operator/kube/api_error.h"
#include "operator/scheduler/resources.h"
#include "operator/scheduler/snapshot.h"

namespace tandem::controller {

using nlohmann::json;

namespace {

// The scheduling gauges: per queue (usage, borrowed, share, pending, guarantees) and per job
// (workers, how long queued and why), and jobs by phase; series of jobs that are gone are removed.
void ExportSchedulingMetrics(const scheduler::SchedulingResult& decision,
                             const scheduler::Snapshot& snap,
                             const std::vector<kube::Object>& job_objects, double now) {
  auto& m = OperatorMetrics::Get();
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
  for (const auto& o : job_objects) {
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
      m.job_queued_since.WithLabels(labels)->Set(since.ok() ? *since : now);
      queued_series.insert(std::move(labels));
    }
  }
  {
    static absl::Mutex series_mu;
    static std::set<std::vector<std::string>> last_workers, last_queued;
    absl::MutexLock lock(&series_mu);
    for (const auto& l : last_workers) if (!worker_series.count(l)) m.job_workers.Remove(l);
    for (const auto& l : last_queued) if (!queued_series.count(l)) m.job_queued_since.Remove(l);
    last_workers = std::move(worker_series);
    last_queued = std::move(queued_series);
  }
  {
    static absl::Mutex seen_mu;
    static std::set<std::pair<std::string, std::string>> seen;
    absl::MutexLock lock(&seen_mu);
    for (const auto& k : seen) {
      if (!by_phase.count(k)) m.jobs.WithLabels({k.first, k.second})->Set(0);
    }
    for (const auto& [k, n] : by_phase) {
      m.jobs.WithLabels({k.first, k.second})->Set(n);
      seen.insert(k);
    }
  }
}

}  // namespace

scheduler::Snapshot TrainingJobReconciler::BuildSnapshot(std::map<std::string, kube::Object>* job_objects,
                                                         std::map<std::string, std::shared_ptr<const ParsedJob>>* jobs,
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
  std::map<std::string, std::vector<std::pair<int, std::string>>> job_pod_slots;  // job uid -> (slot, node)
  for (const auto& p : cache_->List(kube::kPods)) {
    std::string phase = PodPhase(*p);
    if (phase == "Succeeded" || phase == "Failed") continue;
    const json* node = kube::FieldAt(*p, "spec.nodeName");
    if (node == nullptr || !node->is_string()) continue;
    if (!OwnerKey(*p).empty()) {
      job_pod_nodes[kube::ControllerUidOf(*p)].push_back(node->get<std::string>());
      int slot = -1;
      if (const json* labels = kube::FieldAt(*p, "metadata.labels"); labels != nullptr && labels->is_object()) {
        auto it = labels->find(kRankLabel);
        if (it != labels->end() && it->is_string()) absl::SimpleAtoi(it->get<std::string>(), &slot);
      }
      job_pod_slots[kube::ControllerUidOf(*p)].push_back({slot, node->get<std::string>()});
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
  std::vector<kube::Object> job_list = cache_->List(kube::kTrainingJobs);
  // Parsed once per resourceVersion (parsed_job_cache.h), outside the lock.
  std::vector<std::shared_ptr<const ParsedJob>> parsed;
  parsed.reserve(job_list.size());
  std::unordered_set<std::string> uids;
  for (const auto& o : job_list) {
    parsed.push_back(parsed_jobs_.Get(o, validators_));
    uids.insert(kube::UidOf(*o));
  }
  parsed_jobs_.Retain(uids);  // deleted jobs leave the cache
  absl::MutexLock lock(&mu_);
  std::set<std::string> seen;
  for (size_t i = 0; i < job_list.size(); ++i) {
    const kube::Object& o = job_list[i];
    if (!parsed[i]->errors.empty()) continue;
    const api::TrainingJob& job = parsed[i]->job;
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
                     (assumed->second.resize ? kube::ResourceVersionOf(*o) != assumed->second.base_rv
                      : (!assumed->second.placement.empty() && !job.status.placement.empty()) ||
                            (assumed->second.placement.empty() && job.status.placement.empty() && Placed(phase) == false));
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
    if (info.elastic && !info.placement.empty() && !info.terminating) {
      // A resize in flight (written, not yet seen; a grow not yet published; workers that left
      // still running) holds further decisions; so does the cool-down, for grows.
      info.resizing = (assumed != assumed_.end() && assumed->second.resize) || GrowPending(job.status) ||
                      !job.status.elastic.has_value();
      if (assumed != assumed_.end() && assumed->second.resize) {
        // A shrink written but not seen yet: the workers it removes still hold their nodes.
        for (size_t r = assumed->second.placement.size(); r < job.status.placement.size(); ++r)
          info.releasing.push_back(job.status.placement[r]);
      }
      const std::vector<int> slots = WorkerSlots(job);
      if (auto pods = job_pod_slots.find(kube::UidOf(*o)); pods != job_pod_slots.end()) {
        for (const auto& [slot, node] : pods->second) {
          if (std::find(slots.begin(), slots.end(), slot) != slots.end()) continue;
          info.releasing.push_back(node);
          info.resizing = true;
        }
      }
      info.cooling_down = CoolingDown(job.status, Now(), options_.elastic_cooldown_s);
    }
    snap.jobs.push_back(info);
    (*job_objects)[key] = o;
    (*jobs)[key] = parsed[i];
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
  std::map<std::string, std::shared_ptr<const ParsedJob>> jobs;
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
    const api::TrainingJob& victim = it->second->job;
    const json& obj = *objects[p.victim];
    Pods pods = PodsOf(victim, kube::UidOf(obj));
    note_error(DeletePods(pods.all, options_.build.termination_grace_s));
    api::TrainingJobStatus st = victim.status;
    st.phase = api::kPhaseQueued;
    st.placement.clear();
    if (st.elastic) {
      st.elastic->members.clear();
      st.elastic->workers = 0;
    }
    st.workers.running = st.workers.ready = 0;
    api::SetCondition(&st.conditions, api::kConditionPreempted, "True", p.reason, p.message, now);
    api::SetCondition(&st.conditions, api::kConditionAdmitted, "False", "Preempted", p.message, now);
    api::SetCondition(&st.conditions, api::kConditionRunning, "False", "Preempted", p.message, now);
    api::SetCondition(&st.conditions, api::kConditionQueued, "True", "Preempted",
                      absl::StrCat("preempted for ", p.preemptor, "; will resume from its checkpoint"), now);
    auto w = api_->UpdateStatus(kube::kTrainingJobs, kube::StatusUpdateBody(obj, api::StatusToJson(st)));
    note_error(w.status());
    if (w.ok()) {
      absl::MutexLock lock(&mu_);
      assumed_[p.victim] = {{}, kube::ResourceVersionOf(*w)};
    }
    Event(obj, "Warning", "Preempted",
          absl::StrCat(p.message, "; workers get ", options_.build.termination_grace_s, "s to checkpoint"));
    m.preemptions.WithLabels({victim.spec.queue, p.reason})->Inc();
  }

  // The pass's status writes are independent of each other: issued at once, then waited for
  // together (one pass used to take pending-jobs x request latency).
  kube::CallGroup writes(options_.requests);
  // Elastic resizes. A shrink is published at once (the trainers leave at their next step
  // boundary; their pods are deleted once they have exited); a grow plans new members, whose
  // pods the job's reconcile creates, and is published once they run (PublishGrow).
  for (const auto& r : decision.resizes) {
    auto it = jobs.find(r.job);
    if (it == jobs.end() || !it->second->job.status.elastic) continue;
    const api::TrainingJob& job = it->second->job;
    const json& obj = *objects[r.job];
    api::TrainingJobStatus st = job.status;
    api::ElasticStatus& e = *st.elastic;
    if (e.members.size() != st.placement.size() || static_cast<int>(st.placement.size()) != r.from) continue;
    const bool grow = r.to > r.from;
    if (grow) {
      std::set<int> taken;  // slots whose pods still exist
      for (const auto& pod : cache_->List(kube::kPods)) {
        if (kube::ControllerUidOf(*pod) != kube::UidOf(obj)) continue;
        const json* labels = kube::FieldAt(*pod, "metadata.labels");
        int slot = -1;
        if (labels != nullptr && labels->is_object() && labels->contains(kRankLabel) && (*labels)[kRankLabel].is_string() &&
            absl::SimpleAtoi((*labels)[kRankLabel].get<std::string>(), &slot))
          taken.insert(slot);
      }
      for (int64_t slot : NewSlots(e.members, taken, r.to - r.from)) e.members.push_back(slot);
    } else {
      e.members.resize(static_cast<size_t>(r.to));
    }
    st.placement = r.placement;
    st.workers.desired = r.to;
    if (!grow) PublishMembers(&st, r.from, r.reason, r.message, now, 0);
    writes.Add([this, &m, &obj, &r, grow, st = std::move(st)]() -> absl::Status {
      auto w = api_->UpdateStatus(kube::kTrainingJobs, kube::StatusUpdateBody(obj, api::StatusToJson(st)));
      if (!w.ok()) return w.status();
      {
        absl::MutexLock lock(&mu_);
        assumed_[r.job] = {r.placement, kube::ResourceVersionOf(*w), /*resize=*/true, kube::ResourceVersionOf(obj)};
      }
      if (grow) {
        Event(obj, "Normal", "Growing",
              absl::StrCat("starting ", r.to - r.from, " new workers (", r.from, " -> ", r.to,
                           "); published once they run: ", r.message));
      } else {
        RecordResized(obj, "Normal", st.elastic->resizes.back());
        m.resizes.WithLabels({"shrink", r.reason})->Inc();
      }
      return absl::OkStatus();
    });
  }
  for (const auto& a : decision.admissions) {
    auto it = jobs.find(a.job);
    if (it == jobs.end()) continue;
    const api::TrainingJob& job = it->second->job;
    const json& obj = *objects[a.job];
    api::TrainingJobStatus st = job.status;
    st.phase = api::kPhaseAdmitted;
    st.placement = a.placement;
    st.pending_reason.clear();
    st.workers.desired = a.workers;
    if (job.spec.elastic) StartMembership(&st, a.workers, absl::StrCat("admitted with ", a.workers, " workers"));
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
        absl::MutexLock lock(&mu_);
        assumed_[a.job] = {a.placement, kube::ResourceVersionOf(*w)};
      }
      Event(obj, "Normal", "Admitted", message);
      m.admissions.WithLabels({queue})->Inc();
      return absl::OkStatus();
    });
  }

  for (const auto& p : decision.pending) {
    auto it = jobs.find(p.job);
    if (it == jobs.end() || !it->second->job.status.placement.empty()) continue;
    const api::TrainingJob& job = it->second->job;
    api::TrainingJobStatus st = job.status;
    std::string reason = p.reason, message = p.message;
    if (auto bad = invalid_queues.find(job.spec.queue); reason == "NoSuchQueue" && bad != invalid_queues.end()) {
      // It exists but cannot be used: say why instead of "does not exist".
      reason = "InvalidQueue";
      message = absl::StrCat("queue ", job.spec.queue, " is invalid: ", bad->second);
    }
    // Only what stays the same while the job waits for the same thing: its position and the free
    // capacity change with every pass and go to the Queue's status.waiting (below).
    st.pending_reason = message;
    bool new_reason = api::SetCondition(&st.conditions, api::kConditionQueued, "True", reason, message, now);
    if (st == job.status) continue;
    const json& obj = *objects[p.job];
    PendingWritten written{kube::ResourceVersionOf(obj), reason, message};
    {
      absl::MutexLock lock(&mu_);
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
        absl::MutexLock lock(&mu_);
        pending_written_[key] = written;
      }
      if (announce) Event(obj, reason == "InvalidQueue" ? "Warning" : "Normal", reason, message);
      return s;
    });
  }
  {
    std::set<std::string> waiting;
    for (const auto& p : decision.pending) waiting.insert(p.job);
    absl::MutexLock lock(&mu_);
    for (auto it = pending_written_.begin(); it != pending_written_.end();) {
      it = waiting.count(it->first) ? std::next(it) : pending_written_.erase(it);
    }
  }

  // The waiting jobs by queue, in queue order: the Queues' status.waiting and PendingView.
  std::map<std::string, std::vector<const scheduler::PendingJob*>> waiting_by_queue;
  json view = json::object();
  for (const auto& p : decision.pending) {
    auto it = jobs.find(p.job);
    const std::string queue = it != jobs.end() ? it->second->job.spec.queue : "";
    if (p.position > 0) waiting_by_queue[queue].push_back(&p);
    const auto slash = p.job.find('/');
    json e = {{"namespace", p.job.substr(0, slash)}, {"name", slash == std::string::npos ? p.job : p.job.substr(slash + 1)},
              {"position", p.position}, {"reason", p.reason}, {"message", p.message}};
    if (!p.detail.empty()) e["detail"] = p.detail;
    if (!view.contains(queue)) view[queue] = json::array();
    view[queue].push_back(std::move(e));
  }
  for (auto& [q, list] : waiting_by_queue) {
    std::stable_sort(list.begin(), list.end(),
                     [](const scheduler::PendingJob* a, const scheduler::PendingJob* b) { return a->position < b->position; });
  }
  const double now_s = Now();
  {
    absl::MutexLock lock(&mu_);
    pending_view_ = {{"time", now}, {"queues", std::move(view)}};
  }

  // Queue status (admitted/pending jobs, usage, borrowed, share): written when it changed; the
  // first waiting jobs (status.waiting) when they changed, at most every queue_status_interval_s.
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
    const bool counts_changed = !(st == parsed->status);
    std::vector<api::WaitingJob> top;
    if (auto w = waiting_by_queue.find(q.name); w != waiting_by_queue.end()) {
      for (const scheduler::PendingJob* p : w->second) {
        if (static_cast<int>(top.size()) >= options_.queue_status_top) break;
        const auto slash = p->job.find('/');
        top.push_back({p->job.substr(0, slash), slash == std::string::npos ? p->job : p->job.substr(slash + 1),
                       p->position, p->reason, p->detail});
      }
    }
    const bool waiting_changed = top != parsed->status.waiting;
    if (!counts_changed && !waiting_changed) continue;
    const std::string cached_rv = kube::ResourceVersionOf(*qobj);
    {
      absl::MutexLock lock(&mu_);
      const QueueWritten& last = queue_written_[q.name];
      // Written against this very version: the cache has not caught up, a write would conflict.
      if (!cached_rv.empty() && last.cached_rv == cached_rv) continue;
      if (!counts_changed && now_s - last.waiting_time < options_.queue_status_interval_s) continue;
    }
    if (waiting_changed) {
      st.waiting = std::move(top);
      st.waiting_time = now;
    }
    api::Queue updated_queue = *parsed;
    updated_queue.status = st;
    json updated = kube::StatusUpdateBody(*qobj, api::ToJson(updated_queue).value("status", json::object()));
    writes.Add([this, name = q.name, cached_rv, waiting_changed, now_s, updated = std::move(updated)] {
      absl::Status s = api_->UpdateStatus(kube::kQueues, updated).status();
      if (s.ok() || kube::IsConflict(s)) {
        absl::MutexLock lock(&mu_);
        QueueWritten& w = queue_written_[name];
        w.cached_rv = cached_rv;
        if (waiting_changed) w.waiting_time = now_s;
      }
      return s;
    });
  }
  note_error(writes.Wait());

  ExportSchedulingMetrics(decision, snap, cache_->List(kube::kTrainingJobs), Now());
  // Admitted jobs create their workers in their own reconcile; pending ones retry periodically.
  result.requeue_after_s = options_.schedule_interval_s;
  return result;
}

json TrainingJobReconciler::PendingView() const {
  absl::MutexLock lock(&mu_);
  return pending_view_;
}

}  // namespace tandem::controller
