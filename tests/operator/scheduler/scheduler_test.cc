// Table-driven scheduler cases: one snapshot in, the expected admissions, preemptions and
// pending reasons out.
#include "operator/scheduler/scheduler.h"

#include <set>

#include "gmock/gmock.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "operator/scheduler/node_pool.h"
#include "tests/operator/scheduler/scheduler_fixtures.h"

namespace tandem::scheduler {
namespace {

using namespace testing;  // NOLINT: fixtures
using ::testing::HasSubstr;

struct Expect {
  std::vector<std::string> admitted = {};         // job keys
  std::vector<std::string> victims = {};          // preempted job keys
  std::map<std::string, std::string> pending = {};  // job key -> reason
  std::map<std::string, std::string> message = {};  // job key -> substring of its (stable) message
  std::map<std::string, std::string> detail = {};   // job key -> substring of its per-pass detail
  std::map<std::string, std::vector<std::string>> placement = {};  // job key -> nodes
};

struct Case {
  std::string name;
  Snapshot snapshot;
  Expect expect;
};

Snapshot Cluster(std::vector<NodeInfo> nodes, std::vector<QueueInfo> queues, std::vector<JobInfo> jobs) {
  Snapshot s;
  s.nodes = std::move(nodes);
  s.queues = std::move(queues);
  s.jobs = std::move(jobs);
  return s;
}

JobInfo Admitted(JobInfo j, std::vector<std::string> nodes) {
  j.placement = std::move(nodes);
  return j;
}

std::vector<Case> Cases() {
  std::vector<Case> c;
  c.push_back({"gang_all_or_nothing",
               Cluster({Node("a", 4), Node("b", 4)}, {Queue("q")},
                       {Job("big", "q", 3, 4, 0, 1), Job("fits", "q", 2, 4, 0, 2)}),
               {.admitted = {"fits"},
                .pending = {{"big", "InsufficientResources"}},
                .message = {{"big", "in queue q: insufficient nvidia.com/gpu: 3 workers need 4 each on one node"}},
                .detail = {{"big", "position 1 of 1; free capacity fits 2 (free 8, at most 4 on one node)"}}}});
  c.push_back({"best_fit_packs_partly_used_node",
               Cluster({Node("empty", 8), Node("half", 8)}, {Queue("q")},
                       {Admitted(Job("old", "q", 1, 6), {"half"}), Job("new", "q", 1, 2)}),
               {.admitted = {"new"}, .placement = {{"new", {"half"}}}}});
  c.push_back({"cpu_worker_avoids_free_gpus",
               Cluster({Node("gpu", 8), Node("cpu", 0)}, {Queue("q")}, {Job("cpu-job", "q", 1, 0)}),
               {.admitted = {"cpu-job"}, .placement = {{"cpu-job", {"cpu"}}}}});
  {
    Snapshot s = Cluster({Node("a", 8, 8)}, {Queue("q")}, {Job("j", "q", 1, 1)});
    s.other_pods.push_back({"a", {7000, 0, 0}});  // 7 of 8 cores used by others; the job needs 1.5
    c.push_back({"other_pods_count", s,
                 {.pending = {{"j", "InsufficientResources"}}, .message = {{"j", "insufficient cpu"}}}});
  }
  c.push_back({"priority_then_age_within_queue",
               Cluster({Node("a", 4)}, {Queue("q")},
                       {Job("old-low", "q", 1, 4, 0, 1), Job("new-high", "q", 1, 4, 5, 9), Job("old-high", "q", 1, 4, 5, 2)}),
               {.admitted = {"old-high"},
                .pending = {{"new-high", "InsufficientResources"}, {"old-low", "InsufficientResources"}},
                .message = {{"new-high", "in queue q: insufficient"}, {"old-low", "in queue q: insufficient"}},
                .detail = {{"new-high", "position 1 of 2"}, {"old-low", "position 2 of 2"}}}});
  c.push_back({"guarantee_before_share",
               // b has the lower share, but a's job fits within a's guarantee: a goes first.
               Cluster({Node("a", 4)}, {Queue("a", 1, 4), Queue("b", 100)},
                       {Job("b1", "b", 1, 4, 0, 1), Job("a1", "a", 1, 4, 0, 2)}),
               {.admitted = {"a1"}, .pending = {{"b1", "InsufficientResources"}}}});
  {
    QueueInfo q = Queue("q", 1, 2);
    q.borrowing_limit = {Resources::kUnlimited, Resources::kUnlimited, 2};
    c.push_back({"borrowing_limit_binds",
                 Cluster({Node("a", 8)}, {q}, {Job("j", "q", 1, 6)}),
                 {.pending = {{"j", "QueueLimit"}},
                  .message = {{"j", "queue q limit binds: nvidia.com/gpu over guaranteed 2 + borrowingLimit 2 = 4"}},
                  .detail = {{"j", "nvidia.com/gpu would be 6"}}}});
  }
  c.push_back({"reclaim_borrowed_lowest_priority_newest_first",
               Cluster({Node("a", 8)}, {Queue("owner", 1, 4), Queue("borrower")},
                       {Admitted(Job("b-old", "borrower", 1, 2, 0, 1), {"a"}),
                        Admitted(Job("b-new", "borrower", 1, 2, 0, 5), {"a"}),
                        Admitted(Job("b-high", "borrower", 1, 2, 9, 9), {"a"}),
                        Admitted(Job("b-mid", "borrower", 1, 2, 1, 7), {"a"}),
                        Job("o", "owner", 1, 4, 0, 10)}),
               {.victims = {"b-new", "b-old"},
                .pending = {{"o", "Preempting"}},
                .message = {{"o", "preempting 2 job(s)"}}}});
  c.push_back({"reclaims_no_more_than_the_guarantee",
               Cluster({Node("a", 8)}, {Queue("owner", 1, 4), Queue("borrower")},
                       {Admitted(Job("b1", "borrower", 1, 2, 0, 1), {"a"}), Admitted(Job("b2", "borrower", 1, 2, 0, 2), {"a"}),
                        Admitted(Job("b3", "borrower", 1, 2, 0, 3), {"a"}), Admitted(Job("b4", "borrower", 1, 2, 0, 4), {"a"}),
                        Job("o1", "owner", 1, 4, 0, 10), Job("o2", "owner", 1, 4, 0, 11)}),
               {.victims = {"b4", "b3"},
                .pending = {{"o1", "Preempting"}, {"o2", "InsufficientResources"}}}});
  {
    std::vector<NodeInfo> nodes = {Node("over", 8, 8), Node("ok", 8, 8)};
    Snapshot s = Cluster(nodes, {Queue("q")}, {Job("j", "q", 1, 1)});
    s.other_pods.push_back({"over", {12000, 0, 0}});  // 4 cores over-committed by others
    c.push_back({"overcommitted_node_does_not_hide_free_capacity", s,
                 {.admitted = {"j"}, .placement = {{"j", {"ok"}}}}});
  }
  {
    QueueInfo owner = Queue("owner", 1, 4);
    owner.reclaim_borrowed = false;
    c.push_back({"reclaim_disabled",
                 Cluster({Node("a", 4)}, {owner, Queue("borrower")},
                         {Admitted(Job("b", "borrower", 1, 4), {"a"}), Job("o", "owner", 1, 4)}),
                 {.pending = {{"o", "InsufficientResources"}}}});
  }
  c.push_back({"no_reclaim_from_queue_within_its_guarantee",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 4), Queue("other", 1, 4)},
                       {Admitted(Job("x", "other", 1, 4), {"a"}), Job("o", "owner", 1, 4)}),
               {.pending = {{"o", "InsufficientResources"}}}});
  c.push_back({"no_reclaim_when_job_would_borrow",
               Cluster({Node("a", 4)}, {Queue("owner", 1, 2), Queue("borrower")},
                       {Admitted(Job("b", "borrower", 1, 4), {"a"}), Job("o", "owner", 1, 4)}),
               {.pending = {{"o", "InsufficientResources"}}}});
  {
    QueueInfo q = Queue("q");
    q.preempt_lower_priority = true;
    c.push_back({"within_queue_lower_priority",
                 Cluster({Node("a", 4)}, {q},
                         {Admitted(Job("low", "q", 1, 4, 1), {"a"}), Job("high", "q", 1, 4, 10)}),
                 {.victims = {"low"}, .pending = {{"high", "Preempting"}}}});
    c.push_back({"within_queue_never_preempts_equal_priority",
                 Cluster({Node("a", 4)}, {q}, {Admitted(Job("same", "q", 1, 4, 10), {"a"}), Job("high", "q", 1, 4, 10)}),
                 {.pending = {{"high", "InsufficientResources"}}}});
  }
  {
    JobInfo dying = Admitted(Job("dying", "borrower", 1, 4), {"a"});
    dying.terminating = true;
    c.push_back({"waits_for_terminating_victims",
                 Cluster({Node("a", 4), Node("b", 4)}, {Queue("owner", 1, 4), Queue("borrower")},
                         {dying, Admitted(Job("other", "borrower", 1, 4), {"b"}), Job("o", "owner", 1, 4)}),
                 {.pending = {{"o", "WaitingForPreemption"}}}});
  }
  {
    JobInfo ns = Job("ns", "team", 1, 1);
    ns.namespace_ = "intruder";
    JobInfo huge = Job("huge", "team", 1, 16);
    huge.namespace_ = "team-a";
    QueueInfo team = Queue("team");
    team.namespaces = {"team-a"};
    c.push_back({"queue_and_namespace_errors",
                 Cluster({Node("a", 8)}, {team}, {Job("lost", "nope", 1, 1), ns, huge}),
                 {.pending = {{"lost", "NoSuchQueue"}, {"ns", "NamespaceNotServed"}, {"huge", "NeverFits"}},
                  .message = {{"huge", "a worker needs 16 nvidia.com/gpu (its trainer and any pserver) but the largest node has 8"}}}});
  }
  {
    JobInfo elastic = Job("elastic", "q", 4, 4);
    elastic.min_count = 2;
    c.push_back({"elastic_shrinks_to_fit",
                 Cluster({Node("a", 4), Node("b", 4), Node("c", 2)}, {Queue("q")}, {elastic}),
                 {.admitted = {"elastic"}, .placement = {{"elastic", {"a", "b"}}}}});
  }
  {
    NodeInfo v100 = Node("v100", 8), a100 = Node("a100", 8), cordoned = Node("cordoned", 8);
    v100.labels["gpu"] = "v100";
    a100.labels["gpu"] = "a100";
    cordoned.labels["gpu"] = "a100";
    cordoned.schedulable = false;
    JobInfo j = Job("picky", "q", 2, 4);
    j.node_selector["gpu"] = "a100";
    JobInfo k = Job("pickier", "q", 1, 1);
    k.node_selector["gpu"] = "h100";
    c.push_back({"node_selector_and_cordon",
                 Cluster({cordoned, v100, a100}, {Queue("q")}, {j, k}),
                 {.admitted = {"picky"},
                  .pending = {{"pickier", "NeverFits"}},
                  .message = {{"pickier", "no schedulable node matches nodeSelector gpu=h100"}},
                  .placement = {{"picky", {"a100", "a100"}}}}});
  }
  return c;
}

