// The elastic start-up race (docs/elastic.md): the membership changes while an elastic job's
// first trainers start, and they read it at different epochs, as pods whose mounted ConfigMap the
// kubelet refreshes at different moments do. Trainers are threads over real loopback TCP; each
// reads its own copy of the membership (a source per trainer), which the test moves on only when
// the trainer's ElasticWorld reports, through its on_behind hook, that a peer is on a newer epoch
// (or once the others have formed their ring): the orders are forced, never left to sleeps.
// Before the fix the ring's handshake took the epoch as part of the job id, each side refused
// the other as "another job", and the first join failed.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/check.h"
#include "common/socket.h"
#include "gtest/gtest.h"
#include "tests/trainer/engine/idx_job_harness.h"
#include "trainer/collective/tcp_transport.h"
#include "trainer/engine/data_parallel.h"
#include "trainer/engine/elastic_world.h"
#include "trainer/engine/trainer.h"

namespace tandem::trainer {
namespace {

using testing::FastOptions;

// One trainer's copy of the membership (its mounted file), moved on by the test.
class CopySource : public MembershipSource {
 public:
  absl::StatusOr<std::optional<api::Membership>> Latest() override {
    absl::MutexLock lock(&mu_);
    if (!read_.HasBeenNotified()) read_.Notify();
    return m_;
  }
  // Notified once the trainer has read its copy.
  absl::Notification& read() { return read_; }
  void Set(const api::Membership& m) {
    absl::MutexLock lock(&mu_);
    m_ = m;
  }

 private:
  absl::Mutex mu_;
  std::optional<api::Membership> m_ ABSL_GUARDED_BY(mu_);
  absl::Notification read_;
};

// One trainer of the job: its endpoint, its copy of the membership, what it reported.
struct Trainer {
  Endpoint self;
  std::string job = "startup-test";
  CopySource source;
  absl::Notification behind;          // on_behind fired (the first time)
  std::atomic<int64_t> heard{-1};     // the peer's epoch it reported
  absl::Notification done;            // Join (or Train) returned
  absl::StatusOr<bool> joined = absl::UnknownError("not run");
  int64_t epoch = -1;                 // after Join: the ring's epoch, world size, rank
  int world = 0, rank = -1;
  std::vector<int64_t> gathered;      // an all-gather over the ring it joined: every rank's id
  absl::StatusOr<TrainResult> trained = absl::UnknownError("not run");
};

// A port the trainers' rings bind themselves (a trainer binds its own endpoint at every
// rendezvous, and is unbound between two): free now, then let go. Taken from 10000-19999: below
// the kernel's ephemeral range (32768-60999 by default), so that no outgoing connection takes it
// meanwhile, and below what net::PickFreeLoopbackPorts hands out (20000-29999), so that no other
// test, nor a `tandem run` job of one, binds it in a gap: this test alone uses the range.
// (A kernel whose ephemeral range starts lower gets the common picker's ports instead.)
int QuietPort() {
  constexpr int kBegin = 10000, kSpan = 10000;
  if (net::PickablePortRange().begin != kBegin + kSpan) {
    absl::StatusOr<std::vector<int>> port = net::PickFreeLoopbackPorts(1);
    TANDEM_CHECK(port.ok()) << port.status();
    return (*port)[0];
  }
  static std::atomic<int> next{static_cast<int>(::getpid() % 997) * 10};
  for (;;) {
    const int port = kBegin + next.fetch_add(1) % kSpan;
    if (collective::Listener::Bind("127.0.0.1", port).ok()) return port;
  }
}

ElasticOptions OptionsFor(Trainer& t) {
  ElasticOptions eo;
  eo.source = &t.source;
  eo.self = t.self;
  eo.connect = [job = t.job](const collective::PeerList& peers, int64_t epoch,
                             const std::function<absl::Status()>& keep_waiting) {
    collective::CommunicatorOptions o = FastOptions();
    o.transport.job_id = job;
    o.transport.epoch = epoch;
    o.transport.keep_waiting = keep_waiting;
    return collective::Communicator::Connect(o, peers);
  };
  eo.policy = api::ElasticSpec{};  // constantGlobalBatch
  eo.reference_workers = 2;
  eo.max_workers = 4;
  eo.batch_size = 16;
  eo.membership_timeout = absl::Seconds(60);
  eo.poll_interval = absl::Milliseconds(5);
  eo.on_behind = [&t](int64_t, int64_t peer_epoch) {
    t.heard.store(peer_epoch);
    if (!t.behind.HasBeenNotified()) t.behind.Notify();
  };
  return eo;
}

// A trainer that only joins: Join, then one all-gather of its member id over the ring.
void JoinOnly(Trainer& t, int id) {
  DataParallel dp(nullptr, {});
  ElasticWorld world(OptionsFor(t), dp);
  t.joined = world.Join(nullptr);
  if (t.joined.ok() && *t.joined) {
    t.epoch = world.epoch();
    t.world = dp.world_size();
    t.rank = dp.rank();
    absl::StatusOr<std::vector<int64_t>> g = dp.AllGather(id);
    if (g.ok()) t.gathered = *g;
    else t.joined = g.status();
  }
  t.done.Notify();
}

class ElasticStartupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 4; ++i) t_[i].self = {"127.0.0.1", QuietPort()};
  }
  api::Membership Epoch(int64_t epoch, std::vector<int> who, std::string reason) {
    api::Membership m{.epoch = epoch, .reason = std::move(reason)};
    for (int i : who) m.peers.push_back(t_[i].self);
    return m;
  }
  // Waits (bounded, so that a regression fails instead of hanging) for `n`.
  static bool Await(absl::Notification& n) { return n.WaitForNotificationWithTimeout(absl::Seconds(60)); }

  Trainer t_[4];
};

