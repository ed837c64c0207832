// The job's checkpoint is a consistent cut: `tandem run` of a CTR job with 2 trainers and 2
// pservers (sync, fixed seed, 1 thread), where (a) a trainer or (b) a pserver is killed with
// SIGKILL between two checkpoints and restarted, finishes with final weights equal to those of an
// uninterrupted run: the dense model (the trainers' final model file) and every shard's rows and
// optimizer state (the pservers' final checkpoints). Had the trainers resumed against shards of
// another step (the old behaviour), the weights would differ. Steps lost are reported (the summary
// line's lost_steps) and stay within one checkpoint interval. A pserver stopped with SIGTERM
// (final checkpoint) and restarted loses nothing and restarts no trainer.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/checkpoint.h"
#include "gtest/gtest.h"
#include "pserver/shard_checkpoint.h"
#include "tests/common/local_run_harness.h"
#include "tests/trainer/ps/ctr_restart_job.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::FindChild;
using testing::HasCheckpoint;
using testing::ReadFile;
using testing::StepsDone;
using testing::SummaryOf;

constexpr int kInterval = testing::kCheckpointInterval;

// 2 workers x 30,000 examples of batch 128: 235 steps per trainer.
const std::string kJob = testing::CtrRestartJob("ctr-cut", 60000, /*backoff_limit=*/4);

// Everything the job learned: the final model's dense arrays and, per shard and table, every row
// (sorted by key) with its optimizer state.
struct FinalWeights {
  std::map<std::string, std::vector<float>> arrays;
  uint64_t shard_versions = 0;
};

FinalWeights Collect(const std::string& run_dir) {
  FinalWeights w;
  std::string model;
  for (const auto& e : fs::directory_iterator(run_dir + "/model"))
    if (e.path().extension() == ".ckpt") model = e.path().string();
  EXPECT_FALSE(model.empty()) << "no final model in " << run_dir;
  if (model.empty()) return w;
  auto ckpt = ReadCheckpoint(model);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  if (!ckpt.ok()) return w;
  for (const CheckpointArray& a : ckpt->arrays) {
    if (a.dtype != DType::kFloat32) continue;
    auto f = a.Floats();
    w.arrays["model/" + a.name].assign(f.begin(), f.end());
  }
  for (int shard = 0; shard < 2; ++shard) {
    pserver::ShardCheckpointer sc(absl::StrCat(run_dir, "/checkpoints/pserver-", shard), shard, 3);
    auto state = sc.LoadLatest();
    EXPECT_TRUE(state.ok() && state->has_value()) << "shard " << shard << " of " << run_dir;
    if (!state.ok() || !state->has_value()) continue;
    w.shard_versions += (*state)->version;
    for (const auto& t : (*state)->tables) {
      const size_t n = t.data.keys.size();
      const size_t stride = n == 0 ? 0 : t.data.values.size() / n;
      std::vector<size_t> order(n);
      for (size_t i = 0; i < n; ++i) order[i] = i;
      std::sort(order.begin(), order.end(),
                [&](size_t a, size_t b) { return t.data.keys[a] < t.data.keys[b]; });
      std::vector<float> rows;
      rows.reserve(t.data.values.size() + n);
      for (size_t i : order) {
        rows.push_back(static_cast<float>(t.data.keys[i] % 1000003));
        rows.insert(rows.end(), t.data.values.begin() + i * stride,
                    t.data.values.begin() + (i + 1) * stride);
      }
      w.arrays[absl::StrCat("shard-", shard, "/", t.config.name())] = std::move(rows);
    }
  }
  return w;
}

void ExpectSameWeights(const FinalWeights& want, const FinalWeights& got) {
  EXPECT_EQ(want.shard_versions, got.shard_versions);
  ASSERT_EQ(want.arrays.size(), got.arrays.size());
  for (const auto& [name, a] : want.arrays) {
    auto it = got.arrays.find(name);
    ASSERT_NE(it, got.arrays.end()) << name;
    const std::vector<float>& b = it->second;
    ASSERT_EQ(a.size(), b.size()) << name << ": rows created differ";
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double d = std::abs(static_cast<double>(a[i]) - b[i]);
      worst = std::max(worst, d);
      if (d > 1e-5 * (1 + std::abs(a[i]))) ++bad;
    }
    EXPECT_EQ(bad, 0u) << name << ": " << bad << " of " << a.size()
                       << " values differ from the uninterrupted run (largest difference "
                       << worst << ")";
  }
}

class ConsistentRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / absl::StrCat("consistent-restart-test-", ::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_);
    std::ofstream(Path("job.yaml")) << kJob;
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
  }
  std::string Path(const std::string& name) const { return (root_ / name).string(); }

  // Runs the job; with `victim` ("trainer" / "pserver"), sends `signal` to worker
  // `victim_rank`'s process between two checkpoints. Returns the output.
  std::string RunJob(const std::string& name, const std::string& victim, int victim_rank,
                     int* code, int signal = SIGKILL) {
    const std::string run_dir = Path(name);
    testing::TandemRun run(Path("job.yaml"), run_dir, Path(name + ".out"),
                           {{"OMP_WAIT_POLICY", "passive"}});
    if (!victim.empty()) {
      const auto deadline = Clock::now() + std::chrono::seconds(120);
      auto ready = [&] {
        const int64_t done = StepsDone(run_dir, 0);
        return HasCheckpoint(run_dir + "/checkpoints/trainer-0") &&
               HasCheckpoint(run_dir + "/checkpoints/trainer-1") && done >= 2 * kInterval &&
               done % kInterval >= 5 && done % kInterval <= 15;
      };
      while (Clock::now() < deadline && run.Running() && !ready())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const pid_t pid = FindChild(run.pid(), victim, victim_rank);
      EXPECT_GT(pid, 0) << "no " << victim << " " << victim_rank << "\n"
                        << ReadFile(Path(name + ".out"));
      if (pid > 0) {
        killed_at_ = StepsDone(run_dir, 0);
        EXPECT_EQ(::kill(pid, signal), 0);
      }
    }
    *code = run.Wait(std::chrono::seconds(300));
    return ReadFile(Path(name + ".out"));
  }

  fs::path root_;
  int64_t killed_at_ = -1;
};

TEST_F(ConsistentRestartTest, KilledTrainerOrPserverResumesTheSameComputation) {
  int code = -1;
  const std::string clean = RunJob("clean", "", 0, &code);
  ASSERT_EQ(code, 0) << clean;
  EXPECT_EQ(SummaryOf(clean)["lost_steps"], "0") << clean;
  const FinalWeights want = Collect(Path("clean"));
  ASSERT_FALSE(want.arrays.empty());
  EXPECT_EQ(want.shard_versions, 2u * 235u);

  struct Case {
    std::string name, victim;
    int rank;
  };
  for (const Case& c : {Case{"trainer-killed", "trainer", 0},
                        Case{"pserver-killed", "pserver", 1}}) {
    SCOPED_TRACE(c.name);
    killed_at_ = -1;
    const std::string out = RunJob(c.name, c.victim, c.rank, &code);
    ASSERT_EQ(code, 0) << out;
    ASSERT_GT(killed_at_, 0) << out;
    auto summary = SummaryOf(out);
    ASSERT_TRUE(summary.count("lost_steps")) << out;
    const int lost = std::stoi(summary["lost_steps"]);
    EXPECT_GT(lost, 0) << "killed at step " << killed_at_ << "\n" << out;
    EXPECT_LE(lost, kInterval) << out;
    EXPECT_GE(std::stoi(summary["restarts"]), 2) << out;  // the victim and the other trainer
    std::cout << c.name << ": killed after step " << killed_at_ << ", restarts "
              << summary["restarts"] << ", lost_steps " << lost << std::endl;
    ExpectSameWeights(want, Collect(Path(c.name)));
  }

  // A pserver stopped with SIGTERM writes a final checkpoint of the step the trainers wait in:
  // restarted, it continues with them, nothing is lost and no trainer restarts.
  SCOPED_TRACE("pserver-terminated");
  killed_at_ = -1;
  const std::string out = RunJob("pserver-terminated", "pserver", 0, &code, SIGTERM);
  ASSERT_EQ(code, 0) << out;
  ASSERT_GT(killed_at_, 0) << out;
  auto summary = SummaryOf(out);
  EXPECT_EQ(summary["lost_steps"], "0") << out;
  EXPECT_EQ(summary["restarts"], "1") << out;
  std::cout << "pserver-terminated: stopped after step " << killed_at_ << ", restarts "
            << summary["restarts"] << ", lost_steps " << summary["lost_steps"] << std::endl;
  ExpectSameWeights(want, Collect(Path("pserver-terminated")));
}

}  // namespace
}  // namespace tandem
