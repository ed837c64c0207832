// Elastic data-parallel training (trainer/engine/elastic_world.h): trainers as threads over real
// loopback TCP follow a membership that changes while they train (2 -> 4 -> 3 workers; a peer
// that dies mid-step), against one trainer that never changes. With the policy
// constantGlobalBatch the resized job sees the same global batches of the same examples as the
// fixed one, so its weights must match it up to float rounding, and every example of every pass
// must be trained exactly once across all the ranks that ever took part.
#include "trainer/engine/elastic_world.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/trainer/engine/idx_job_harness.h"
#include "trainer/collective/exit_codes.h"
#include "trainer/collective/tcp_transport.h"
#include "trainer/data/batch_reader.h"
#include "trainer/engine/data_parallel.h"
#include "trainer/engine/events.h"
#include "trainer/engine/trainer.h"
#include "trainer/model/trainer_spec.h"

namespace tandem::trainer {
namespace {

namespace fs = std::filesystem;

using testing::FastOptions;
using testing::Job;
using testing::LineHook;
using testing::MakeSpec;
using testing::MaxAbsDiff;
using testing::Quiet;
using testing::TempDir;
using testing::WriteIdx;

// A coordinator in memory: `decide(calls)` gives the membership after the n-th read.
class ScriptedSource : public MembershipSource {
 public:
  explicit ScriptedSource(std::function<std::optional<api::Membership>(int)> decide)
      : decide_(std::move(decide)) {}
  absl::StatusOr<std::optional<api::Membership>> Latest() override {
    absl::MutexLock lock(&mu_);
    return decide_(++calls_);
  }

 private:
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<std::optional<api::Membership>(int)> decide_;
};

// One trainer thread of an elastic job: connects the ring of `start` (its epoch), then trains.
struct Member {
  collective::Listener listener;
  Endpoint self;
  absl::StatusOr<TrainResult> result = absl::UnknownError("not run");
};

constexpr int kReferenceWorkers = 2;

// `join`: a new member of a running job, started unconnected as tandem-trainer starts every
// elastic trainer: it joins (ElasticWorld::Join) once `source` names it.
void RunMember(Member& m, const api::Membership& start, const TrainerSpec& spec,
               MembershipSource& source, const std::function<void(TrainOptions&, DataParallel&)>& tweak,
               bool join = false) {
  std::unique_ptr<collective::Communicator> connected;
  if (join) {
    m.listener = collective::Listener();  // its ring binds the endpoint itself
  } else {
    const int rank = start.RankOf(m.self);
    auto peers = collective::MakePeerList(start.peers, rank, start.world_size());
    if (!peers.ok()) {
      m.result = peers.status();
      return;
    }
    collective::CommunicatorOptions o = FastOptions();
    o.transport.job_id = "elastic-test";
    o.transport.epoch = start.epoch;
    auto comm = collective::Communicator::Connect(o, *peers, std::move(m.listener));
    if (!comm.ok()) {
      m.result = comm.status();
      return;
    }
    connected = *std::move(comm);
  }
  DataParallel dp(std::move(connected), {.bucket_mib = 0.001});
  ElasticOptions eo;
  eo.source = &source;
  eo.self = m.self;
  eo.epoch = join ? -1 : start.epoch;
  eo.connect = [](const collective::PeerList& p, int64_t epoch,
                  const std::function<absl::Status()>& keep_waiting) {
    collective::CommunicatorOptions o = FastOptions();
    o.transport.job_id = "elastic-test";
    o.transport.epoch = epoch;
    o.transport.keep_waiting = keep_waiting;
    return collective::Communicator::Connect(o, p);
  };
  eo.policy = api::ElasticSpec{};  // constantGlobalBatch
  eo.reference_workers = kReferenceWorkers;
  eo.max_workers = 4;
  eo.batch_size = spec.data.batch_size;
  eo.membership_timeout = absl::Seconds(30);
  eo.poll_interval = absl::Milliseconds(5);
  ElasticWorld world(std::move(eo), dp);
  TrainOptions options = Quiet();
  options.parallel = &dp;
  options.elastic = &world;
  if (tweak) tweak(options, dp);
  m.result = Train(spec, options);
}

class ElasticTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteIdx(dir_.path(), "train", 203, 11);
    WriteIdx(dir_.path(), "test", 61, 12);
    for (int i = 0; i < 4; ++i) {
      auto l = collective::Listener::Bind("127.0.0.1", 0);
      ASSERT_TRUE(l.ok()) << l.status();
      members_[i].self = {"127.0.0.1", l->port()};
      members_[i].listener = *std::move(l);
    }
  }
  api::Membership Epoch(int64_t epoch, std::vector<int> who, std::string reason) {
    api::Membership m{.epoch = epoch, .reason = std::move(reason)};
    for (int i : who) m.peers.push_back(members_[i].self);
    return m;
  }
  // One trainer alone with the global batch: what every elastic run must reproduce.
  TrainResult Fixed(int passes) {
    Job job;
    job.batch_size = 16 * kReferenceWorkers;
    job.passes = passes;
    auto r = Train(MakeSpec(dir_.path(), job), Quiet());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : TrainResult{};
  }
  TempDir dir_;
  Member members_[4];
};

