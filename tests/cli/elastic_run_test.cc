// Elastic jobs under `tandem run` (spec.elastic, docs/elastic.md) with the real binaries:
// `tandem resize` takes a running MLP job from 2 to 4 to 3 workers without restarting the
// trainers that stay, and a kill -9 of a worker that may not come back (restart budget 0) ends
// with a smaller job that completes instead of a failed one.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/local_run_harness.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::FindChild;
using testing::ReadFile;
using testing::RunEvents;
using testing::StepsDone;
using testing::SummaryOf;
using testing::TandemResize;
using testing::TandemRun;

constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

std::string ElasticJob(const std::string& name, int count, int min_count, int max_count,
                       int backoff_limit) {
  return absl::StrCat(R"(apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: )", name, R"(, namespace: default}
spec:
  workers: {count: )", count, ", minCount: ", min_count, ", maxCount: ", max_count, R"(}
  elastic: {policy: constantGlobalBatch}
  trainer: {threads: 1}
  passes: 2
  data:
    train: {format: idx}
    test: {format: idx, limit: 2000}
    batchSize: 32
  model:
    inputs:
      - {name: image, source: features, shape: [1, 28, 28]}
      - {name: label, source: labels}
    layers:
      - {name: fc1, type: fc, input: image, size: 128}
      - {name: relu1, type: relu, input: fc1}
      - {name: fc2, type: fc, input: relu1, size: 10}
      - {name: cost, type: softmax_cross_entropy, inputs: [fc2, label]}
  optimizer: {type: momentum, learningRate: 0.05, momentum: 0.9}
  checkpoint: {intervalSteps: 200, keep: 3}
  restartPolicy: {backoffLimit: )", backoff_limit, R"(, backoffSeconds: 1, retryableExitCodes: [75, 137, 143]}
)");
}

class ElasticRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFashionMnist)) {
      GTEST_SKIP() << "Fashion-MNIST is not installed (" << kFashionMnist
                   << "): scripts/install-deps.sh installs it";
    }
    root_ = fs::path(::testing::TempDir()) /
            absl::StrCat("tandem_elastic_run_test_", ::getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
  }
  std::string Path(const std::string& name) const { return (root_ / name).string(); }
  std::string WriteJob(const std::string& text) const {
    std::ofstream(Path("job.yaml")) << text;
    return Path("job.yaml");
  }
  // Waits until `done()` or the run ends or `seconds` pass.
  template <typename Fn>
  bool WaitFor(TandemRun& run, Fn done, int seconds) {
    const auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (Clock::now() < deadline && run.Running()) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
  }

  fs::path root_;
};

