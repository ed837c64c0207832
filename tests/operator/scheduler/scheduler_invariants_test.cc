// Randomized invariant checks over many generated clusters, each run for several passes with
// admissions applied, victims terminating and jobs finishing between passes:
// - no node is ever over-committed;
// - no partial gang: an admitted job has between minCount and count workers, all on
//   schedulable nodes that match its selector;
// - a queue never exceeds guaranteed + borrowingLimit;
// - preemption only takes borrowed capacity (or lower priority within a queue), never from a
//   queue within its guarantee;
// - every pending job has a reason and a position;
// - elastic resizes: between minCount (and 1) and maxCount, survivors keep their nodes, grown
//   workers on schedulable matching nodes within the queue's limit, shrinks only of borrowing
//   queues (or lower priority within a queue), at most one decision per job, none for a job
//   with a resize in flight; removed workers hold their nodes until they are gone;
// - guarantees are honoured: at steady state a queue with enough demand holds its guarantee;
// - shares converge to weights under contention.
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "operator/scheduler/scheduler.h"
#include "tests/operator/scheduler/scheduler_fixtures.h"

namespace tandem::scheduler {
namespace {

using namespace testing;  // NOLINT: fixtures

struct Sim {
  Snapshot s;
  std::mt19937 rng;
  int next_id = 0;
  int passes = 0;
  int grows = 0, shrinks = 0;