// The race the real kubelet showed: a grow 2 -> 3 published while the first two trainers start;
// trainer 0 reads epoch 1 (3 trainers), trainer 1 still epoch 0; trainer 1 starts last. Trainer 1
// must hear epoch 1 from trainer 0's handshake and wait for its copy; all three then form the
// ring of epoch 1, in member order, and it works.
TEST_F(ElasticStartupTest, GrowDuringStartUpMeetsAtTheNewerEpoch) {
  const api::Membership e0 = Epoch(0, {0, 1}, "start");
  const api::Membership e1 = Epoch(1, {0, 1, 2}, "Grow");
  t_[0].source.Set(e1);
  t_[1].source.Set(e0);
  t_[2].source.Set(e1);
  std::vector<std::thread> threads;
  threads.emplace_back([&] { JoinOnly(t_[0], 100); });
  threads.emplace_back([&] { JoinOnly(t_[2], 102); });
  threads.emplace_back([&] { JoinOnly(t_[1], 101); });
  const bool heard = Await(t_[1].behind);
  EXPECT_TRUE(heard) << "trainer 1 never heard of epoch 1";
  EXPECT_EQ(t_[1].heard.load(), 1);
  t_[1].source.Set(e1);  // the kubelet refreshes trainer 1's file now
  for (auto& th : threads) th.join();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(t_[i].joined.ok()) << i << ": " << t_[i].joined.status();
    EXPECT_TRUE(*t_[i].joined) << i;
    EXPECT_EQ(t_[i].epoch, 1) << i;
    EXPECT_EQ(t_[i].world, 3) << i;
    EXPECT_EQ(t_[i].rank, i) << i;
    EXPECT_EQ(t_[i].gathered, (std::vector<int64_t>{100, 101, 102})) << i;
  }
  // Nobody behind but trainer 1.
  EXPECT_FALSE(t_[0].behind.HasBeenNotified());
  EXPECT_FALSE(t_[2].behind.HasBeenNotified());
}

