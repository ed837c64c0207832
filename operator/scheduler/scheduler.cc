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
  std::vector<int> jobs;     // pending job indices, in queue order
  size_t cursor = 0;
  std::vector<int> waiting;  // jobs left pending, in queue order
  int admitted = 0;
};

struct FailedShape {
  int min_failed_workers;
  std::string reason;
  std::string message;
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
    return (q.usage + j.per_worker * n).FitsIn(q.info->guaranteed);
  }
  // "" when the queue may hold `n` more workers of `j`, else what binds.
  std::string QueueLimit(const QueueState& q, const JobInfo& j, int n) const;
  void TryJob(QueueState& q, int job);
  // Returns true when preemptions were issued (or are pending) for the job.
  bool TryPreempt(QueueState& q, int job, int n, std::string* reason, std::string* message);
  std::vector<int> NodesOf(const JobInfo& j) const;

  const Snapshot& s_;
  NodePool pool_;
  Resources capacity_;
  std::unordered_map<std::string, int> node_index_;
  std::vector<QueueState> queues_;
  std::unordered_map<std::string, int> queue_index_;
  std::unordered_map<std::string, FailedShape> failed_;
  std::vector<bool> victim_;  // by job index: chosen as a victim in this pass
  std::vector<int> admitted_;     // admitted, not terminating: victim order (lowest priority, newest first)
  std::vector<int> terminating_;  // admitted and terminating
  std::vector<std::pair<std::string, std::string>> job_reason_;  // by job index: reason, message
  SchedulingResult result_;
};

std::vector<int> Pass::NodesOf(const JobInfo& j) const {
  std::vector<int> nodes;
  for (const std::string& n : j.placement) {
    auto it = node_index_.find(n);
    if (it != node_index_.end()) nodes.push_back(it->second);
  }
  return nodes;
}

std::string Pass::QueueLimit(const QueueState& q, const JobInfo& j, int n) const {
  const Resources after = q.usage + j.per_worker * n;
  const Resources& g = q.info->guaranteed;
  const Resources& b = q.info->borrowing_limit;
  for (int d = 0; d < 3; ++d) {
    int64_t limit_b = Component(b, d);
    if (limit_b >= Resources::kUnlimited) continue;
    int64_t limit = Component(g, d) + limit_b;
    if (Component(after, d) > limit && Component(j.per_worker, d) > 0) {
      return absl::StrCat("queue ", q.info->name, " limit binds: ", kResourceNames[d], " would be ",
                          FormatComponent(d, Component(after, d)), ", over guaranteed ",
                          FormatComponent(d, Component(g, d)), " + borrowingLimit ",
                          FormatComponent(d, limit_b), " = ", FormatComponent(d, limit));
    }
  }
  return "";
}

