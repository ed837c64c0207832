// Data-parallel training: W ranks as W threads over real loopback TCP, each running Train() with
// its own communicator, against one trainer alone.
#include "trainer/engine/data_parallel.h"

#include <unistd.h>

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
#include "common/status.h"
#include "gtest/gtest.h"
#include "tests/trainer/engine/idx_job_harness.h"
#include "trainer/collective/exit_codes.h"
#include "trainer/collective/tcp_transport.h"
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

// Runs W ranks as threads, each with the TrainOptions `options_for(rank, its DataParallel)`.
std::vector<absl::StatusOr<TrainResult>> RunRanks(
    int world, const TrainerSpec& spec, const SyncOptions& sync,
    const std::function<TrainOptions(int, DataParallel&)>& options_for) {
  std::vector<collective::Listener> listeners;
  std::vector<collective::PeerEndpoint> endpoints;
  for (int r = 0; r < world; ++r) {
    auto l = collective::Listener::Bind("127.0.0.1", 0);
    EXPECT_TRUE(l.ok()) << l.status();
    endpoints.push_back({"127.0.0.1", l->port()});
    listeners.push_back(*std::move(l));
  }
  std::vector<absl::StatusOr<TrainResult>> results(world, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto peers = collective::MakePeerList(endpoints, r, world);
      if (!peers.ok()) {
        results[r] = peers.status();
        return;
      }
      auto comm = collective::Communicator::Connect(FastOptions(), *peers, std::move(listeners[r]));
      if (!comm.ok()) {
        results[r] = comm.status();
        return;
      }
      DataParallel dp(std::move(*comm), sync);
      TrainOptions options = options_for(r, dp);
      options.parallel = &dp;
      results[r] = Train(spec, options);
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

class DataParallelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // 203 training examples: with 2 ranks the shards differ by one and the last batches are short
    // (6 and 5 examples), so the weighting of uneven batches is exercised too.
    WriteIdx(dir_.path(), "train", 203, 11);
    WriteIdx(dir_.path(), "test", 61, 12);
  }
  TempDir dir_;
};

TEST_F(DataParallelTest, TwoRanksWithBatchBMatchOneTrainerWithBatch2B) {
  Job single_job;
  single_job.batch_size = 32;
  auto single = Train(MakeSpec(dir_.path(), single_job), Quiet());
  ASSERT_TRUE(single.ok()) << single.status();

  Job job;
  job.batch_size = 16;
  auto ranks = RunRanks(2, MakeSpec(dir_.path(), job), {.bucket_mib = job.bucket_mib},
                        [](int, DataParallel&) { return Quiet(); });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(ranks[r].ok()) << "rank " << r << ": " << ranks[r].status();

  // Same number of steps: ceil(203 / 32) = 7 per pass.
  EXPECT_EQ(single->steps, 14);
  EXPECT_EQ(ranks[0]->steps, 14);
  EXPECT_EQ(ranks[1]->steps, 14);
  // Every rank holds bit-identical weights (identical averaged gradients, identical updates)...
  EXPECT_EQ(ranks[0]->final_parameters, ranks[1]->final_parameters);
  // ...and they are the single trainer's, up to float rounding of the differently ordered sums.
  EXPECT_LT(MaxAbsDiff(ranks[0]->final_parameters, single->final_parameters), 2e-4);
  // The weights moved: the comparison is not between two untouched initialisations.
  Job untrained = single_job;
  auto init = Train(MakeSpec(dir_.path(), untrained), [] {
    TrainOptions o = Quiet();
    o.max_steps = 1;
    return o;
  }());
  ASSERT_TRUE(init.ok());
  EXPECT_GT(MaxAbsDiff(init->final_parameters, single->final_parameters), 1e-2);

  // Test metrics: each rank evaluated half of the test set; the combined figures are identical on
  // both ranks and match the single trainer's.
  EXPECT_EQ(ranks[0]->test_accuracy, ranks[1]->test_accuracy);
  EXPECT_EQ(ranks[0]->test_loss, ranks[1]->test_loss);
  EXPECT_NEAR(ranks[0]->test_loss, single->test_loss, 1e-4);
  EXPECT_NEAR(ranks[0]->test_accuracy, single->test_accuracy, 1.0 / 61 + 1e-9);
  EXPECT_GT(single->test_accuracy, 0.5);  // the problem is learnable; 4 classes: chance is 0.25
  // Each rank trained on its own half of the data.
  EXPECT_EQ(ranks[0]->examples + ranks[1]->examples, single->examples);
  EXPECT_EQ(ranks[0]->examples, 2 * 102);
  EXPECT_EQ(ranks[1]->examples, 2 * 101);
}