TEST_F(ElasticTest, GrowTwoToFourThenShrinkToThreeMatchesTheFixedRun) {
  const TrainResult fixed = Fixed(2);
  Job job;  // 16 per worker x 2 reference workers: a global batch of 32, 7 steps per pass
  const TrainerSpec spec = MakeSpec(dir_.path(), job);
  const api::Membership e0 = Epoch(0, {0, 1}, "start");
  const api::Membership e1 = Epoch(1, {0, 1, 2, 3}, "grow");
  // Member 1 (rank 1) leaves: the ranks after it move down.
  const api::Membership e2 = Epoch(2, {0, 2, 3}, "shrink");
  // Rank 0 (member 0 throughout) reads the source once after every step: grow after step 3,
  // shrink after step 9 (in the second pass).
  ScriptedSource source([&](int call) -> std::optional<api::Membership> {
    if (call < 3) return e0;
    if (call < 9) return e1;
    return e2;
  });
  std::vector<std::thread> threads;
  // The new members start once the first two are training, as a coordinator starts them (a
  // survivor's port listens only during a rendezvous), unconnected; their own copy of the
  // membership names them at once, so they wait in the rendezvous until the survivors reach the
  // step boundary (rank 0's reads of `source` stay the only ones that count).
  ScriptedSource joiners([&](int) { return e1; });
  absl::Notification started[2];
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] {
      RunMember(members_[i], e0, spec, source,
                [&, i](TrainOptions&, DataParallel&) { started[i].Notify(); });
    });
  for (int i = 2; i < 4; ++i)
    threads.emplace_back([&, i] {
      started[0].WaitForNotification();
      started[1].WaitForNotification();
      RunMember(members_[i], e1, spec, joiners, nullptr, /*join=*/true);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(members_[i].result.ok()) << i << ": " << members_[i].result.status();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(members_[i].result.ok());

  const TrainResult& a = *members_[0].result;
  EXPECT_TRUE(members_[1].result->left_job);
  EXPECT_EQ(members_[1].result->steps, 9);
  for (int i : {0, 2, 3}) {
    EXPECT_FALSE(members_[i].result->left_job) << i;
    EXPECT_EQ(members_[i].result->steps, fixed.steps) << i;  // 14: same global batches
    // The surviving state: bit-identical on every rank.
    EXPECT_EQ(members_[i].result->final_parameters, a.final_parameters) << i;
    EXPECT_EQ(members_[i].result->test_accuracy, a.test_accuracy) << i;
  }
  EXPECT_EQ(a.resizes, 2);
  EXPECT_EQ(members_[2].result->resizes, 1);  // joined at epoch 1, went through epoch 2
  // The fixed run's weights, up to the rounding of differently ordered sums.
  EXPECT_LT(MaxAbsDiff(a.final_parameters, fixed.final_parameters), 2e-4);
  EXPECT_NEAR(a.test_loss, fixed.test_loss, 1e-4);
  // Every example of both passes trained exactly once, whoever held it.
  int64_t examples = 0;
  for (const Member& m : members_) examples += m.result->examples;
  EXPECT_EQ(examples, fixed.examples);
  EXPECT_EQ(examples, 2 * 203);
}

TEST_F(ElasticTest, APeerDyingMidStepShrinksTheJobInPlace) {
  const TrainResult fixed = Fixed(2);
  const TrainerSpec spec = MakeSpec(dir_.path(), Job{});
  const api::Membership e0 = Epoch(0, {0, 1, 2}, "start");
  const api::Membership e1 = Epoch(1, {0, 1}, "member 2 died");
  std::atomic<bool> died{false};
  ScriptedSource source([&](int) { return died.load() ? e1 : e0; });
  std::unique_ptr<LineHook> hook;
  std::unique_ptr<std::ostream> hooked;
  std::unique_ptr<EventReporter> events;
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      RunMember(members_[i], e0, spec, source, [&, i](TrainOptions& o, DataParallel& dp) {
        if (i != 2) return;
        // Member 2's process "crashes" (every socket closed at once) after its fifth step; the
        // coordinator then publishes the membership without it.
        hook = std::make_unique<LineHook>([&dp, &died](int line) {
          if (line != 5) return;
          static_cast<collective::TcpTransport&>(dp.communicator().transport()).CrashForTesting();
          died.store(true);
        });
        hooked = std::make_unique<std::ostream>(hook.get());
        events = std::make_unique<EventReporter>(hooked.get(), std::chrono::milliseconds(0));
        o.events = events.get();
      });
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(members_[i].result.ok()) << i << ": " << members_[i].result.status();
  const TrainResult& a = *members_[0].result;
  EXPECT_EQ(a.steps, fixed.steps);
  EXPECT_EQ(a.resizes, 1);
  EXPECT_EQ(members_[1].result->final_parameters, a.final_parameters);
  // The step in flight was trained again from the last consistent state: still the fixed run.
  EXPECT_LT(MaxAbsDiff(a.final_parameters, fixed.final_parameters), 2e-4);
  // The crashed member either saw itself left out (it is "alive" as a thread) or failed.
  if (members_[2].result.ok()) {
    EXPECT_TRUE(members_[2].result->left_job);
  }
}

TEST_F(ElasticTest, AJobRestartedWholeResumesItsCheckpointAtAnotherWorldSize) {
  const TrainResult fixed = Fixed(2);
  const TrainerSpec spec = MakeSpec(dir_.path(), Job{});
  // Phase 1: 2 trainers train 5 steps and stop (the checkpoint of step 5, with its position).
  const api::Membership first = Epoch(0, {0, 1}, "start");
  ScriptedSource source1([&](int) { return first; });
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] {
      RunMember(members_[i], first, spec, source1, [&, i](TrainOptions& o, DataParallel&) {
        o.checkpoint_dir = absl::StrCat(dir_.path(), "/ckpt-", i);
        o.checkpoint_every = 5;
        o.max_steps = 5;
      });
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(members_[i].result.ok()) << members_[i].result.status();
  ASSERT_EQ(members_[0].result->steps, 5);
  // Phase 2: the whole job restarts with 3 trainers; the third has no checkpoint folder yet.
  Member again[3];
  api::Membership second{.epoch = 0, .reason = "restart"};
  for (Member& m : again) {
    auto l = collective::Listener::Bind("127.0.0.1", 0);
    ASSERT_TRUE(l.ok()) << l.status();
    m.self = {"127.0.0.1", l->port()};
    m.listener = *std::move(l);
    second.peers.push_back(m.self);
  }
  ScriptedSource source2([&](int) { return second; });
  threads.clear();
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      RunMember(again[i], second, spec, source2, [&, i](TrainOptions& o, DataParallel&) {
        o.checkpoint_dir = absl::StrCat(dir_.path(), "/ckpt-", i);
        o.resume = true;
      });
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(again[i].result.ok()) << i << ": " << again[i].result.status();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(again[i].result->resumed_step, 5) << i;
    EXPECT_EQ(again[i].result->steps, fixed.steps) << i;
    EXPECT_EQ(again[i].result->final_parameters, again[0].result->final_parameters) << i;
  }
  // Resumed from example 160 of pass 1 (5 global batches of 32): still the fixed run.
  EXPECT_LT(MaxAbsDiff(again[0].result->final_parameters, fixed.final_parameters), 2e-4);
  int64_t examples = members_[0].result->examples + members_[1].result->examples;
  for (const Member& m : again) examples += m.result->examples;
  EXPECT_EQ(examples, fixed.examples);
}