void Pass::TryJob(QueueState& q, int job) {
  const JobInfo& j = s_.jobs[job];
  const std::string key = ShapeKey(j);
  std::string reason, message;
  const int lowest = std::clamp(j.min_count, 1, std::max(1, j.count));
  for (int n = std::max(1, j.count); n >= lowest; --n) {
    std::string limit = QueueLimit(q, j, n);
    if (!limit.empty()) {
      if (n == j.count || reason.empty()) {
        reason = "QueueLimit";
        message = limit;
      }
      continue;
    }
    auto f = failed_.find(key);
    if (f != failed_.end() && n >= f->second.min_failed_workers) {
      if (reason.empty() || reason == "QueueLimit") {
        reason = f->second.reason;
        message = f->second.message;
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
    std::string why;
    std::string shortage = pool_.ExplainShortage(j.per_worker, n, j.node_selector, &why);
    FailedShape& fs = failed_[key];
    if (fs.min_failed_workers == 0 || n < fs.min_failed_workers) fs = {n, why, shortage};
    if (reason.empty() || reason == "QueueLimit") {
      reason = why;
      message = shortage;
    }
  }
  // Not admitted. Reclaim or priority preemption for the full gang (never for NeverFits).
  if (reason != "NeverFits" && reason != "QueueLimit") TryPreempt(q, job, std::max(1, j.count), &reason, &message);
  job_reason_[job] = {reason, message};
  q.waiting.push_back(job);
}

bool Pass::TryPreempt(QueueState& q, int job, int n, std::string* reason, std::string* message) {
  const JobInfo& j = s_.jobs[job];
  const bool reclaim = q.info->reclaim_borrowed && WithinGuarantee(q, j, n);
  const bool within = q.info->preempt_lower_priority;
  if (!reclaim && !within) return false;

  // Victims of earlier passes still terminating: if their capacity would be enough, wait.
  if (!terminating_.empty()) {
    std::vector<std::pair<const JobInfo*, std::vector<int>>> freed;
    for (int ti : terminating_) {
      const JobInfo& t = s_.jobs[ti];
      freed.emplace_back(&t, NodesOf(t));
      for (int node : freed.back().second) pool_.Release(node, t.per_worker);
    }
    std::vector<int> nodes;
    bool fits = pool_.PlaceGang(j.per_worker, n, j.node_selector, &nodes);
    if (fits) pool_.ReleaseGang(j.per_worker, nodes);
    for (auto& [t, ns] : freed)
      for (int node : ns) pool_.Use(node, t->per_worker);
    if (fits) {
      *reason = "WaitingForPreemption";
      *message = absl::StrCat("waiting for preempted or finishing jobs to release their resources (",
                              *message, ")");
      return true;
    }
  }

  std::vector<int> candidates;
  for (int i : admitted_) {
    const JobInfo& v = s_.jobs[i];
    if (victim_[i]) continue;
    auto qi = queue_index_.find(v.queue);
    if (qi == queue_index_.end()) continue;
    const QueueState& vq = queues_[qi->second];
    bool same = &vq == &q;
    if (same ? (within && v.priority < j.priority)
             : (reclaim && !vq.usage.FitsIn(vq.info->guaranteed)))
      candidates.push_back(i);
  }
  // Queues' usage as victims are taken away: a queue stops being a reclaim target once it is
  // back within its guarantee.
  std::map<int, Resources> usage;
  std::vector<int> victims;
  std::vector<int> placed;
  bool fits = false;
  for (int c : candidates) {
    const JobInfo& v = s_.jobs[c];
    int vqi = queue_index_.at(v.queue);
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
  if (!fits) return false;
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
  *reason = "Preempting";
  *message = absl::StrCat("preempting ", victims.size(), " job(s) to make room; admitted once they have stopped (",
                          *message, ")");
  return true;
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
  job_reason_.assign(s_.jobs.size(), {});

  for (size_t i = 0; i < s_.jobs.size(); ++i) {
    const JobInfo& j = s_.jobs[i];
    auto qi = queue_index_.find(j.queue);
    if (!j.placement.empty()) {
      for (int node : NodesOf(j)) pool_.Use(node, j.per_worker);
      (j.terminating ? terminating_ : admitted_).push_back(static_cast<int>(i));
      if (qi != queue_index_.end()) {
        queues_[qi->second].usage += JobUsage(j);
        ++queues_[qi->second].admitted;
      }
      continue;
    }
    if (qi == queue_index_.end()) {
      result_.pending.push_back({j.key, "NoSuchQueue", absl::StrCat("queue ", j.queue, " does not exist"), 0});
      continue;
    }
    const QueueInfo& info = *queues_[qi->second].info;
    if (!info.namespaces.empty() &&
        std::find(info.namespaces.begin(), info.namespaces.end(), j.namespace_) == info.namespaces.end()) {
      result_.pending.push_back({j.key, "NamespaceNotServed",
                                 absl::StrCat("queue ", j.queue, " does not serve namespace ", j.namespace_), 0});
      continue;
    }
    queues_[qi->second].jobs.push_back(static_cast<int>(i));
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

  // Queues by (next job needs borrowing?, weighted share, name): each pop tries one job.
  using Entry = std::tuple<int, double, int>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int qi) {
    QueueState& q = queues_[qi];
    if (q.cursor >= q.jobs.size()) return;
    const JobInfo& head = s_.jobs[q.jobs[q.cursor]];
    int tier = WithinGuarantee(q, head, std::max(1, head.count)) ? 0 : 1;
    heap.emplace(tier, Share(q), qi);
  };
  for (size_t i = 0; i < queues_.size(); ++i) push(static_cast<int>(i));
  while (!heap.empty()) {
    int qi = std::get<2>(heap.top());
    heap.pop();
    QueueState& q = queues_[qi];
    TryJob(q, q.jobs[q.cursor++]);
    push(qi);
  }

  for (QueueState& q : queues_) {
    int n = static_cast<int>(q.waiting.size());
    for (int k = 0; k < n; ++k) {
      int job = q.waiting[k];
      const auto& [reason, message] = job_reason_[job];
      result_.pending.push_back({s_.jobs[job].key, reason,
                                 absl::StrCat("position ", k + 1, " of ", n, " in queue ", q.info->name, ": ", message),
                                 k + 1});
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
