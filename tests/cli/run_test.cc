// `tandem run` end to end with the real tandem-trainer and tandem-pserver: a small MLP job with 2
// workers (data-parallel over the ring all-reduce) trains and reports its summary; the fault drill
// (kill -9 one pserver and one trainer mid-run: the job completes, reports the restarts and the
// lost steps, and still reaches its accuracy bound); Ctrl-C stops every process, none left behind.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/local_run_harness.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::Alive;
using testing::Child;
using testing::ChildrenOf;
using testing::FindChild;
using testing::HasCheckpoint;
using testing::ReadFile;
using testing::RunEvents;
using testing::StepsDone;
using testing::SummaryOf;
using testing::TandemRun;

constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// A 2-worker MLP job on part of Fashion-MNIST. Dense over the ring (the default) it runs no
// pserver under `tandem run` (nothing lives on one); `sync` "{dense: pserver}" puts the dense
// parameters on the pservers.
std::string MlpJob(const std::string& name, int train_limit, int passes, int checkpoint_every,
                   const std::string& sync = "{dense: ring, bucketMiB: 1}") {
  return absl::StrCat(R"(apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: )", name, R"(, namespace: default}
spec:
  queue: default
  image: tandem/tandem:0.1.0
  workers: {count: 2}
  trainer: {threads: 1}
  passes: )", passes, R"(
  data:
    train: {format: idx, limit: )", train_limit, R"(}
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
  sync: )", sync, R"(
  checkpoint: {intervalSteps: )", checkpoint_every, R"(, keep: 3}
  restartPolicy: {backoffLimit: 4, backoffSeconds: 1, retryableExitCodes: [75, 137, 143]}
)");
}

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFashionMnist)) {
      GTEST_SKIP() << "Fashion-MNIST is not installed (" << kFashionMnist
                   << "): scripts/install-deps.sh installs it";
    }
    root_ = fs::path(::testing::TempDir()) / absl::StrCat("tandem_run_test_", ::getpid(), "_",
                                                         ::testing::UnitTest::GetInstance()
                                                             ->current_test_info()
                                                             ->name());
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

  fs::path root_;
};

TEST_F(RunTest, TrainsTwoWorkersAndPrintsTheSummary) {
  const std::string job = WriteJob(MlpJob("mlp-smoke", 6000, 1, 40));
  TandemRun run(job, Path("run"), Path("out.txt"));
  const int code = run.Wait(std::chrono::seconds(240));
  const std::string out = ReadFile(Path("out.txt"));
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("job mlp-smoke succeeded"), std::string::npos) << out;
  auto summary = SummaryOf(out);
  ASSERT_TRUE(summary.count("test_accuracy")) << out;
  EXPECT_GE(std::stod(summary["test_accuracy"]), 0.70) << out;
  EXPECT_GT(std::stod(summary["examples_per_sec"]), 0) << out;
  EXPECT_EQ(summary["workers"], "2");
  EXPECT_EQ(summary["restarts"], "0");
  EXPECT_EQ(summary["lost_steps"], "0");

  // Both trainers reported progress, and both reported the same (combined) test accuracy.
  std::set<int> workers;
  std::vector<double> accuracies;
  for (const auto& e : RunEvents(Path("run"))) {
    if (e.value("event", "") == "progress") workers.insert(e.value("worker", -1));
  }
  EXPECT_EQ(workers, (std::set<int>{0, 1}));
  for (int w = 0; w < 2; ++w) {
    const std::string log = ReadFile(Path(absl::StrCat("run/logs/worker-", w, "-trainer.log")));
    const size_t at = log.rfind("@tandem {\"event\":\"summary\"");
    ASSERT_NE(at, std::string::npos) << log;
    auto j = nlohmann::json::parse(log.substr(at + 8, log.find('\n', at) - at - 8));
    accuracies.push_back(j["test_accuracy"].get<double>());
  }
  EXPECT_EQ(accuracies[0], accuracies[1]);
  // Rank 0 wrote the final model; the summary is saved.
  EXPECT_TRUE(HasCheckpoint(Path("run/model")));
  EXPECT_TRUE(fs::exists(Path("run/summary.json")));
  // Dense over the ring, no embedding tables: no pserver was started.
  EXPECT_NE(out.find("no pserver: nothing lives on one"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(Path("run/logs/worker-0-pserver.log")));
  EXPECT_FALSE(fs::exists(Path("run/checkpoints/pserver-0")));
}