TEST_F(DataParallelTest, ThreeRanksMatchOneTrainer) {
  // 203 = 3 shards of 68, 68, 67; batch 10 each: 7 steps, the last one short on every rank.
  Job single_job;
  single_job.batch_size = 30;
  single_job.passes = 1;
  auto single = Train(MakeSpec(dir_.path(), single_job), Quiet());
  ASSERT_TRUE(single.ok()) << single.status();
  Job job;
  job.batch_size = 10;
  job.passes = 1;
  auto ranks = RunRanks(3, MakeSpec(dir_.path(), job), {.bucket_mib = 1},
                        [](int, DataParallel&) { return Quiet(); });
  for (int r = 0; r < 3; ++r) ASSERT_TRUE(ranks[r].ok()) << "rank " << r << ": " << ranks[r].status();
  EXPECT_EQ(ranks[0]->final_parameters, ranks[2]->final_parameters);
  EXPECT_LT(MaxAbsDiff(ranks[1]->final_parameters, single->final_parameters), 2e-4);
}

// A GPU job's dense all-reduce (NCCL through the CUDA plugin) plugs in through
// UseDeviceAllReduce: after backward, over every dense gradient, weighted as the ring weights
// them. Here the "device" all-reduce is a host average over the same ranks, so the result must
// be the ring's and the single trainer's.
TEST_F(DataParallelTest, DeviceAllReduceAfterBackwardMatchesOneTrainer) {
  Job single_job;
  single_job.batch_size = 32;
  auto single = Train(MakeSpec(dir_.path(), single_job), Quiet());
  ASSERT_TRUE(single.ok()) << single.status();
  Job job;
  job.batch_size = 16;
  std::vector<int64_t> calls(2, 0), floats(2, 0);
  auto ranks = RunRanks(2, MakeSpec(dir_.path(), job), {.bucket_mib = job.bucket_mib},
                        [&](int r, DataParallel& dp) {
                          dp.UseDeviceAllReduce([&, r](float* data, int64_t n) {
                            ++calls[r];
                            floats[r] += n;
                            std::vector<double> v(data, data + n);
                            TANDEM_ASSIGN_OR_RETURN(std::vector<double> sum, dp.SumAcrossRanks(v));
                            for (int64_t i = 0; i < n; ++i)
                              data[i] = static_cast<float>(sum[i] / dp.world_size());
                            return absl::OkStatus();
                          });
                          EXPECT_TRUE(dp.uses_device_allreduce());
                          return Quiet();
                        });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(ranks[r].ok()) << "rank " << r << ": " << ranks[r].status();
  EXPECT_EQ(ranks[0]->final_parameters, ranks[1]->final_parameters);
  EXPECT_LT(MaxAbsDiff(ranks[0]->final_parameters, single->final_parameters), 2e-4);
  // Every step averaged every dense gradient (one contiguous run here: the arena).
  EXPECT_EQ(calls[0], ranks[0]->steps);
  EXPECT_EQ(floats[0], ranks[0]->steps * ranks[0]->parameters);
  EXPECT_EQ(calls[1], calls[0]);
}

TEST_F(DataParallelTest, Bf16GradientsStayClose) {
  Job single_job;
  single_job.batch_size = 32;
  auto single = Train(MakeSpec(dir_.path(), single_job), Quiet());
  ASSERT_TRUE(single.ok()) << single.status();
  auto ranks = RunRanks(2, MakeSpec(dir_.path(), Job{}),
                        {.bucket_mib = 0.001, .compression = collective::Compression::kBf16},
                        [](int, DataParallel&) { return Quiet(); });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(ranks[r].ok()) << ranks[r].status();
  EXPECT_EQ(ranks[0]->final_parameters, ranks[1]->final_parameters);
  const double d = MaxAbsDiff(ranks[0]->final_parameters, single->final_parameters);
  EXPECT_LT(d, 5e-2);
  EXPECT_GT(d, 0);  // bf16 did round something
}

TEST_F(DataParallelTest, RanksAgreeOnTheNewestCheckpointTheyAllHave) {
  TempDir ckpt;
  auto dir_of = [&](int r) { return absl::StrCat(ckpt.path(), "/trainer-", r); };
  auto options = [&](int r, int64_t max_steps) {
    TrainOptions o = Quiet();
    o.checkpoint_dir = dir_of(r);
    o.checkpoint_every = 2;
    o.resume = true;
    o.max_steps = max_steps;
    return o;
  };
  const TrainerSpec spec = MakeSpec(dir_.path(), Job{});
  // Interrupted after 9 steps: checkpoints 4, 6, 8 kept (and a final one at 9).
  auto first = RunRanks(2, spec, {}, [&](int r, DataParallel&) { return options(r, 9); });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(first[r].ok()) << first[r].status();
  // Rank 1 lost its two newest files (a crash before they reached its disk, say).
  ASSERT_TRUE(fs::remove(dir_of(1) + "/trainer-000000000009.ckpt"));
  ASSERT_TRUE(fs::remove(dir_of(1) + "/trainer-000000000008.ckpt"));
  auto resumed = RunRanks(2, spec, {}, [&](int r, DataParallel&) { return options(r, 0); });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(resumed[r].ok()) << resumed[r].status();
  EXPECT_EQ(resumed[0]->resumed_step, 6);
  EXPECT_EQ(resumed[1]->resumed_step, 6);

  // The resumed job ends where an uninterrupted one does.
  auto straight = RunRanks(2, spec, {}, [](int, DataParallel&) { return Quiet(); });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(straight[r].ok()) << straight[r].status();
  EXPECT_EQ(resumed[0]->final_parameters, resumed[1]->final_parameters);
  EXPECT_LT(MaxAbsDiff(resumed[0]->final_parameters, straight[0]->final_parameters), 1e-5);
  EXPECT_EQ(resumed[0]->steps, straight[0]->steps);
}

