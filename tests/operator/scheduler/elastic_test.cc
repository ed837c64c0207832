// Table-driven elastic decisions of the scheduler: one snapshot in, the expected grows, shrinks,
// whole-job preemptions and pending reasons out (docs/elastic.md, "The operator").
#include <map>
#include <optional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "operator/scheduler/scheduler.h"
#include "tests/operator/scheduler/scheduler_fixtures.h"

namespace tandem::scheduler {
namespace {

using namespace testing;  // NOLINT: fixtures
using ::testing::UnorderedElementsAreArray;

struct Size {
  int to;
  std::string reason;
  bool operator==(const Size&) const = default;
};

struct Expect {
  std::map<std::string, Size> resizes = {};  // job -> new size and reason; no other job resized
  std::vector<std::string> victims = {};      // preempted whole
  std::map<std::string, std::string> pending = {};
  std::vector<std::string> admitted = {};
};

struct Case {
  std::string name;
  Snapshot snapshot;
  Expect expect;
};

// An admitted elastic job: `workers` GPUs-per-worker on `nodes`, between min and max.
JobInfo Elastic(const std::string& key, const std::string& queue, std::vector<std::string> nodes, int min,
                int max, int64_t gpus = 1, int64_t priority = 0, int64_t created = 0) {
  JobInfo j = Job(key, queue, static_cast<int>(nodes.size()), gpus, priority, created);
  j.elastic = true;
  j.min_count = min;
  j.max_count = max;
  j.placement = std::move(nodes);
  return j;
}
JobInfo With(JobInfo j, const std::function<void(JobInfo&)>& f) {
  f(j);
  return j;
}
Snapshot Cluster(std::vector<NodeInfo> nodes, std::vector<QueueInfo> queues, std::vector<JobInfo> jobs) {
  Snapshot s;
  s.nodes = std::move(nodes);
  s.queues = std::move(queues);
  s.jobs = std::move(jobs);
  return s;
}
std::vector<std::string> N(int n, const std::string& node = "a") { return std::vector<std::string>(n, node); }

std::vector<Case> Cases() {
  std::vector<Case> c;
  // --- growing -----------------------------------------------------------------------------
  c.push_back({"grows_to_max_count_into_idle_capacity",
               Cluster({Node("a", 8)}, {Queue("q")}, {Elastic("e", "q", N(2), 1, 4)}),
               {.resizes = {{"e", {4, "Grow"}}}}});
  c.push_back({"grows_only_as_far_as_capacity",
               Cluster({Node("a", 3)}, {Queue("q")}, {Elastic("e", "q", N(2), 1, 4)}),
               {.resizes = {{"e", {3, "Grow"}}}}});
  c.push_back({"grows_across_nodes",
               Cluster({Node("a", 2), Node("b", 2)}, {Queue("q")}, {Elastic("e", "q", N(2), 1, 4)}),
               {.resizes = {{"e", {4, "Grow"}}}}});
  c.push_back({"at_max_count_stays",
               Cluster({Node("a", 8)}, {Queue("q")}, {Elastic("e", "q", N(4), 1, 4)}), {}});
  c.push_back({"fixed_job_never_grows",
               Cluster({Node("a", 8)}, {Queue("q")},
                       {With(Elastic("f", "q", N(2), 2, 4), [](JobInfo& j) { j.elastic = false; })}),
               {}});
  {
    QueueInfo q = Queue("q", 1, 2);
    q.borrowing_limit = {Resources::kUnlimited, Resources::kUnlimited, 1};
    c.push_back({"grows_within_guarantee_plus_borrowing_limit",
                 Cluster({Node("a", 8)}, {q}, {Elastic("e", "q", N(2), 1, 8)}),
                 {.resizes = {{"e", {3, "Grow"}}}}});
  }
  c.push_back({"no_grow_while_a_job_waits_for_capacity",
               Cluster({Node("a", 4)}, {Queue("q"), Queue("r")},
                       {Elastic("e", "q", N(2), 1, 4), Job("big", "r", 1, 4)}),
               {.pending = {{"big", "InsufficientResources"}}}});
  c.push_back({"grows_beside_a_job_that_never_fits",
               Cluster({Node("a", 4)}, {Queue("q"), Queue("r")},
                       {Elastic("e", "q", N(2), 1, 4), Job("huge", "r", 1, 16)}),
               {.resizes = {{"e", {4, "Grow"}}}, .pending = {{"huge", "NeverFits"}}}});
  c.push_back({"no_grow_while_resizing",
               Cluster({Node("a", 8)}, {Queue("q")},
                       {With(Elastic("e", "q", N(2), 1, 4), [](JobInfo& j) { j.resizing = true; })}),
               {}});
  c.push_back({"no_grow_in_cool_down",
               Cluster({Node("a", 8)}, {Queue("q")},
                       {With(Elastic("e", "q", N(2), 1, 4), [](JobInfo& j) { j.cooling_down = true; })}),
               {}});
  c.push_back({"equal_weights_split_idle_capacity",
               Cluster({Node("a", 8)}, {Queue("q"), Queue("r")},
                       {Elastic("e", "q", N(2), 1, 8, 1, 0, 1), Elastic("f", "r", N(2), 1, 8, 1, 0, 2)}),
               {.resizes = {{"e", {4, "Grow"}}, {"f", {4, "Grow"}}}}});
  c.push_back({"weights_split_idle_capacity",
               Cluster({Node("a", 10)}, {Queue("q", 1), Queue("r", 3)},
                       {Elastic("e", "q", N(1), 1, 10, 1, 0, 1), Elastic("f", "r", N(1), 1, 10, 1, 0, 2)}),
               {.resizes = {{"e", {3, "Grow"}}, {"f", {7, "Grow"}}}}});
  c.push_back({"admits_pending_before_growing",
               Cluster({Node("a", 4)}, {Queue("q"), Queue("r")},
                       {Elastic("e", "q", N(1), 1, 4), Job("p", "r", 1, 2)}),
               {.resizes = {{"e", {2, "Grow"}}}, .admitted = {"p"}}});
  c.push_back({"releasing_workers_are_not_idle",
               Cluster({Node("a", 4)}, {Queue("q")},
                       {With(Elastic("e", "q", N(2), 1, 4), [](JobInfo& j) { j.releasing = {"a", "a"}; })}),
               {}});
  c.push_back({"cpu_workers_grow_on_cpu",
               Cluster({Node("a", 0, 4)}, {Queue("q")}, {Elastic("e", "q", N(1), 1, 8, 0)}),
               {.resizes = {{"e", {2, "Grow"}}}}});  // 4 cores, 1.5 per worker
  // --- shrinking instead of preempting --------------------------------------------------------
  c.push_back({"reclaim_shrinks_instead_of_preempting",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 2), Queue("borrower")},
                       {Elastic("e", "borrower", N(4), 1, 4), Job("o", "owner", 2, 1)}),
               {.resizes = {{"e", {2, "ReclaimBorrowed"}}}, .pending = {{"o", "Shrinking"}}}});
  c.push_back({"shrink_takes_only_what_is_needed",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 4), Queue("borrower")},
                       {Elastic("e", "borrower", N(4), 1, 4), Job("o", "owner", 1, 1)}),
               {.resizes = {{"e", {3, "ReclaimBorrowed"}}}, .pending = {{"o", "Shrinking"}}}});
  c.push_back({"shrink_stops_at_the_borrowers_guarantee",
               // borrower is guaranteed 2 and uses 4; owner (guaranteed 2) needs 2: 4 -> 2, and a
               // second owner job finds nothing more to reclaim.
               Cluster({Node("a", 4)}, {Queue("owner", 1, 2), Queue("borrower", 1, 2)},
                       {Elastic("e", "borrower", N(4), 1, 4), Job("o1", "owner", 2, 1, 0, 1),
                        Job("o2", "owner", 1, 1, 0, 2)}),
               {.resizes = {{"e", {2, "ReclaimBorrowed"}}},
                .pending = {{"o1", "Shrinking"}, {"o2", "InsufficientResources"}}}});
  c.push_back({"shrink_lowest_priority_first",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 4), Queue("borrower")},
                       {Elastic("low", "borrower", N(2), 1, 2, 1, 0, 1), Elastic("high", "borrower", N(2), 1, 2, 1, 5, 2),
                        Job("o", "owner", 1, 1)}),
               {.resizes = {{"low", {1, "ReclaimBorrowed"}}}, .pending = {{"o", "Shrinking"}}}});
  c.push_back({"shrink_newest_first_then_the_next",
               Cluster({Node("a", 6)}, {Queue("owner", 1, 6), Queue("borrower")},
                       {Elastic("old", "borrower", N(3), 1, 3, 1, 0, 1), Elastic("new", "borrower", N(3), 1, 3, 1, 0, 2),
                        Job("o", "owner", 3, 1)}),
               {.resizes = {{"new", {1, "ReclaimBorrowed"}}, {"old", {2, "ReclaimBorrowed"}}},
                .pending = {{"o", "Shrinking"}}}});
  c.push_back({"min_count_not_enough_then_preempts_whole",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 4), Queue("borrower")},
                       {Elastic("e", "borrower", N(4), 3, 4), Job("o", "owner", 2, 1)}),
               {.victims = {"e"}, .pending = {{"o", "Preempting"}}}});
  c.push_back({"fixed_victim_preempted_whole",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 4), Queue("borrower")},
                       {With(Elastic("f", "borrower", N(4), 1, 4), [](JobInfo& j) { j.elastic = false; }),
                        Job("o", "owner", 2, 1)}),
               {.victims = {"f"}, .pending = {{"o", "Preempting"}}}});
  c.push_back({"resizing_job_is_not_shrunk_but_may_be_preempted",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 4), Queue("borrower")},
                       {With(Elastic("e", "borrower", N(4), 1, 4), [](JobInfo& j) { j.resizing = true; }),
                        Job("o", "owner", 2, 1)}),
               {.victims = {"e"}, .pending = {{"o", "Preempting"}}}});
  c.push_back({"cooling_down_job_may_still_shrink",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 4), Queue("borrower")},
                       {With(Elastic("e", "borrower", N(4), 1, 4), [](JobInfo& j) { j.cooling_down = true; }),
                        Job("o", "owner", 2, 1)}),
               {.resizes = {{"e", {2, "ReclaimBorrowed"}}}, .pending = {{"o", "Shrinking"}}}});
  c.push_back({"waits_for_leaving_workers",
               // e was shrunk 4 -> 2 last pass; its two leaving workers still run.
               Cluster({Node("a", 4)}, {Queue("owner", 1, 2), Queue("borrower")},
                       {With(Elastic("e", "borrower", N(2), 1, 4), [](JobInfo& j) { j.releasing = {"a", "a"}; }),
                        Job("o", "owner", 2, 1)}),
               {.pending = {{"o", "WaitingForPreemption"}}}});
  c.push_back({"admitted_once_they_are_gone",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 2), Queue("borrower")},
                       {Elastic("e", "borrower", N(2), 1, 4), Job("o", "owner", 2, 1)}),
               {.admitted = {"o"}}});
  c.push_back({"no_shrink_of_a_queue_within_its_guarantee",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 2), Queue("other", 1, 2)},
                       {Elastic("e", "other", N(2), 1, 4), Elastic("x", "owner", N(2), 1, 2), Job("o", "owner", 1, 1)}),
               {.pending = {{"o", "InsufficientResources"}}}});
  c.push_back({"no_shrink_for_a_job_that_would_borrow",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 1), Queue("borrower")},
                       {Elastic("e", "borrower", N(4), 1, 4), Job("o", "owner", 2, 1)}),
               {.pending = {{"o", "InsufficientResources"}}}});
  {
    QueueInfo q = Queue("q");
    q.preempt_lower_priority = true;
    c.push_back({"higher_priority_in_queue_shrinks_lower",
                 Cluster({Node("a", 4)}, {q}, {Elastic("e", "q", N(4), 1, 4, 1, 0), Job("h", "q", 2, 1, 10)}),
                 {.resizes = {{"e", {2, "LowerPriority"}}}, .pending = {{"h", "Shrinking"}}}});
    c.push_back({"equal_priority_in_queue_does_not_shrink",
                 Cluster({Node("a", 4)}, {q}, {Elastic("e", "q", N(4), 1, 4, 1, 0), Job("h", "q", 2, 1, 0)}),
                 {.pending = {{"h", "InsufficientResources"}}}});
  }
  c.push_back({"gpu_job_does_not_shrink_cpu_only_jobs",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 4), Queue("borrower")},
                       {Elastic("c", "borrower", N(4), 1, 4, 0), Elastic("g", "borrower", N(4), 1, 4, 1),
                        Job("o", "owner", 2, 1)}),
               {.resizes = {{"g", {2, "ReclaimBorrowed"}}}, .pending = {{"o", "Shrinking"}}}});
  c.push_back({"rank_zero_always_stays",
               Cluster({Node("a", 2)}, {Queue("owner", 1, 2), Queue("borrower")},
                       {Elastic("e", "borrower", N(2), 0, 2), Job("o", "owner", 2, 1)}),
               {.victims = {"e"}, .pending = {{"o", "Preempting"}}}});
  return c;
}