TEST_F(RunTest, FaultDrillKillNineOnePserverAndOneTrainer) {
  // 3 passes over 20000 examples: 313 steps per pass with 2 workers of batch 32. The dense
  // parameters live on the pservers (a ring job has none to kill).
  const std::string job = WriteJob(MlpJob("mlp-drill", 20000, 3, 50, "{dense: pserver, mode: sync}"));
  TandemRun run(job, Path("run"), Path("out.txt"));
  const std::string run_dir = Path("run");

  // Once both trainers have a checkpoint and trained well past it (between two checkpoints, so
  // that steps are lost), kill worker 1's pserver, then worker 0's trainer.
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  // The pids are looked up before the wait, not after it: scanning /proc takes longer than the
  // 25 steps of margin below when steps are fast, and a kill that lands after the next
  // checkpoint loses no step, which this test must see.
  pid_t pserver = -1;
  pid_t trainer = -1;
  while (Clock::now() < deadline && run.Running() && (pserver <= 0 || trainer <= 0)) {
    pserver = FindChild(run.pid(), "pserver", 1);
    trainer = FindChild(run.pid(), "trainer", 0);
    if (pserver <= 0 || trainer <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(pserver, 0) << ChildrenOf(run.pid()).size() << " children of " << run.pid() << "\n"
                        << ReadFile(Path("out.txt"));
  ASSERT_GT(trainer, 0) << ReadFile(Path("out.txt"));
  auto ready = [&] {
    const int64_t done = StepsDone(run_dir, 0);
    return HasCheckpoint(run_dir + "/checkpoints/trainer-0") &&
           HasCheckpoint(run_dir + "/checkpoints/trainer-1") && done >= 70 && done % 50 >= 10 &&
           done % 50 <= 35;
  };
  while (Clock::now() < deadline && run.Running() && !ready()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_GE(StepsDone(run_dir, 0), 70) << ReadFile(Path("out.txt"));
  ASSERT_EQ(::kill(pserver, SIGKILL), 0);
  ASSERT_EQ(::kill(trainer, SIGKILL), 0);

  const int code = run.Wait(std::chrono::seconds(300));
  const std::string out = ReadFile(Path("out.txt"));
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("worker-1/pserver"), std::string::npos) << out;
  EXPECT_NE(out.find("worker-0/trainer"), std::string::npos) << out;
  auto summary = SummaryOf(out);
  ASSERT_TRUE(summary.count("restarts")) << out;
  // The pserver and trainer killed, and the surviving trainer that saw its peer die (exit 75).
  EXPECT_GE(std::stoi(summary["restarts"]), 3) << out;
  EXPECT_GT(std::stoll(summary["lost_steps"]), 0) << out;
  EXPECT_GE(std::stod(summary["test_accuracy"]), 0.75) << out;
  int resumed = 0;
  for (const auto& e : RunEvents(run_dir)) {
    if (e.value("event", "") != "resumed") continue;
    ++resumed;
    EXPECT_EQ(e.value("step", -1) % 50, 0) << e.dump();  // a checkpoint step
  }
  EXPECT_GE(resumed, 1);
}

TEST_F(RunTest, CtrlCStopsEveryProcess) {
  const std::string job = WriteJob(MlpJob("mlp-stop", 60000, 5, 100));
  TandemRun run(job, Path("run"), Path("out.txt"));
  const std::string run_dir = Path("run");
  std::vector<Child> children;
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline && run.Running() && StepsDone(run_dir, 0) < 5) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  children = ChildrenOf(run.pid());
  ASSERT_EQ(children.size(), 2u) << "two trainers, no pserver: " << ReadFile(Path("out.txt"));
  for (const Child& c : children) EXPECT_EQ(c.role, "trainer");
  ASSERT_EQ(::kill(run.pid(), SIGINT), 0);
  const int code = run.Wait(std::chrono::seconds(60));
  const std::string out = ReadFile(Path("out.txt"));
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(code, -1) << out;
  EXPECT_NE(out.find("stopped"), std::string::npos) << out;
  for (const Child& c : children) EXPECT_FALSE(Alive(c.pid)) << c.role << " " << c.rank;
  // The trainers checkpointed on their way out.
  EXPECT_TRUE(HasCheckpoint(run_dir + "/checkpoints/trainer-0")) << out;
}

}  // namespace
}  // namespace tandem