class SchedulerCaseTest : public ::testing::TestWithParam<Case> {};

TEST_P(SchedulerCaseTest, Decides) {
  const Case& c = GetParam();
  SchedulingResult r = Schedule(c.snapshot);
  std::set<std::string> admitted, victims;
  for (const auto& a : r.admissions) admitted.insert(a.job);
  for (const auto& p : r.preemptions) victims.insert(p.victim);
  EXPECT_EQ(admitted, std::set<std::string>(c.expect.admitted.begin(), c.expect.admitted.end()));
  EXPECT_EQ(victims, std::set<std::string>(c.expect.victims.begin(), c.expect.victims.end()));
  for (const auto& [job, reason] : c.expect.pending) {
    const PendingJob* p = FindPending(r, job);
    ASSERT_NE(p, nullptr) << job << " is not pending";
    EXPECT_EQ(p->reason, reason) << job << ": " << p->message;
  }
  for (const auto& [job, fragment] : c.expect.message) {
    const PendingJob* p = FindPending(r, job);
    ASSERT_NE(p, nullptr) << job;
    EXPECT_THAT(p->message, HasSubstr(fragment));
    // What changes from pass to pass stays out of the message (it is written into the job).
    EXPECT_THAT(p->message, Not(HasSubstr("position"))) << job;
    EXPECT_THAT(p->message, Not(HasSubstr("free capacity"))) << job;
  }
  for (const auto& [job, fragment] : c.expect.detail) {
    const PendingJob* p = FindPending(r, job);
    ASSERT_NE(p, nullptr) << job;
    EXPECT_THAT(p->detail, HasSubstr(fragment));
  }
  for (const auto& [job, nodes] : c.expect.placement) {
    const Admission* a = FindAdmission(r, job);
    ASSERT_NE(a, nullptr) << job;
    EXPECT_EQ(a->placement, nodes) << job;
  }
  // Every pending job of the snapshot is reported exactly once.
  EXPECT_EQ(r.admissions.size() + r.pending.size(),
            static_cast<size_t>(std::count_if(c.snapshot.jobs.begin(), c.snapshot.jobs.end(),
                                              [](const JobInfo& j) { return j.placement.empty(); })));
}