class ElasticCaseTest : public ::testing::TestWithParam<Case> {};

TEST_P(ElasticCaseTest, Decides) {
  const Case& c = GetParam();
  SchedulingResult r = Schedule(c.snapshot);
  std::map<std::string, Size> resizes;
  for (const Resize& z : r.resizes) {
    EXPECT_TRUE(resizes.emplace(z.job, Size{z.to, z.reason}).second) << "two resizes of " << z.job;
    EXPECT_EQ(z.placement.size(), static_cast<size_t>(z.to)) << z.job;
    EXPECT_FALSE(z.message.empty());
    const JobInfo* before = nullptr;
    for (const JobInfo& j : c.snapshot.jobs)
      if (j.key == z.job) before = &j;
    ASSERT_NE(before, nullptr);
    EXPECT_EQ(z.from, static_cast<int>(before->placement.size()));
    // Survivors keep their nodes: a grow appends, a shrink drops the highest ranks.
    const size_t kept = std::min(before->placement.size(), z.placement.size());
    EXPECT_TRUE(std::equal(z.placement.begin(), z.placement.begin() + static_cast<long>(kept), before->placement.begin()))
        << z.job;
    EXPECT_GE(z.to, std::max(1, before->min_count)) << z.job;
    EXPECT_LE(z.to, std::max(before->max_count, before->count)) << z.job;
  }
  EXPECT_EQ(resizes, c.expect.resizes);
  std::vector<std::string> victims;
  for (const auto& p : r.preemptions) victims.push_back(p.victim);
  EXPECT_THAT(victims, UnorderedElementsAreArray(c.expect.victims));
  std::vector<std::string> admitted;
  for (const auto& a : r.admissions) admitted.push_back(a.job);
  EXPECT_THAT(admitted, UnorderedElementsAreArray(c.expect.admitted));
  std::map<std::string, std::string> pending;
  for (const auto& p : r.pending) pending[p.job] = p.reason;
  EXPECT_EQ(pending, c.expect.pending);
}