// A shrink 3 -> 2 published while the three first trainers start: trainer 0 reads epoch 1, the
// others epoch 0. Trainers 0 and 1 form the ring of epoch 1; trainer 2, once its copy shows the
// epoch without it, leaves without joining anything.
TEST_F(ElasticStartupTest, ShrinkDuringStartUpLeavesTheRemovedTrainerOut) {
  const api::Membership e0 = Epoch(0, {0, 1, 2}, "start");
  const api::Membership e1 = Epoch(1, {0, 1}, "ReclaimBorrowed");
  t_[0].source.Set(e1);
  t_[1].source.Set(e0);
  t_[2].source.Set(e0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back([&, i] { JoinOnly(t_[i], 100 + i); });
  const bool heard = Await(t_[1].behind);
  EXPECT_TRUE(heard) << "trainer 1 never heard of epoch 1";
  EXPECT_EQ(t_[1].heard.load(), 1);
  t_[1].source.Set(e1);
  // Trainer 2's copy is refreshed only after the other two formed their ring: it must neither
  // hold them up nor join it.
  const bool formed = Await(t_[0].done) && Await(t_[1].done);
  EXPECT_TRUE(formed);
  EXPECT_FALSE(t_[2].done.HasBeenNotified());
  t_[2].source.Set(e1);
  for (auto& th : threads) th.join();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(t_[i].joined.ok()) << i << ": " << t_[i].joined.status();
    EXPECT_TRUE(*t_[i].joined) << i;
    EXPECT_EQ(t_[i].epoch, 1) << i;
    EXPECT_EQ(t_[i].world, 2) << i;
    EXPECT_EQ(t_[i].gathered, (std::vector<int64_t>{100, 101})) << i;
  }
  ASSERT_TRUE(t_[2].joined.ok()) << t_[2].joined.status();
  EXPECT_FALSE(*t_[2].joined);  // leaves, as at a step boundary
}

// The membership changes twice during start-up (2 -> 3 -> 4 trainers): trainer 1 is two epochs
// behind, trainer 2 one. Each hears epoch 2 from a peer; all four meet there.
TEST_F(ElasticStartupTest, TwoChangesDuringStartUpMeetAtTheNewest) {
  const api::Membership e0 = Epoch(0, {0, 1}, "start");
  const api::Membership e1 = Epoch(1, {0, 1, 2}, "Grow");
  const api::Membership e2 = Epoch(2, {0, 1, 2, 3}, "Grow");
  t_[0].source.Set(e2);
  t_[1].source.Set(e0);
  t_[2].source.Set(e1);
  t_[3].source.Set(e2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { JoinOnly(t_[i], 100 + i); });
  bool heard = Await(t_[1].behind);
  EXPECT_TRUE(heard) << "trainer 1 never heard of epoch 2";
  EXPECT_EQ(t_[1].heard.load(), 2);
  t_[1].source.Set(e2);
  heard = Await(t_[2].behind);
  EXPECT_TRUE(heard) << "trainer 2 never heard of epoch 2";
  EXPECT_EQ(t_[2].heard.load(), 2);
  t_[2].source.Set(e2);
  for (auto& th : threads) th.join();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(t_[i].joined.ok()) << i << ": " << t_[i].joined.status();
    EXPECT_TRUE(*t_[i].joined) << i;
    EXPECT_EQ(t_[i].epoch, 2) << i;
    EXPECT_EQ(t_[i].world, 4) << i;
    EXPECT_EQ(t_[i].gathered, (std::vector<int64_t>{100, 101, 102, 103})) << i;
  }
}