TEST_F(DataParallelTest, BatchNormStatisticsAreAveragedSoRanksHoldTheSameModel) {
  // Each rank updates batch-norm running statistics from its own batches; they are averaged at the
  // end of each pass, so both ranks evaluate (and rank 0 saves) the same model.
  Job job;
  job.batch_norm = true;
  auto ranks = RunRanks(2, MakeSpec(dir_.path(), job), {.bucket_mib = 1},
                        [](int, DataParallel&) { return Quiet(); });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(ranks[r].ok()) << ranks[r].status();
  EXPECT_EQ(ranks[0]->final_parameters, ranks[1]->final_parameters);
  EXPECT_EQ(ranks[0]->test_loss, ranks[1]->test_loss);
}

TEST_F(DataParallelTest, BinaryCostsReportTheSameAucOnEveryRank) {
  WriteIdx(dir_.path(), "train", 203, 11, /*classes=*/2);
  WriteIdx(dir_.path(), "test", 61, 12, /*classes=*/2);
  Job job;
  job.binary = true;
  auto single = Train(MakeSpec(dir_.path(), [&] {
                        Job j = job;
                        j.batch_size = 32;
                        return j;
                      }()),
                      Quiet());
  ASSERT_TRUE(single.ok()) << single.status();
  auto ranks = RunRanks(2, MakeSpec(dir_.path(), job), {.bucket_mib = 1},
                        [](int, DataParallel&) { return Quiet(); });
  for (int r = 0; r < 2; ++r) ASSERT_TRUE(ranks[r].ok()) << ranks[r].status();
  EXPECT_GT(single->test_auc, 0.8);  // learnable: one quadrant is brighter for positives
  EXPECT_EQ(ranks[0]->test_auc, ranks[1]->test_auc);
  EXPECT_NEAR(ranks[0]->test_auc, single->test_auc, 1e-3);
  // A softmax model has no AUC.
  auto softmax = Train(MakeSpec(dir_.path(), Job{}), Quiet());
  ASSERT_TRUE(softmax.ok()) << softmax.status();
  EXPECT_TRUE(std::isnan(softmax->test_auc));
}

TEST_F(DataParallelTest, APeerDyingMidTrainingIsAPeerFailureNamingIt) {
  const TrainerSpec spec = MakeSpec(dir_.path(), Job{});
  std::unique_ptr<LineHook> hook;
  std::unique_ptr<std::ostream> hooked;
  std::unique_ptr<EventReporter> events;
  auto ranks = RunRanks(2, spec, {}, [&](int r, DataParallel& dp) {
    TrainOptions o = Quiet();
    if (r == 1) {
      // Rank 1's process "crashes" (every socket closed at once) after its third step.
      hook = std::make_unique<LineHook>([&dp](int line) {
        if (line == 3)
          static_cast<collective::TcpTransport&>(dp.communicator().transport()).CrashForTesting();
      });
      hooked = std::make_unique<std::ostream>(hook.get());
      events = std::make_unique<EventReporter>(hooked.get(), std::chrono::milliseconds(0));
      o.events = events.get();
    }
    return o;
  });
  ASSERT_FALSE(ranks[0].ok());
  EXPECT_TRUE(collective::IsPeerFailure(ranks[0].status())) << ranks[0].status();
  EXPECT_EQ(collective::ExitCodeFor(ranks[0].status()), collective::kPeerFailureExitCode);
  EXPECT_NE(ranks[0].status().message().find("rank 1"), std::string::npos) << ranks[0].status();
  EXPECT_FALSE(ranks[1].ok());
}

TEST(SyncOptionsTest, FromTheApiType) {
  api::SyncSpec sync;
  sync.bucket_mib = 2;
  sync.compression = "bf16";
  SyncOptions o = SyncOptionsFrom(sync);
  EXPECT_EQ(o.bucket_mib, 2);
  EXPECT_EQ(o.compression, collective::Compression::kBf16);
  EXPECT_EQ(SyncOptionsFrom(api::SyncSpec{}).compression, collective::Compression::kNone);
}

}  // namespace
}  // namespace tandem::trainer