INSTANTIATE_TEST_SUITE_P(Table, ElasticCaseTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

// Capacity is never handed out twice: after the pass's admissions and grows, no node holds more
// than it has (the leaving workers of a shrink still count).
TEST(ElasticTest, GrowsNeverOvercommit) {
  for (int gpus = 0; gpus <= 9; ++gpus) {
    Snapshot s = Cluster({Node("a", gpus), Node("b", 3)}, {Queue("q"), Queue("r", 2)},
                         {Elastic("e", "q", {"b"}, 1, 16), Elastic("f", "r", {"b"}, 1, 16), Job("p", "r", 1, 1)});
    SchedulingResult r = Schedule(s);
    std::map<std::string, int64_t> used;
    for (const Resize& z : r.resizes)
      for (const auto& n : z.placement) used[n]++;
    for (const auto& a : r.admissions)
      for (const auto& n : a.placement) used[n]++;
    for (const JobInfo& j : s.jobs) {
      bool resized = false;
      for (const Resize& z : r.resizes) resized |= z.job == j.key;
      if (!resized)
        for (const auto& n : j.placement) used[n]++;
    }
    EXPECT_LE(used["a"], gpus);
    EXPECT_LE(used["b"], 3);
    EXPECT_EQ(used["a"] + used["b"], gpus + 3) << "idle GPUs left with jobs below maxCount";
  }
}

}  // namespace
}  // namespace tandem::scheduler