  explicit Sim(uint32_t seed) : rng(seed) {}
  int64_t Rand(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

  const QueueInfo& QueueOf(const std::string& name) const {
    for (const auto& q : s.queues)
      if (q.name == name) return q;
    static QueueInfo none;
    return none;
  }

  // One pass, checked, then applied.
  SchedulingResult Step() {
    SchedulingResult r = Schedule(s);
    ++passes;
    Check(r);
    std::map<std::string, const Admission*> admitted;
    for (const auto& a : r.admissions) admitted[a.job] = &a;
    std::set<std::string> victims;
    for (const auto& p : r.preemptions) victims.insert(p.victim);
    std::map<std::string, const Resize*> resized;
    for (const auto& z : r.resizes) {
      resized[z.job] = &z;
      (z.to > z.from ? grows : shrinks)++;
    }
    std::vector<JobInfo> next, stopped;
    for (JobInfo& j : s.jobs) {
      if (j.terminating) {  // victims of the last pass have stopped: they requeue below
        stopped.push_back(j);
        continue;
      }
      // Workers that left at the last pass have exited; the job may be resized again.
      j.releasing.clear();
      j.resizing = false;
      if (victims.count(j.key)) j.terminating = true;
      if (auto it = admitted.find(j.key); it != admitted.end()) j.placement = it->second->placement;
      if (auto it = resized.find(j.key); it != resized.end()) {
        const Resize& z = *it->second;
        for (size_t k = z.placement.size(); k < j.placement.size(); ++k) j.releasing.push_back(j.placement[k]);
        j.placement = z.placement;
        j.resizing = !j.releasing.empty();
      }
      next.push_back(j);
    }
    // Preempted jobs come back as pending jobs (same key, fresh creation time).
    for (const JobInfo& j : stopped) {
      JobInfo again = j;
      again.terminating = false;
      again.placement.clear();
      next.push_back(again);
    }
    s.jobs = std::move(next);
    return r;
  }

  void Check(const SchedulingResult& r) {
    std::map<std::string, Resources> used;
    std::map<std::string, const NodeInfo*> nodes;
    for (const auto& n : s.nodes) nodes[n.name] = &n;
    for (const auto& p : s.other_pods) used[p.node] += p.requests;
    std::map<std::string, Resources> queue_usage;
    std::map<std::string, const JobInfo*> jobs;
    for (const auto& j : s.jobs) {
      jobs[j.key] = &j;
      for (const auto& n : j.placement) used[n] += j.per_worker;
      for (const auto& n : j.releasing) used[n] += j.per_worker;
      queue_usage[j.queue] += j.per_worker * static_cast<int64_t>(j.placement.size());
    }
    std::map<std::string, Resources> queue_before = queue_usage;
    std::set<std::string> resized, preempted;
    for (const auto& p : r.preemptions) preempted.insert(p.victim);
    for (const auto& z : r.resizes) {
      ASSERT_TRUE(resized.insert(z.job).second) << "two resizes of " << z.job;
      ASSERT_FALSE(preempted.count(z.job)) << z.job << " resized and preempted";
      const JobInfo* j = jobs.at(z.job);
      ASSERT_TRUE(j->elastic) << z.job;
      ASSERT_FALSE(j->resizing) << z.job;
      ASSERT_FALSE(j->terminating) << z.job;
      ASSERT_EQ(z.from, static_cast<int>(j->placement.size()));
      ASSERT_EQ(static_cast<int>(z.placement.size()), z.to);
      ASSERT_NE(z.to, z.from);
      ASSERT_GE(z.to, std::max(1, j->min_count)) << z.job;
      ASSERT_LE(z.to, std::max(j->max_count, j->count)) << z.job;
      const size_t kept = std::min(z.placement.size(), j->placement.size());
      for (size_t k = 0; k < kept; ++k) ASSERT_EQ(z.placement[k], j->placement[k]) << "a survivor moved";
      if (z.to > z.from) {
        ASSERT_EQ(z.reason, "Grow");
        ASSERT_FALSE(j->cooling_down) << z.job;
        for (size_t k = kept; k < z.placement.size(); ++k) {
          const std::string& n = z.placement[k];
          ASSERT_TRUE(nodes.count(n) && nodes[n]->schedulable) << n;
          for (const auto& [key, v] : j->node_selector)
            ASSERT_EQ(nodes[n]->labels.count(key) ? nodes[n]->labels.at(key) : "", v);
          used[n] += j->per_worker;
        }
        queue_usage[j->queue] += j->per_worker * static_cast<int64_t>(z.to - z.from);
      } else {
        const JobInfo* by = jobs.at(z.preemptor);
        ASSERT_TRUE(by->placement.empty());
        if (j->queue == by->queue) {
          ASSERT_EQ(z.reason, "LowerPriority");
          ASSERT_LT(j->priority, by->priority);
        } else {
          ASSERT_EQ(z.reason, "ReclaimBorrowed");
          ASSERT_FALSE(queue_before[j->queue].FitsIn(QueueOf(j->queue).guaranteed))
              << "shrank queue " << j->queue << " within its guarantee";
        }
        // The removed workers still run (they hold their nodes) until they have left.
      }
    }
    for (const auto& a : r.admissions) {
      const JobInfo* j = jobs.at(a.job);
      ASSERT_TRUE(j->placement.empty()) << a.job << " admitted twice";
      ASSERT_GE(a.workers, j->min_count) << "partial gang " << a.job;
      ASSERT_LE(a.workers, j->count);
      ASSERT_EQ(static_cast<int>(a.placement.size()), a.workers);
      for (const auto& n : a.placement) {
        ASSERT_TRUE(nodes.count(n)) << n;
        ASSERT_TRUE(nodes[n]->schedulable) << n;
        for (const auto& [k, v] : j->node_selector) {
          ASSERT_EQ(nodes[n]->labels.count(k) ? nodes[n]->labels.at(k) : "", v);
        }
        used[n] += j->per_worker;
      }
      queue_usage[j->queue] += j->per_worker * a.workers;
    }
    for (const auto& [name, u] : used)
      ASSERT_TRUE(u.FitsIn(nodes.at(name)->allocatable)) << "over-committed " << name << ": " << u.ToString()
                                                         << " > " << nodes.at(name)->allocatable.ToString();
    for (const auto& q : s.queues) {
      Resources limit = q.guaranteed;
      for (int d = 0; d < 3; ++d) {
        int64_t b = Component(q.borrowing_limit, d);
        int64_t& l = d == 0 ? limit.milli_cpu : d == 1 ? limit.memory : limit.gpu;
        l = b >= Resources::kUnlimited ? Resources::kUnlimited : l + b;
      }
      // Admissions of this pass respect the limit (usage that preexisted may not, if the
      // queue was edited).
      if (queue_before[q.name].FitsIn(limit)) {
        ASSERT_TRUE(queue_usage[q.name].FitsIn(limit)) << q.name;
      }
    }
    for (const auto& p : r.preemptions) {
      const JobInfo* v = jobs.at(p.victim);
      const JobInfo* by = jobs.at(p.preemptor);
      ASSERT_FALSE(v->placement.empty());
      ASSERT_FALSE(v->terminating);
      ASSERT_TRUE(by->placement.empty());
      if (v->queue == by->queue) {
        ASSERT_LT(v->priority, by->priority);
      } else {
        ASSERT_FALSE(queue_before[v->queue].FitsIn(QueueOf(v->queue).guaranteed))
            << "took from queue " << v->queue << " within its guarantee";
      }
    }
    std::map<std::string, std::set<int>> positions;
    for (const auto& p : r.pending) {
      ASSERT_FALSE(p.reason.empty()) << p.job;
      ASSERT_FALSE(p.message.empty()) << p.job;
      if (p.position > 0) positions[jobs.at(p.job)->queue].insert(p.position);
    }
    for (const auto& [q, ps] : positions) ASSERT_EQ(static_cast<int>(ps.size()), *ps.rbegin()) << q;
  }
};

TEST(SchedulerInvariantsTest, RandomClustersKeepEveryInvariant) {
  int grows = 0, shrinks = 0;
  for (uint32_t seed = 1; seed <= 150; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Sim sim(seed);
    int n_nodes = static_cast<int>(sim.Rand(1, 24));
    for (int i = 0; i < n_nodes; ++i) {
      NodeInfo n = Node(absl::StrCat("n", i), sim.Rand(0, 2) == 0 ? 0 : sim.Rand(1, 8), sim.Rand(4, 64), sim.Rand(16, 512));
      n.schedulable = sim.Rand(0, 9) != 0;
      if (sim.Rand(0, 2) == 0) n.labels["zone"] = sim.Rand(0, 1) ? "a" : "b";
      sim.s.nodes.push_back(n);
      if (sim.Rand(0, 3) == 0) sim.s.other_pods.push_back({n.name, {sim.Rand(0, 4000), sim.Rand(0, 8) * kGi, 0}});
    }
    int n_queues = static_cast<int>(sim.Rand(1, 5));
    for (int i = 0; i < n_queues; ++i) {
      QueueInfo q = Queue(absl::StrCat("q", i), sim.Rand(1, 4), sim.Rand(0, 8));
      if (sim.Rand(0, 2) == 0) q.borrowing_limit = {Resources::kUnlimited, Resources::kUnlimited, sim.Rand(0, 8)};
      q.reclaim_borrowed = sim.Rand(0, 3) != 0;
      q.preempt_lower_priority = sim.Rand(0, 2) == 0;
      sim.s.queues.push_back(q);
    }
    for (int pass = 0; pass < 8; ++pass) {
      int arrivals = static_cast<int>(sim.Rand(0, 12));
      for (int k = 0; k < arrivals; ++k) {
        JobInfo j = Job(absl::StrCat("j", sim.next_id), absl::StrCat("q", sim.Rand(0, n_queues)), sim.Rand(1, 4),
                        sim.Rand(0, 4), sim.Rand(0, 3), sim.next_id);
        ++sim.next_id;
        j.per_worker.milli_cpu = sim.Rand(100, 8000);
        j.per_worker.memory = sim.Rand(1, 32) * kGi;
        j.min_count = static_cast<int>(sim.Rand(1, j.count));
        if (sim.Rand(0, 5) == 0) j.node_selector["zone"] = "a";
        if (sim.Rand(0, 2) == 0) {
          j.elastic = true;
          j.max_count = j.count + static_cast<int>(sim.Rand(0, 4));
          j.cooling_down = sim.Rand(0, 4) == 0;
        }
        sim.s.jobs.push_back(j);
      }
      sim.Step();
      if (::testing::Test::HasFatalFailure()) return;
      // Some admitted jobs finish.
      std::erase_if(sim.s.jobs, [&](const JobInfo& j) { return !j.placement.empty() && !j.terminating && sim.Rand(0, 4) == 0; });
    }
    grows += sim.grows;
    shrinks += sim.shrinks;
  }
  // The elastic rules were exercised, not just allowed.
  EXPECT_GT(grows, 20);
  EXPECT_GT(shrinks, 3);
  std::cout << "elastic decisions checked: " << grows << " grows, " << shrinks << " shrinks\n";
}

// Uniform 1-GPU jobs (no fragmentation), guarantees summing to at most the cluster: once the
// passes settle, every queue with enough demand holds at least its guarantee.
TEST(SchedulerInvariantsTest, GuaranteesAreHonouredAtSteadyState) {
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Sim sim(seed);
    int n_nodes = static_cast<int>(sim.Rand(1, 8));
    int64_t total = 0;
    for (int i = 0; i < n_nodes; ++i) {
      sim.s.nodes.push_back(Node(absl::StrCat("n", i), 8));
      total += 8;
    }
    int n_queues = static_cast<int>(sim.Rand(2, 5));
    int64_t left = total;
    for (int i = 0; i < n_queues; ++i) {
      int64_t g = sim.Rand(0, left / 2);
      left -= g;
      sim.s.queues.push_back(Queue(absl::StrCat("q", i), sim.Rand(1, 4), g));
    }
    // The first queue grabs the whole cluster (it arrives first); the others arrive later.
    for (int k = 0; k < total; ++k) sim.s.jobs.push_back(Job(absl::StrCat("early", k), "q0", 1, 1, 0, k));
    sim.Step();
    for (int i = 1; i < n_queues; ++i)
      for (int k = 0; k < total; ++k)
        sim.s.jobs.push_back(Job(absl::StrCat("late", i, "-", k), absl::StrCat("q", i), 1, 1, 0, 1000 + k));
    for (int pass = 0; pass < 12; ++pass) sim.Step();
    std::map<std::string, int64_t> gpus;
    for (const auto& j : sim.s.jobs) gpus[j.queue] += j.per_worker.gpu * static_cast<int64_t>(j.placement.size());
    for (const auto& q : sim.s.queues)
      EXPECT_GE(gpus[q.name], q.guaranteed.gpu) << q.name << " holds " << gpus[q.name] << " of guaranteed " << q.guaranteed.gpu;
  }
}

// No guarantees, every queue with more demand than the cluster: GPU usage splits by weight,
// within one job.
TEST(SchedulerInvariantsTest, SharesConvergeToWeightsUnderContention) {
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    Sim sim(seed);
    int n_nodes = static_cast<int>(sim.Rand(2, 12));
    for (int i = 0; i < n_nodes; ++i) sim.s.nodes.push_back(Node(absl::StrCat("n", i), 8));
    const int64_t total = 8 * n_nodes;
    int n_queues = static_cast<int>(sim.Rand(2, 5));
    int64_t weight_sum = 0;
    for (int i = 0; i < n_queues; ++i) {
      sim.s.queues.push_back(Queue(absl::StrCat("q", i), sim.Rand(1, 4)));
      weight_sum += sim.s.queues.back().weight;
    }
    for (int i = 0; i < n_queues; ++i)
      for (int k = 0; k < total; ++k)
        sim.s.jobs.push_back(Job(absl::StrCat("j", i, "-", k), absl::StrCat("q", i), 1, 1, 0, k));
    sim.Step();
    std::map<std::string, int64_t> gpus;
    for (const auto& j : sim.s.jobs) gpus[j.queue] += static_cast<int64_t>(j.placement.size());
    // Weighted DRF with whole jobs: the cluster is full, and weighted shares (GPUs / weight)
    // differ by at most one job's increment of the lightest queue (1 / min weight).
    int64_t used = 0;
    double lo = 1e9, hi = 0;
    int64_t min_weight = 1000;
    for (const auto& q : sim.s.queues) {
      used += gpus[q.name];
      double share = static_cast<double>(gpus[q.name]) / static_cast<double>(q.weight);
      lo = std::min(lo, share);
      hi = std::max(hi, share);
      min_weight = std::min(min_weight, q.weight);
    }
    EXPECT_EQ(used, total);
    EXPECT_LE(hi - lo, 1.0 / static_cast<double>(min_weight) + 1e-9) << "weights sum " << weight_sum;
    for (const auto& q : sim.s.queues) {
      double fair = static_cast<double>(total) * static_cast<double>(q.weight) / static_cast<double>(weight_sum);
      EXPECT_NEAR(static_cast<double>(gpus[q.name]), fair, static_cast<double>(q.weight) / static_cast<double>(min_weight))
          << q.name << " weight " << q.weight;
    }
  }
}

}  // namespace
}  // namespace tandem::scheduler
