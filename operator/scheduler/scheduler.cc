#include "operator/scheduler/scheduler.h"

#include <algorithm>
#include <map>
#include <queue>
#include <tuple>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "operator/scheduler/node_pool.h"

namespace tandem::scheduler {
namespace {

struct QueueState {
  const QueueInfo* info = nullptr;
  Resources usage;
  // Resources of this queue's jobs that are waiting for victims to stop (preemptions issued):
  // they count against the guarantee, so one pass never reclaims more than the guarantee.
  Resources reserved;
  std::vector<int> jobs;     // pending job indices, in queue order
  size_t cursor = 0;
  std::vector<int> waiting;  // jobs left pending, in queue order
  int admitted = 0;
};

struct FailedShape {
  int min_failed_workers;
  std::string reason;
  std::string message;
  std::string detail;
  int kind = -2;  // NodePool::ExplainShortage's: the message is said again for each job's size
};

// Why a job waits: a reason, a message that stays the same while it waits for the same thing,
// and the figures that change from pass to pass.
struct Why {
  std::string reason, message, detail;
};

std::string ShapeKey(const JobInfo& j) {
  std::string k = absl::StrCat(j.per_worker.milli_cpu, "/", j.per_worker.memory, "/", j.per_worker.gpu);
  for (const auto& [a, b] : j.node_selector) absl::StrAppend(&k, "|", a, "=", b);
  return k;
}

class Pass {
 public:
  explicit Pass(const Snapshot& s) : s_(s), pool_(s.nodes) {}

  SchedulingResult Run();

 private:
  Resources JobUsage(const JobInfo& j) const { return j.per_worker * static_cast<int64_t>(j.placement.size()); }
  double Share(const QueueState& q) const {
    return WeightedShare(q.usage, q.info->guaranteed, q.info->weight, capacity_);
  }
  bool WithinGuarantee(const QueueState& q, const JobInfo& j, int n) const {
    return (q.usage + q.reserved + j.per_worker * n).FitsIn(q.info->guaranteed);
  }
  // "" when the queue may hold `n` more workers of `j`, else what binds (stable text; `detail`,
  // when not null, gets the usage it would reach).
  std::string QueueLimit(const QueueState& q, const JobInfo& j, int n, std::string* detail = nullptr) const;
  void TryJob(QueueState& q, int job);
  // Returns true when preemptions were issued (or are pending) for the job.
  bool TryPreempt(QueueState& q, int job, int n, Why* why);
  // Shrinks elastic `candidates` (victim order) toward their minCount until `job` fits with `n`
  // workers; true (and the resizes recorded) when it does, else nothing changes.
  bool TryShrink(QueueState& q, int job, int n, const std::vector<int>& candidates, Why* why);
  // Grows admitted elastic jobs into capacity no waiting job is short of.
  void GrowElastic();
  std::vector<int> NodesOf(const JobInfo& j) const;
  std::vector<int> NodesOf(const std::vector<std::string>& names) const;