TEST_F(ElasticTest, LinearPolicyScalesTheLearningRateWithARamp) {
  collective::CommunicatorOptions unused;
  (void)unused;
  ElasticOptions eo;
  ScriptedSource source([](int) { return std::nullopt; });
  eo.source = &source;
  eo.connect = [](const collective::PeerList&, int64_t, const std::function<absl::Status()>&)
      -> absl::StatusOr<std::unique_ptr<collective::Communicator>> {
    return absl::UnimplementedError("not used");
  };
  eo.policy.policy = api::kElasticLinear;
  eo.policy.warmup_steps = 10;
  eo.reference_workers = 2;
  eo.batch_size = 16;
  // The world is only read by Enter/Poll; none is called here.
  auto comm = collective::Communicator::Connect(FastOptions(), *collective::MakePeerList({members_[0].self}, 0, 1));
  ASSERT_TRUE(comm.ok()) << comm.status();
  DataParallel dp(std::move(*comm), {});
  ElasticWorld world(std::move(eo), dp);
  EXPECT_EQ(world.GlobalBatch(2), 32);
  EXPECT_EQ(world.GlobalBatch(4), 64);
  ElasticPosition p;
  p.step = 100;
  world.RescaleLearningRate(4, &p);  // 2 -> 4 workers at step 100: lr x1 -> x2 over 10 steps
  EXPECT_DOUBLE_EQ(world.LearningRateScale(p, 100), 1.0);
  EXPECT_DOUBLE_EQ(world.LearningRateScale(p, 105), 1.5);
  EXPECT_DOUBLE_EQ(world.LearningRateScale(p, 110), 2.0);
  EXPECT_DOUBLE_EQ(world.LearningRateScale(p, 500), 2.0);
  p.step = 105;  // shrink to 3 in the middle of the ramp: from where it is (1.5) to 1.5
  world.RescaleLearningRate(3, &p);
  EXPECT_DOUBLE_EQ(p.lr_from, 1.5);
  EXPECT_DOUBLE_EQ(p.lr_to, 1.5);
}

TEST(ElasticPositionFileTest, KeepsTheNewestStepsAndFindsOne) {
  TempDir dir;
  for (int64_t s = 1; s <= 20; ++s)
    ASSERT_TRUE(SaveElasticPosition(dir.path(), {.step = s, .pass = s / 7, .pass_offset = s * 32}, 4).ok());
  EXPECT_FALSE(LoadElasticPosition(dir.path(), 16).has_value());  // only the newest 4 kept
  auto p = LoadElasticPosition(dir.path(), 19);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->pass, 2);
  EXPECT_EQ(p->pass_offset, 19 * 32);
  EXPECT_FALSE(LoadElasticPosition(dir.path() + "/nowhere", 19).has_value());
}

}  // namespace
}  // namespace tandem::trainer