INSTANTIATE_TEST_SUITE_P(Table, SchedulerCaseTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

TEST(SchedulerTest, WeightsSplitContendedCapacity) {
  Snapshot s = Cluster({Node("a", 8), Node("b", 8)}, {Queue("light", 1), Queue("heavy", 3)}, {});
  for (int i = 0; i < 20; ++i) {
    s.jobs.push_back(Job(absl::StrCat("l", i), "light", 1, 1, 0, i));
    s.jobs.push_back(Job(absl::StrCat("h", i), "heavy", 1, 1, 0, i));
  }
  SchedulingResult r = Schedule(s);
  std::map<std::string, int64_t> gpus;
  for (const auto& q : r.queues) gpus[q.name] = q.usage.gpu;
  EXPECT_EQ(gpus["light"], 4);
  EXPECT_EQ(gpus["heavy"], 12);
}

// A waiting job's message is written into its status, so it must not change while the job waits
// for the same thing: jobs ahead of it admitted, new jobs behind it, capacity freed elsewhere.
// Only the detail (position, free capacity) changes.
TEST(SchedulerTest, PendingMessageStaysTheSameAsPositionAndFreeCapacityChange) {
  // Pass 1: 8 GPUs, 6 used by another job; "big" (2 x 4) waits behind "small" (1 x 4).
  Snapshot s1 = Cluster({Node("a", 8), Node("b", 4)}, {Queue("q")},
                        {Admitted(Job("other", "q", 1, 6, 0, 0), {"a"}), Job("small", "q", 1, 4, 0, 1),
                         Job("big", "q", 2, 4, 0, 2), Job("later", "q", 2, 4, 0, 3)});
  // Pass 2: "small" has been admitted on b, a third job queued behind; the other job shrank to 5.
  Snapshot s2 = Cluster({Node("a", 8), Node("b", 4)}, {Queue("q")},
                        {Admitted(Job("other", "q", 1, 5, 0, 0), {"a"}), Admitted(Job("small", "q", 1, 4, 0, 1), {"b"}),
                         Job("big", "q", 2, 4, 0, 2), Job("later", "q", 2, 4, 0, 3), Job("last", "q", 3, 4, 0, 4)});
  SchedulingResult r1 = Schedule(s1), r2 = Schedule(s2);
  const PendingJob* p1 = FindPending(r1, "big");
  const PendingJob* p2 = FindPending(r2, "big");
  ASSERT_NE(p1, nullptr);
  ASSERT_NE(p2, nullptr);
  EXPECT_EQ(p1->reason, "InsufficientResources");
  EXPECT_EQ(p1->reason, p2->reason);
  EXPECT_EQ(p1->message, p2->message);
  EXPECT_EQ(p1->message, "in queue q: insufficient nvidia.com/gpu: 2 workers need 4 each on one node");
  EXPECT_NE(p1->detail, p2->detail);
  EXPECT_THAT(p2->detail, HasSubstr("position 1 of 3"));
  // A job of the same shape but another size says its own size (not the first failure's).
  const PendingJob* last = FindPending(r2, "last");
  ASSERT_NE(last, nullptr);
  EXPECT_THAT(last->message, HasSubstr("3 workers need 4 each"));
}

TEST(SchedulerTest, QueueReportsUsageBorrowedAndShare) {
  Snapshot s = Cluster({Node("a", 8)}, {Queue("q", 2, 2)}, {Job("j", "q", 1, 6)});
  SchedulingResult r = Schedule(s);
  ASSERT_EQ(r.queues.size(), 1u);
  EXPECT_EQ(r.queues[0].usage.gpu, 6);
  EXPECT_EQ(r.queues[0].borrowed.gpu, 4);
  EXPECT_DOUBLE_EQ(r.queues[0].weighted_share, 4.0 / 8.0 / 2.0);
  EXPECT_EQ(r.queues[0].admitted, 1);
}

TEST(NodePoolTest, GangPlacementRollsBackOnFailure) {
  std::vector<NodeInfo> nodes = {Node("a", 4), Node("b", 2)};
  NodePool pool(nodes);
  std::vector<int> placed;
  EXPECT_FALSE(pool.PlaceGang({1000, kGi, 4}, 2, {}, &placed));
  EXPECT_TRUE(placed.empty());
  EXPECT_EQ(pool.Free(0).gpu, 4);
  EXPECT_TRUE(pool.PlaceGang({1000, kGi, 2}, 3, {}, &placed));
  EXPECT_EQ(placed, (std::vector<int>{1, 0, 0}));  // best fit: the 2-GPU node first
  EXPECT_EQ(pool.Free(0).gpu, 0);
  EXPECT_EQ(pool.Free(1).gpu, 0);
}

TEST(ResourcesTest, ConvertsFromApiQuantities) {
  api::ResourceList l = {{"cpu", *api::Quantity::Parse("1500m")},
                         {"memory", *api::Quantity::Parse("3Gi")},
                         {"nvidia.com/gpu", *api::Quantity::Parse("2")}};
  Resources r = FromResourceList(l);
  EXPECT_EQ(r, (Resources{1500, 3 * kGi, 2}));
  EXPECT_EQ(r.ToString(), "cpu 1500m, memory 3Gi, nvidia.com/gpu 2");
  EXPECT_EQ(FromResourceList(ToResourceList(r)), r);
}

// A worker's demand is its trainer plus, where the job runs pservers (api::UsesPServers), its
// pserver (the default spec.pserver requests: 500m, 1Gi): the same containers its pod has.
TEST(SnapshotTest, JobInfoFromTrainingJobSumsTrainerAndPserver) {
  for (const char* dense : {"pserver", "ring"}) {
    SCOPED_TRACE(dense);
    api::FieldErrors errors;
    api::TrainingJob job = api::ParseTrainingJob(
        {{"apiVersion", "tandem.dev/v1alpha1"}, {"kind", "TrainingJob"}, {"metadata", {{"name", "j"}, {"namespace", "ns"}}},
         {"spec", {{"workers", {{"count", 3}, {"minCount", 2}}}, {"model", {{"x", 1}}}, {"priority", 4},
                   {"sync", {{"dense", dense}}},
                   {"trainer", {{"resources", {{"requests", {{"cpu", "2"}, {"memory", "4Gi"}, {"nvidia.com/gpu", 1}}}}}}}}}},
        api::SectionValidators{}, &errors);
    ASSERT_TRUE(errors.empty()) << errors[0].ToString();
    JobInfo info = JobInfoFrom(job, 42);
    EXPECT_EQ(info.key, "ns/j");
    if (std::string(dense) == "pserver") {
      EXPECT_EQ(info.per_worker, (Resources{2500, 5 * kGi, 1}));
    } else {  // nothing lives on a pserver: the trainer alone
      EXPECT_EQ(info.per_worker, (Resources{2000, 4 * kGi, 1}));
    }
    EXPECT_EQ(info.count, 3);
    EXPECT_EQ(info.min_count, 2);
    EXPECT_EQ(info.priority, 4);
  }
}

}  // namespace
}  // namespace tandem::scheduler