// A peer of really another job (another job id) at a member's endpoint is still an error, at
// once, that says so: not taken for a newer epoch and waited for. The stranger is an elastic
// rank of another job, waiting in its own rendezvous on trainer 1's endpoint.
TEST_F(ElasticStartupTest, APeerOfAnotherJobIsAClearErrorNotARetry) {
  const api::Membership e0 = Epoch(0, {0, 1}, "start");
  t_[0].source.Set(e0);
  // The stranger's own right neighbour: a socket that listens and never answers, so that the
  // stranger's dials succeed and it goes on to accept trainer 0's hello.
  auto sink = collective::Listener::Bind("127.0.0.1", t_[3].self.port);
  ASSERT_TRUE(sink.ok()) << sink.status();
  std::atomic<bool> stop{false};
  absl::Status stranger;
  absl::Notification listening;
  std::thread other([&] {
    collective::CommunicatorOptions o = FastOptions();
    o.transport.job_id = "another-job";
    o.transport.epoch = 0;
    o.transport.keep_waiting = [&]() -> absl::Status {
      if (!listening.HasBeenNotified()) listening.Notify();  // bound, waiting for its left
      return stop.load() ? absl::CancelledError("test over") : absl::OkStatus();
    };
    auto peers = collective::MakePeerList({t_[1].self, t_[3].self}, 0, 2);
    stranger = peers.ok() ? collective::Communicator::Connect(o, *peers).status() : peers.status();
  });
  ASSERT_TRUE(Await(listening));
  std::thread th([&] { JoinOnly(t_[0], 100); });
  th.join();
  stop.store(true);
  other.join();
  ASSERT_FALSE(t_[0].joined.ok());
  EXPECT_EQ(t_[0].joined.status().code(), absl::StatusCode::kInvalidArgument) << t_[0].joined.status();
  EXPECT_NE(t_[0].joined.status().message().find("another job"), std::string::npos)
      << t_[0].joined.status();
  EXPECT_FALSE(t_[0].behind.HasBeenNotified());
  EXPECT_TRUE(absl::IsCancelled(stranger)) << stranger;
}

// The same shrink through the whole trainer (trainer.cc): the survivors train the job to the end
// on the ring of epoch 1, the removed trainer leaves before step 1 having trained nothing, and
// every example of the pass is trained exactly once.
TEST_F(ElasticStartupTest, ShrinkDuringStartUpThroughTheTrainer) {
  testing::TempDir dir;
  testing::WriteIdx(dir.path(), "train", 203, 11);
  testing::WriteIdx(dir.path(), "test", 61, 12);
  const TrainerSpec spec = testing::MakeSpec(dir.path(), testing::Job{});
  const api::Membership e0 = Epoch(0, {0, 1, 2}, "start");
  const api::Membership e1 = Epoch(1, {0, 1}, "ReclaimBorrowed");
  t_[0].source.Set(e1);
  t_[1].source.Set(e0);
  t_[2].source.Set(e0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      DataParallel dp(nullptr, {.bucket_mib = 0.001});
      ElasticWorld world(OptionsFor(t_[i]), dp);
      TrainOptions options = testing::Quiet();
      options.parallel = &dp;
      options.elastic = &world;
      t_[i].trained = Train(spec, options);
      t_[i].epoch = world.epoch();
      t_[i].done.Notify();
    });
  const bool heard = Await(t_[1].behind);
  EXPECT_TRUE(heard) << "trainer 1 never heard of epoch 1";
  t_[1].source.Set(e1);
  // Trainer 2's copy is refreshed once the survivors finished (they never waited for it), and
  // once trainer 2 read epoch 0 (its data loaded): a copy that never named it would make it a
  // new member waiting to be named (see docs/elastic.md, not handled).
  const bool finished = Await(t_[0].done) && Await(t_[1].done) && Await(t_[2].source.read());
  EXPECT_TRUE(finished);
  t_[2].source.Set(e1);
  for (auto& th : threads) th.join();
  int64_t examples = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(t_[i].trained.ok()) << i << ": " << t_[i].trained.status();
    examples += t_[i].trained->examples;
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(t_[i].trained->left_job) << i;
    EXPECT_EQ(t_[i].epoch, 1) << i;
    EXPECT_EQ(t_[i].trained->resizes, 0) << i;  // the first ring was epoch 1: nothing resized
    EXPECT_GT(t_[i].trained->steps, 0) << i;
  }
  EXPECT_EQ(t_[0].trained->final_parameters, t_[1].trained->final_parameters);
  EXPECT_TRUE(t_[2].trained->left_job);
  EXPECT_EQ(t_[2].trained->steps, 0);
  EXPECT_EQ(t_[2].trained->examples, 0);
  EXPECT_EQ(examples, testing::Job{}.passes * 203);
}

}  // namespace
}  // namespace tandem::trainer