  const Snapshot& s_;
  NodePool pool_;
  Resources capacity_;
  std::unordered_map<std::string, int> node_index_;
  std::vector<QueueState> queues_;
  std::unordered_map<std::string, int> queue_index_;
  std::vector<int> job_queue_;  // by job index: queue index, -1 when the queue does not exist
  std::vector<int> job_shape_;  // by job index: id of (per-worker resources, node selector)
  std::vector<FailedShape> failed_;  // by shape id; min_failed_workers 0: no failure yet
  // Preemption that found no sufficient victim set, by queue, shape, priority and kind: within a
  // pass the candidate set only shrinks, so a later job of that queue, shape and priority (or
  // lower), needing as many workers or more, cannot succeed either.
  std::map<std::tuple<int, int, int64_t, bool>, int> preempt_failed_;
  std::vector<bool> victim_;  // by job index: chosen as a victim in this pass
  std::vector<int> admitted_;     // admitted, not terminating: victim order (lowest priority, newest first)
  std::vector<int> terminating_;  // admitted and terminating
  std::vector<int> releasing_;    // admitted jobs with workers leaving after a shrink
  std::vector<Why> job_reason_;  // by job index
  SchedulingResult result_;
};

std::vector<int> Pass::NodesOf(const JobInfo& j) const { return NodesOf(j.placement); }

std::vector<int> Pass::NodesOf(const std::vector<std::string>& names) const {
  std::vector<int> nodes;
  for (const std::string& n : names) {
    auto it = node_index_.find(n);
    if (it != node_index_.end()) nodes.push_back(it->second);
  }
  return nodes;
}

std::string Pass::QueueLimit(const QueueState& q, const JobInfo& j, int n, std::string* detail) const {
  const Resources after = q.usage + j.per_worker * n;
  const Resources& g = q.info->guaranteed;
  const Resources& b = q.info->borrowing_limit;
  for (int d = 0; d < 3; ++d) {
    int64_t limit_b = Component(b, d);
    if (limit_b >= Resources::kUnlimited) continue;
    int64_t limit = Component(g, d) + limit_b;
    if (Component(after, d) > limit && Component(j.per_worker, d) > 0) {
      if (detail != nullptr) {
        *detail = absl::StrCat(kResourceNames[d], " would be ", FormatComponent(d, Component(after, d)));
      }
      return absl::StrCat("queue ", q.info->name, " limit binds: ", kResourceNames[d], " over guaranteed ",
                          FormatComponent(d, Component(g, d)), " + borrowingLimit ", FormatComponent(d, limit_b),
                          " = ", FormatComponent(d, limit));
    }
  }
  return "";
}

void Pass::TryJob(QueueState& q, int job) {
  const JobInfo& j = s_.jobs[job];
  const int shape = job_shape_[job];
  Why why;
  const int lowest = std::clamp(j.min_count, 1, std::max(1, j.count));
  for (int n = std::max(1, j.count); n >= lowest; --n) {
    std::string detail;
    std::string limit = QueueLimit(q, j, n, &detail);
    if (!limit.empty()) {
      if (n == j.count || why.reason.empty()) why = {"QueueLimit", limit, detail};
      continue;
    }
    const FailedShape& f = failed_[shape];
    if (f.min_failed_workers > 0 && n >= f.min_failed_workers) {
      if (why.reason.empty() || why.reason == "QueueLimit") {
        why = {f.reason, f.kind >= -1 ? NodePool::ShortageText(f.kind, j.per_worker, n) : f.message, f.detail};
      }
      continue;
    }
    std::vector<int> nodes;
    if (pool_.PlaceGang(j.per_worker, n, j.node_selector, &nodes)) {
      q.usage += j.per_worker * n;
      ++q.admitted;
      Admission a;
      a.job = j.key;
      a.workers = n;
      for (int node : nodes) a.placement.push_back(s_.nodes[node].name);
      result_.admissions.push_back(std::move(a));
      return;
    }
    std::string reason;
    int kind = -2;
    std::string shortage = pool_.ExplainShortage(j.per_worker, n, j.node_selector, &reason, &detail, &kind);
    FailedShape& fs = failed_[shape];
    if (fs.min_failed_workers == 0 || n < fs.min_failed_workers) fs = {n, reason, shortage, detail, kind};
    if (why.reason.empty() || why.reason == "QueueLimit") why = {reason, shortage, detail};
  }
  // Not admitted. Reclaim or priority preemption for the full gang (never for NeverFits).
  if (why.reason != "NeverFits" && why.reason != "QueueLimit") TryPreempt(q, job, std::max(1, j.count), &why);
  job_reason_[job] = std::move(why);
  q.waiting.push_back(job);
}

bool Pass::TryPreempt(QueueState& q, int job, int n, Why* why) {
  const JobInfo& j = s_.jobs[job];
  const bool reclaim = q.info->reclaim_borrowed && WithinGuarantee(q, j, n);
  const bool within = q.info->preempt_lower_priority;
  if (!reclaim && !within) return false;

  // Victims of earlier passes still terminating, and workers leaving shrunk elastic jobs: if
  // their capacity would be enough, wait.
  if (!terminating_.empty() || !releasing_.empty()) {
    std::vector<std::pair<const JobInfo*, std::vector<int>>> freed;
    for (int ti : terminating_) {
      const JobInfo& t = s_.jobs[ti];
      freed.emplace_back(&t, NodesOf(t));
      for (int node : freed.back().second) pool_.Release(node, t.per_worker);
    }
    for (int ri : releasing_) {
      const JobInfo& t = s_.jobs[ri];
      freed.emplace_back(&t, NodesOf(t.releasing));
      for (int node : freed.back().second) pool_.Release(node, t.per_worker);
    }
    std::vector<int> nodes;
    bool fits = pool_.PlaceGang(j.per_worker, n, j.node_selector, &nodes);
    if (fits) pool_.ReleaseGang(j.per_worker, nodes);
    for (auto& [t, ns] : freed)
      for (int node : ns) pool_.Use(node, t->per_worker);
    if (fits) {
      q.reserved += j.per_worker * n;
      why->reason = "WaitingForPreemption";
      why->message = absl::StrCat("waiting for preempted, shrunk or finishing jobs to release their resources (",
                                  why->message, ")");
      return true;
    }
  }

  const auto fail_key = std::make_tuple(job_queue_[job], job_shape_[job], j.priority, reclaim);
  if (auto f = preempt_failed_.find(fail_key); f != preempt_failed_.end() && n >= f->second) return false;
  std::vector<int> candidates;
  for (int i : admitted_) {
    const JobInfo& v = s_.jobs[i];
    if (victim_[i] || job_queue_[i] < 0) continue;
    const QueueState& vq = queues_[job_queue_[i]];
    bool same = &vq == &q;
    // A job short of GPUs gains nothing from stopping CPU-only jobs.
    if (j.per_worker.gpu > 0 && v.per_worker.gpu == 0) continue;
    if (same ? (within && v.priority < j.priority)
             : (reclaim && !vq.usage.FitsIn(vq.info->guaranteed)))
      candidates.push_back(i);
  }
  // Elastic victims give up workers first: shrinking them loses no job's progress.
  if (TryShrink(q, job, n, candidates, why)) return true;
  // Queues' usage as victims are taken away: a queue stops being a reclaim target once it is
  // back within its guarantee.
  std::map<int, Resources> usage;
  std::vector<int> victims;
  std::vector<int> placed;
  bool fits = false;
  for (int c : candidates) {
    const JobInfo& v = s_.jobs[c];
    int vqi = job_queue_[c];
    QueueState& vq = queues_[vqi];
    if (!usage.count(vqi)) usage[vqi] = vq.usage;
    if (&vq != &q && usage[vqi].FitsIn(vq.info->guaranteed)) continue;
    usage[vqi] -= JobUsage(v);
    for (int node : NodesOf(v)) pool_.Release(node, v.per_worker);
    victims.push_back(c);
    if (pool_.PlaceGang(j.per_worker, n, j.node_selector, &placed)) {
      pool_.ReleaseGang(j.per_worker, placed);
      fits = true;
      break;
    }
  }
  if (fits) {
    // Keep only the victims that are needed: give each back, newest choice first, and keep it
    // running if the job still fits without its resources.
    for (size_t k = victims.size(); k-- > 0;) {
      const JobInfo& v = s_.jobs[victims[k]];
      std::vector<int> vn = NodesOf(v);
      for (int node : vn) pool_.Use(node, v.per_worker);
      placed.clear();
      if (pool_.PlaceGang(j.per_worker, n, j.node_selector, &placed)) {
        pool_.ReleaseGang(j.per_worker, placed);
        victims.erase(victims.begin() + static_cast<long>(k));
      } else {
        for (int node : vn) pool_.Release(node, v.per_worker);
      }
    }
  }
  // Victims keep running (and holding their resources) until they have checkpointed and exited.
  for (int c : victims)
    for (int node : NodesOf(s_.jobs[c])) pool_.Use(node, s_.jobs[c].per_worker);
  if (!fits) {
    auto [it, inserted] = preempt_failed_.emplace(fail_key, n);
    if (!inserted) it->second = std::min(it->second, n);
    return false;
  }
  for (int c : victims) {
    victim_[c] = true;
    const JobInfo& v = s_.jobs[c];
    bool same = v.queue == j.queue;
    result_.preemptions.push_back(
        {v.key, j.key, same ? "LowerPriority" : "ReclaimBorrowed",
         same ? absl::StrCat("preempted by higher-priority job ", j.key, " (priority ", j.priority, " > ", v.priority, ")")
              : absl::StrCat("queue ", v.queue, " borrows beyond its guarantee; queue ", j.queue,
                             " reclaims it for ", j.key)});
  }
  q.reserved += j.per_worker * n;
  why->reason = "Preempting";
  why->message = absl::StrCat("preempting ", victims.size(), " job(s) to make room; admitted once they have stopped (",
                              why->message, ")");
  return true;
}

bool Pass::TryShrink(QueueState& q, int job, int n, const std::vector<int>& candidates, Why* why) {
  const JobInfo& j = s_.jobs[job];
  struct Shrink {
    int job;
    int size;  // workers kept
  };
  std::vector<Shrink> shrinks;
  std::map<int, Resources> usage;  // by queue, as workers are taken away
  std::vector<int> placed;
  bool fits = false;
  for (int c : candidates) {
    const JobInfo& v = s_.jobs[c];
    if (!v.elastic || v.resizing) continue;
    const int lowest = std::max(1, v.min_count);
    const int have = static_cast<int>(v.placement.size());
    if (have <= lowest) continue;
    const int vqi = job_queue_[c];
    QueueState& vq = queues_[vqi];
    if (!usage.count(vqi)) usage[vqi] = vq.usage;
    int size = have;
    // Highest ranks first; a reclaimed queue keeps at least its guarantee.
    while (size > lowest && !fits) {
      if (&vq != &q && usage[vqi].FitsIn(vq.info->guaranteed)) break;
      auto node = node_index_.find(v.placement[static_cast<size_t>(size - 1)]);
      if (node != node_index_.end()) pool_.Release(node->second, v.per_worker);
      usage[vqi] -= v.per_worker;
      --size;
      placed.clear();
      if (pool_.PlaceGang(j.per_worker, n, j.node_selector, &placed)) {
        pool_.ReleaseGang(j.per_worker, placed);
        fits = true;
      }
    }
    if (size < have) shrinks.push_back({c, size});
    if (fits) break;
  }
  // The leaving workers hold their resources until they have exited, shrink or not.
  for (const Shrink& sh : shrinks) {
    const JobInfo& v = s_.jobs[sh.job];
    for (size_t r = static_cast<size_t>(sh.size); r < v.placement.size(); ++r) {
      auto node = node_index_.find(v.placement[r]);
      if (node != node_index_.end()) pool_.Use(node->second, v.per_worker);
    }
  }
  if (!fits) return false;
  for (const Shrink& sh : shrinks) {
    victim_[sh.job] = true;  // no other decision for it in this pass
    const JobInfo& v = s_.jobs[sh.job];
    const bool same = v.queue == j.queue;
    Resize r;
    r.job = v.key;
    r.from = static_cast<int>(v.placement.size());
    r.to = sh.size;
    r.placement.assign(v.placement.begin(), v.placement.begin() + sh.size);
    r.reason = same ? "LowerPriority" : "ReclaimBorrowed";
    r.preemptor = j.key;
    r.message = same ? absl::StrCat("shrunk ", r.from, " -> ", r.to, " workers for higher-priority job ", j.key,
                                    " (priority ", j.priority, " > ", v.priority, ")")
                     : absl::StrCat("shrunk ", r.from, " -> ", r.to, " workers: queue ", v.queue,
                                    " borrows beyond its guarantee; queue ", j.queue, " reclaims it for ", j.key);
    result_.resizes.push_back(std::move(r));
  }
  q.reserved += j.per_worker * n;
  why->reason = "Shrinking";
  why->message = absl::StrCat("shrinking ", shrinks.size(), " elastic job(s) to make room; admitted once their ",
                              "workers have left (", why->message, ")");
  return true;
}

void Pass::GrowElastic() {
  // Capacity a waiting job is short of (or being freed for one) is not idle: growing into it
  // would only be undone by a shrink on the next pass.
  for (const QueueState& q : queues_) {
    for (int w : q.waiting) {
      const std::string& why = job_reason_[w].reason;
      if (why == "InsufficientResources" || why == "Preempting" || why == "WaitingForPreemption" ||
          why == "Shrinking")
        return;
    }
  }
  std::vector<std::vector<int>> grown(s_.jobs.size());
  using Entry = std::tuple<double, int64_t, int64_t, int>;  // share, -priority, created, job
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto can_grow = [&](int i) {
    const JobInfo& v = s_.jobs[i];
    return v.elastic && !v.resizing && !v.cooling_down && !victim_[i] && job_queue_[i] >= 0 &&
           static_cast<int>(v.placement.size() + grown[i].size()) < v.max_count;
  };
  for (int i : admitted_) {
    if (can_grow(i)) heap.emplace(Share(queues_[job_queue_[i]]), -s_.jobs[i].priority, s_.jobs[i].created, i);
  }
  while (!heap.empty()) {
    const int i = std::get<3>(heap.top());
    heap.pop();
    const JobInfo& v = s_.jobs[i];
    QueueState& q = queues_[job_queue_[i]];
    if (!QueueLimit(q, v, 1).empty()) continue;
    std::vector<int> node;
    if (!pool_.PlaceGang(v.per_worker, 1, v.node_selector, &node)) continue;
    q.usage += v.per_worker;
    grown[i].push_back(node[0]);
    if (can_grow(i)) heap.emplace(Share(q), -v.priority, v.created, i);
  }
  for (int i : admitted_) {
    if (grown[i].empty()) continue;
    const JobInfo& v = s_.jobs[i];
    Resize r;
    r.job = v.key;
    r.from = static_cast<int>(v.placement.size());
    r.to = r.from + static_cast<int>(grown[i].size());
    r.placement = v.placement;
    for (int node : grown[i]) r.placement.push_back(s_.nodes[node].name);
    r.reason = "Grow";
    r.message = absl::StrCat("grown ", r.from, " -> ", r.to, " workers into idle capacity",
                             r.to < v.max_count ? "" : " (maxCount)", " of queue ", v.queue);
    result_.resizes.push_back(std::move(r));
  }
}

SchedulingResult Pass::Run() {
  for (size_t i = 0; i < s_.nodes.size(); ++i) {
    node_index_.emplace(s_.nodes[i].name, static_cast<int>(i));
    if (s_.nodes[i].schedulable) capacity_ += s_.nodes[i].allocatable;
  }
  for (const PodUsage& p : s_.other_pods) {
    auto it = node_index_.find(p.node);
    if (it != node_index_.end()) pool_.Use(it->second, p.requests);
  }
  queues_.resize(s_.queues.size());
  for (size_t i = 0; i < s_.queues.size(); ++i) {
    queues_[i].info = &s_.queues[i];
    queue_index_.emplace(s_.queues[i].name, static_cast<int>(i));
  }
  victim_.assign(s_.jobs.size(), false);
  job_queue_.assign(s_.jobs.size(), -1);
  job_shape_.assign(s_.jobs.size(), 0);
  {
    std::unordered_map<std::string, int> shapes;
    for (size_t i = 0; i < s_.jobs.size(); ++i) {
      if (auto qi = queue_index_.find(s_.jobs[i].queue); qi != queue_index_.end()) job_queue_[i] = qi->second;
      if (!s_.jobs[i].placement.empty()) continue;
      job_shape_[i] = shapes.emplace(ShapeKey(s_.jobs[i]), static_cast<int>(shapes.size())).first->second;
    }
    failed_.assign(shapes.size() + 1, FailedShape{0, "", "", "", -2});
  }
  job_reason_.assign(s_.jobs.size(), {});

  for (size_t i = 0; i < s_.jobs.size(); ++i) {
    const JobInfo& j = s_.jobs[i];
    const int qi = job_queue_[i];
    if (!j.placement.empty()) {
      for (int node : NodesOf(j)) pool_.Use(node, j.per_worker);
      for (int node : NodesOf(j.releasing)) pool_.Use(node, j.per_worker);
      if (!j.releasing.empty()) releasing_.push_back(static_cast<int>(i));
      (j.terminating ? terminating_ : admitted_).push_back(static_cast<int>(i));
      if (qi >= 0) {
        queues_[qi].usage += JobUsage(j);
        ++queues_[qi].admitted;
      }
      continue;
    }
    if (qi < 0) {
      result_.pending.push_back({j.key, "NoSuchQueue", absl::StrCat("queue ", j.queue, " does not exist"), "", 0});
      continue;
    }
    const QueueInfo& info = *queues_[qi].info;
    if (!info.namespaces.empty() &&
        std::find(info.namespaces.begin(), info.namespaces.end(), j.namespace_) == info.namespaces.end()) {
      result_.pending.push_back({j.key, "NamespaceNotServed",
                                 absl::StrCat("queue ", j.queue, " does not serve namespace ", j.namespace_), "", 0});
      continue;
    }
    queues_[qi].jobs.push_back(static_cast<int>(i));
  }
  std::sort(admitted_.begin(), admitted_.end(), [&](int a, int b) {
    const JobInfo &x = s_.jobs[a], &y = s_.jobs[b];
    return std::tie(x.priority, y.created, y.key) < std::tie(y.priority, x.created, x.key);
  });
  for (QueueState& q : queues_) {
    std::sort(q.jobs.begin(), q.jobs.end(), [&](int a, int b) {
      const JobInfo &x = s_.jobs[a], &y = s_.jobs[b];
      return std::tie(y.priority, x.created, x.key) < std::tie(x.priority, y.created, y.key);
    });
  }

  // Phase 1, guarantees: every job that fits within its queue's guarantee, the queue using the
  // smallest fraction of its guarantee first. Reclaim happens here, before any capacity is lent
  // in phase 2, so a queue is only ever reclaimed from for borrowing it did before this pass.
  using Entry = std::tuple<double, int>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  std::vector<bool> done(s_.jobs.size(), false);
  auto guarantee_fraction = [&](const QueueState& q) {
    double f = 0;
    for (int d = 0; d < 3; ++d) {
      int64_t g = Component(q.info->guaranteed, d);
      if (g > 0) f = std::max(f, static_cast<double>(Component(q.usage, d)) / static_cast<double>(g));
    }
    return f;
  };
  auto next_within = [&](int qi) {
    QueueState& q = queues_[qi];
    while (q.cursor < q.jobs.size()) {
      const JobInfo& j = s_.jobs[q.jobs[q.cursor]];
      if (WithinGuarantee(q, j, std::max(1, j.count))) return true;
      ++q.cursor;  // needs borrowing: phase 2
    }
    return false;
  };
  // One phase: seed the heap with every queue that has a next job, then repeatedly try the next
  // job of the queue with the smallest `priority`, re-queueing it while it has more.
  auto drain = [&](auto&& has_next, auto&& priority) {
    for (size_t i = 0; i < queues_.size(); ++i) {
      if (has_next(static_cast<int>(i))) heap.emplace(priority(queues_[i]), static_cast<int>(i));
    }
    while (!heap.empty()) {
      int qi = std::get<1>(heap.top());
      heap.pop();
      QueueState& q = queues_[qi];
      int job = q.jobs[q.cursor++];
      done[job] = true;
      TryJob(q, job);
      if (has_next(qi)) heap.emplace(priority(q), qi);
    }
  };
  drain(next_within, guarantee_fraction);
  // Phase 2, sharing: the rest, the queue with the lowest weighted dominant share of borrowed
  // capacity first; each pop tries one job.
  auto next_open = [&](int qi) {
    QueueState& q = queues_[qi];
    while (q.cursor < q.jobs.size() && done[q.jobs[q.cursor]]) ++q.cursor;
    return q.cursor < q.jobs.size();
  };
  for (QueueState& q : queues_) q.cursor = 0;
  drain(next_open, [&](const QueueState& q) { return Share(q); });
  GrowElastic();
  // Positions follow queue order, whichever phase left a job waiting.
  for (QueueState& q : queues_) {
    std::vector<int> order;
    std::vector<bool> waiting(s_.jobs.size(), false);
    for (int j : q.waiting) waiting[j] = true;
    for (int j : q.jobs)
      if (waiting[j]) order.push_back(j);
    q.waiting = std::move(order);
  }

  for (QueueState& q : queues_) {
    int n = static_cast<int>(q.waiting.size());
    for (int k = 0; k < n; ++k) {
      int job = q.waiting[k];
      const Why& why = job_reason_[job];
      std::string detail = absl::StrCat("position ", k + 1, " of ", n);
      if (!why.detail.empty()) absl::StrAppend(&detail, "; ", why.detail);
      result_.pending.push_back({s_.jobs[job].key, why.reason, absl::StrCat("in queue ", q.info->name, ": ", why.message),
                                 std::move(detail), k + 1});
    }
    QueueReport r;
    r.name = q.info->name;
    r.usage = q.usage;
    r.borrowed = q.usage.ExcessOver(q.info->guaranteed);
    r.weighted_share = Share(q);
    r.admitted = q.admitted;
    r.pending = n;
    result_.queues.push_back(std::move(r));
  }
  return std::move(result_);
}

}  // namespace

double WeightedShare(const Resources& usage, const Resources& guaranteed, int64_t weight,
                     const Resources& capacity) {
  Resources excess = usage.ExcessOver(guaranteed);
  double share = 0;
  for (int d = 0; d < 3; ++d) {
    int64_t cap = Component(capacity, d);
    if (cap > 0) share = std::max(share, static_cast<double>(Component(excess, d)) / static_cast<double>(cap));
  }
  return share / static_cast<double>(std::max<int64_t>(1, weight));
}

SchedulingResult Schedule(const Snapshot& snapshot) { return Pass(snapshot).Run(); }

}  // namespace tandem::scheduler
