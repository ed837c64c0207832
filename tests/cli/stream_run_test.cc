// Streaming jobs under `tandem run` with the real trainer and pserver binaries, while
// tandem-ctr-stream-gen appends files (growing in place, split writes: partial last lines):
//   - exactly-once across kill -9 of a trainer, and of a pserver: after the supervisor's restarts
//     (which roll back the steps after the last consistent checkpoint), the ledgers of committed
//     records (stream.ledger) of both ranks together hold every record of the stream exactly
//     once, each at its own file and index;
//   - examples/ctr-streaming.yaml itself: its online (progressive) AUC rises as it trains.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/local_run_harness.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::BinDir;
using testing::FindChild;
using testing::SourceDir;
using testing::HasCheckpoint;
using testing::ReadFile;
using testing::StepsDone;
using testing::SummaryOf;
using testing::TandemRun;

constexpr int kFiles = 10;
constexpr int kPerFile = 1500;

// A small CTR model on the stream in `dir`, 2 workers with pservers, checkpoints every 10 steps.
std::string StreamJob(const std::string& name, const std::string& dir) {
  return absl::StrCat(R"(apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: )", name, R"(, namespace: default}
spec:
  workers: {count: 2}
  trainer: {threads: 1}
  sync: {dense: ring, mode: sync}
  data:
    train:
      format: libsvm
      numFields: 26
      stream: {dir: )", dir, R"(, pattern: "clicks-*.svm", pollSeconds: 0.2, endMarker: _END,
               ledger: true, rollingEval: {windowRecords: 4000, intervalSteps: 20}}
    batchSize: 64
  model:
    inputs:
      - {name: ids, source: fields, shape: [26]}
      - {name: click, source: targets}
    layers:
      - {name: emb, type: embedding, input: ids, vocabSize: 100003, size: 8, pooling: sum}
      - {name: fc1, type: fc, input: emb, size: 32}
      - {name: relu1, type: relu, input: fc1}
      - {name: logit, type: fc, input: relu1, size: 1}
      - {name: cost, type: binary_cross_entropy, inputs: [logit, click]}
  optimizer: {type: adagrad, learningRate: 0.05}
  checkpoint: {intervalSteps: 10, keep: 3}
  restartPolicy: {backoffLimit: 6, backoffSeconds: 1, retryableExitCodes: [75, 137, 143]}
)");
}

// The producer, in a thread (it ends by itself once it wrote every file and the end marker).
class Generator {
 public:
  Generator(const std::string& dir, int files, int per_file, int chunk, int interval_ms) {
    const std::string cmd = absl::StrCat(
        BinDir(), "/tandem-ctr-stream-gen --dir ", dir, " --files ", files,
        " --records-per-file ", per_file, " --chunk ", chunk, " --interval-ms ", interval_ms,
        " --split-writes --end-marker _END --seed 7 > ", dir, "/../gen.out 2>&1");
    thread_ = std::thread([cmd, this] { code_ = std::system(cmd.c_str()); });
  }
  ~Generator() { Join(); }
  int Join() {
    if (thread_.joinable()) thread_.join();
    return code_;
  }

 private:
  std::thread thread_;
  int code_ = -1;
};

class StreamRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            absl::StrCat("tandem_stream_run_test_", ::getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "clicks");
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
  }
  std::string Path(const std::string& name) const { return (root_ / name).string(); }

  // Runs the job while the generator writes, kills `role` of worker 1 with SIGKILL between two
  // checkpoints once training is under way, and checks that every record of the stream was
  // trained exactly once (in the committed ledgers).
  void KillAndCountEveryRecord(const std::string& role) {
    std::ofstream(Path("job.yaml")) << StreamJob("stream-kill-" + role, Path("clicks"));
    Generator gen(Path("clicks"), kFiles, kPerFile, 150, 60);
    TandemRun run(Path("job.yaml"), Path("run"), Path("out.txt"));
    const std::string run_dir = Path("run");
    const auto deadline = Clock::now() + std::chrono::seconds(180);
    auto ready = [&] {
      const int64_t done = StepsDone(run_dir, 1);
      return HasCheckpoint(run_dir + "/checkpoints/trainer-0") &&
             HasCheckpoint(run_dir + "/checkpoints/trainer-1") && done >= 25 && done % 10 >= 3 &&
             done % 10 <= 8;
    };
    while (Clock::now() < deadline && run.Running() && !ready()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_TRUE(ready()) << "steps " << StepsDone(run_dir, 1) << "\n" << ReadFile(Path("out.txt"));
    const pid_t victim = FindChild(run.pid(), role, 1);
    ASSERT_GT(victim, 0) << ReadFile(Path("out.txt"));
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    const int code = run.Wait(std::chrono::seconds(300));
    EXPECT_EQ(gen.Join(), 0) << ReadFile(Path("gen.out"));
    const std::string out = ReadFile(Path("out.txt"));
    ASSERT_EQ(code, 0) << out;
    auto summary = SummaryOf(out);
    ASSERT_TRUE(summary.count("restarts")) << out;
    EXPECT_GE(std::stoi(summary["restarts"]), 1) << out;
    // Steps after the last checkpoint were rolled back and trained again: the case that matters.
    EXPECT_GT(std::stoll(summary["lost_steps"]), 0) << out;

    // Every ledger line: step, file, index in the file, qid. The generator's record i is
    // clicks-<i / kPerFile>.svm's record i % kPerFile, with qid i.
    std::map<int64_t, int> seen;
    for (int rank = 0; rank < 2; ++rank) {
      std::istringstream in(ReadFile(
          absl::StrCat(run_dir, "/checkpoints/trainer-", rank, "/stream-ledger-rank", rank, ".tsv")));
      std::string line;
      int64_t last_step = 0;
      while (std::getline(in, line)) {
        std::vector<std::string> f = absl::StrSplit(line, '\t');
        ASSERT_EQ(f.size(), 4u) << line;
        const int64_t step = std::stoll(f[0]), index = std::stoll(f[2]), qid = std::stoll(f[3]);
        EXPECT_GE(step, last_step) << "rank " << rank << ": " << line;
        last_step = step;
        char name[64];
        std::snprintf(name, sizeof(name), "clicks-%06lld.svm", static_cast<long long>(qid / kPerFile));
        EXPECT_EQ(f[1], name) << line;
        EXPECT_EQ(index, qid % kPerFile) << line;
        ++seen[qid];
      }
    }
    int64_t missing = 0, duplicated = 0;
    for (int64_t i = 0; i < kFiles * kPerFile; ++i) {
      auto it = seen.find(i);
      if (it == seen.end()) {
        ++missing;
      } else if (it->second > 1) {
        ++duplicated;
      }
    }
    EXPECT_EQ(missing, 0) << out;
    EXPECT_EQ(duplicated, 0) << out;
    EXPECT_EQ(seen.size(), static_cast<size_t>(kFiles * kPerFile));
  }

  fs::path root_;
};

TEST_F(StreamRunTest, KillNineOfATrainerTrainsEveryRecordExactlyOnce) {
  KillAndCountEveryRecord("trainer");
}

TEST_F(StreamRunTest, KillNineOfAPserverTrainsEveryRecordExactlyOnce) {
  KillAndCountEveryRecord("pserver");
}

// examples/ctr-streaming.yaml (its directory and evaluation interval changed for the test) while
// the generator writes: the online AUC of the rolling evaluation rises.
TEST_F(StreamRunTest, ExampleOnlineAucRisesAsItTrains) {
  std::string job = ReadFile(SourceDir() + "/examples/ctr-streaming.yaml");
  ASSERT_NE(job.find("/tmp/tandem-clicks"), std::string::npos);
  ASSERT_NE(job.find("intervalSteps: 100}"), std::string::npos);
  job = absl::StrReplaceAll(job, {{"/tmp/tandem-clicks", Path("clicks")},
                                  {"intervalSteps: 100}", "intervalSteps: 10}"}});
  std::ofstream(Path("job.yaml")) << job;
  Generator gen(Path("clicks"), 8, 5000, 1000, 100);
  TandemRun run(Path("job.yaml"), Path("run"), Path("out.txt"));
  const int code = run.Wait(std::chrono::seconds(400));
  EXPECT_EQ(gen.Join(), 0) << ReadFile(Path("gen.out"));
  const std::string out = ReadFile(Path("out.txt"));
  ASSERT_EQ(code, 0) << out;
  std::vector<double> auc;
  int64_t lag_events = 0;
  std::istringstream in(ReadFile(Path("run/metrics.jsonl")));
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || j.value("event", "") != "stream" || j.value("worker", -1) != 0) continue;
    if (j["onlineAuc"].is_number()) auc.push_back(j["onlineAuc"].get<double>());
    lag_events += j["lagBytes"].is_number_integer();
  }
  ASSERT_GE(auc.size(), 5u) << out;
  EXPECT_GE(auc.back(), auc.front() + 0.03) << out;
  EXPECT_GE(auc.back(), 0.64) << out;
  EXPECT_EQ(lag_events, static_cast<int64_t>(auc.size()));
  auto summary = SummaryOf(out);
  EXPECT_EQ(summary["restarts"], "0") << out;
}

}  // namespace
}  // namespace tandem