TEST_F(ElasticRunTest, ResizeTwoToFourToThreeWithoutRestartingSurvivors) {
  const std::string job = WriteJob(ElasticJob("mlp-elastic", 2, 1, 4, 2));
  TandemRun run(job, Path("run"), Path("out.txt"));
  const std::string run_dir = Path("run");
  ASSERT_TRUE(WaitFor(run, [&] { return StepsDone(run_dir, 0) >= 30; }, 180))
      << ReadFile(Path("out.txt"));
  const pid_t survivor0 = FindChild(run.pid(), "trainer", 0);
  const pid_t survivor1 = FindChild(run.pid(), "trainer", 1);
  ASSERT_GT(survivor0, 0);

  // Out of bounds: refused with the field that bounds it; the job goes on.
  auto [refused, refused_out] = TandemResize(absl::StrCat(run_dir, " 5"), Path("resize0.txt"));
  EXPECT_EQ(refused, 1) << refused_out;
  EXPECT_NE(refused_out.find("spec.workers.maxCount"), std::string::npos) << refused_out;

  auto [grew, grew_out] = TandemResize(absl::StrCat(run_dir, " 4"), Path("resize1.txt"));
  ASSERT_EQ(grew, 0) << grew_out;
  ASSERT_TRUE(WaitFor(run, [&] { return RunEvents(run_dir, "resized").size() >= 1; }, 120))
      << ReadFile(Path("out.txt"));
  const int64_t at_grow = StepsDone(run_dir, 0);
  ASSERT_TRUE(WaitFor(run, [&] { return StepsDone(run_dir, 0) >= at_grow + 20; }, 120));
  // By the job's name: its newest run folder (here the test's run folder is not under runs/, so
  // the folder form is what works; the name form is exercised for its error).
  auto [by_name, by_name_out] = TandemResize("no-such-job 3", Path("resize2.txt"));
  EXPECT_EQ(by_name, 1) << by_name_out;
  auto [shrank, shrank_out] = TandemResize(absl::StrCat(run_dir, " 3"), Path("resize3.txt"));
  ASSERT_EQ(shrank, 0) << shrank_out;

  const int code = run.Wait(std::chrono::seconds(400));
  const std::string out = ReadFile(Path("out.txt"));
  ASSERT_EQ(code, 0) << out;
  auto resized = RunEvents(run_dir, "resized");
  ASSERT_EQ(resized.size(), 2u) << out;
  EXPECT_EQ(resized[0].value("from", 0), 2);
  EXPECT_EQ(resized[0].value("to", 0), 4);
  EXPECT_EQ(resized[1].value("from", 0), 4);
  EXPECT_EQ(resized[1].value("to", 0), 3);
  for (const auto& e : resized) EXPECT_EQ(e.value("lostSteps", -1), 0) << e.dump();
  auto summary = SummaryOf(out);
  EXPECT_EQ(summary["workers"], "3") << out;
  EXPECT_EQ(summary["restarts"], "0") << out;
  EXPECT_GE(std::stod(summary["test_accuracy"]), 0.75) << out;
  // The two first trainers were never restarted: the same processes trained to the end.
  const std::string log0 = ReadFile(run_dir + "/logs/worker-0-trainer.log");
  EXPECT_NE(log0.find("elastic: epoch 1"), std::string::npos) << log0;
  EXPECT_NE(log0.find("elastic: epoch 2"), std::string::npos) << log0;
  EXPECT_NE(out.find(absl::StrCat("started worker-0/trainer (pid ", survivor0, ")")),
            std::string::npos) << out;
  EXPECT_EQ(out.find("restarted worker-0/trainer"), std::string::npos) << out;
  EXPECT_EQ(out.find("restarted worker-1/trainer"), std::string::npos) << out;
  (void)survivor1;
  // The new workers joined by broadcast; the one of the highest rank left at the shrink.
  EXPECT_NE(ReadFile(run_dir + "/logs/worker-2-trainer.log").find("joined the running job"),
            std::string::npos);
  EXPECT_NE(ReadFile(run_dir + "/logs/worker-3-trainer.log").find("left the job"),
            std::string::npos);
  auto membership = nlohmann::json::parse(ReadFile(run_dir + "/membership.json"));
  EXPECT_EQ(membership["epoch"], 2);
  EXPECT_EQ(membership["peers"].size(), 3u);
}

TEST_F(ElasticRunTest, KillNineOfAWorkerThatWillNotComeBackShrinksTheJob) {
  // Restart budget 0: a killed worker is gone for good; minCount 2 lets the job go on with 2.
  const std::string job = WriteJob(ElasticJob("mlp-shrink", 3, 2, 3, 0));
  TandemRun run(job, Path("run"), Path("out.txt"));
  const std::string run_dir = Path("run");
  ASSERT_TRUE(WaitFor(run, [&] { return StepsDone(run_dir, 0) >= 30; }, 180))
      << ReadFile(Path("out.txt"));
  const pid_t victim = FindChild(run.pid(), "trainer", 2);
  ASSERT_GT(victim, 0);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);

  const int code = run.Wait(std::chrono::seconds(400));
  const std::string out = ReadFile(Path("out.txt"));
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("will not come back: 3 -> 2 workers"), std::string::npos) << out;
  auto summary = SummaryOf(out);
  EXPECT_EQ(summary["workers"], "2") << out;
  EXPECT_GE(std::stod(summary["test_accuracy"]), 0.75) << out;
  auto resized = RunEvents(run_dir, "resized");
  ASSERT_EQ(resized.size(), 1u) << out;
  EXPECT_EQ(resized[0].value("from", 0), 3);
  EXPECT_EQ(resized[0].value("to", 0), 2);
  EXPECT_LE(resized[0].value("lostSteps", -1), 1);
}

}  // namespace
}  // namespace tandem
