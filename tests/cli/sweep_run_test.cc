// `tandem run sweep.yaml` end to end with the real trainer and pserver binaries, on a tiny budget
// (3 trials of 2 passes over 600 Fashion-MNIST examples): every trial runs as a local job in its
// own folder with its parameters written into its manifest, reports its objective after each pass,
// and the run ends with the best trial, a summary json and the exit code 0; ASHA pauses every trial
// at its rung and resumes the promoted one from its checkpoint. A sweep whose trials all fail
// exits 1 and says so. A CPU budget ends a sweep before maxTrials.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/local_run_harness.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::ReadFile;
using testing::TandemRun;

std::string TinySweep(const std::string& name, const std::string& optimizer) {
  return absl::StrCat(R"(apiVersion: tandem.dev/v1alpha1
kind: Sweep
metadata: {name: )", name, R"(}
spec:
  template:
    spec:
      workers: {count: 1}
      trainer: {threads: 1}
      passes: 2
      data:
        train: {format: idx, limit: 600}
        test: {format: idx, limit: 200}
        batchSize: 50
      model:
        inputs:
          - {name: image, source: features, shape: [1, 28, 28]}
          - {name: label, source: labels}
        layers:
          - {name: fc1, type: fc, input: image, size: 16}
          - {name: relu1, type: relu, input: fc1}
          - {name: fc2, type: fc, input: relu1, size: 10}
          - {name: cost, type: softmax_cross_entropy, inputs: [fc2, label]}
      optimizer: )", optimizer, R"(
      restartPolicy: {backoffLimit: 0, backoffSeconds: 1}
  parameters:
    - {name: lr, path: spec.optimizer.learningRate, type: float, min: 0.01, max: 0.3, scale: log}
    - {name: width, path: "spec.model.layers[fc1].size", type: choice, values: [8, 16, 32]}
  algorithm: {name: random}
  earlyStopping: {policy: asha, minPasses: 1, reductionFactor: 2}
  parallelism: 2
  maxTrials: 3
  maxFailedTrials: 0
  seed: 11
)");
}

class SweepRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / absl::StrCat("tandem_sweep_run_", ::getpid(), "_",
                                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  // `tandem run` on the sweep `text` (written as sweep.yaml) into run_dir(), waiting at most
  // `timeout`: its exit code, its console output, and its sweep-summary.json (null if unreadable).
  struct Ran {
    int code = -1;
    std::string output;
    json summary;
  };
  Ran RunSweep(const std::string& text, std::chrono::seconds timeout) {
    const std::string manifest = (dir_ / "sweep.yaml").string(), out = (dir_ / "out.txt").string();
    std::ofstream(manifest) << text;
    TandemRun run(manifest, run_dir(), out);
    Ran r;
    r.code = run.Wait(timeout);
    r.output = ReadFile(out);
    r.summary = json::parse(ReadFile(run_dir() + "/sweep-summary.json"), nullptr, false);
    return r;
  }
  std::string run_dir() const { return (dir_ / "run").string(); }
  fs::path dir_;
};

TEST_F(SweepRunTest, TrialsRunAsLocalJobsAndTheBestIsReported) {
  const Ran ran = RunSweep(TinySweep("tiny", "{type: momentum, learningRate: 0.1, momentum: 0.9}"),
                           std::chrono::seconds(300));
  const std::string& output = ran.output;
  json summary = ran.summary;  // a copy: a missing key reads as null, not an assertion
  const std::string run_dir = this->run_dir();
  ASSERT_EQ(ran.code, 0) << output;
  ASSERT_TRUE(summary.is_object()) << output;
  EXPECT_EQ(summary["phase"], "Succeeded");
  ASSERT_EQ(summary["trials"].size(), 3u) << summary.dump(2);
  EXPECT_GT(summary["cpu_s"].get<double>(), 0);
  int64_t passes_trained = 0;
  for (const json& t : summary["trials"]) {
    const std::string name = t["name"];
    EXPECT_TRUE(t["phase"] == "Succeeded" || t["phase"] == "Stopped") << t.dump();
    ASSERT_TRUE(t.contains("intermediate")) << t.dump();
    EXPECT_EQ(t["intermediate"][0]["pass"], 1) << "the objective after pass 1 reached the search: " << t.dump();
    const double acc = t["objective"].get<double>();
    EXPECT_GE(acc, 0.0);
    EXPECT_LE(acc, 1.0);
    passes_trained += t["phase"] == "Succeeded" ? 2 : t["intermediate"].back()["pass"].get<int64_t>();
    // Its measured cost (the cost-aware sampler's input): the CPU of its processes per pass, a
    // share of the sweep's CPU.
    ASSERT_TRUE(t.contains("cost")) << t.dump();
    EXPECT_GT(t["cost"].get<double>(), 0) << t.dump();
    EXPECT_LT(t["cost"].get<double>(), summary["cpu_s"].get<double>()) << t.dump();
    // The trial's manifest carries its parameters; its folder is a local run's.
    json job = json::parse(ReadFile(run_dir + "/trials/" + name + ".yaml"), nullptr, false);
    ASSERT_TRUE(job.is_object()) << name;
    EXPECT_EQ(job["spec"]["optimizer"]["learningRate"], t["parameters"]["lr"]);
    EXPECT_EQ(job["spec"]["model"]["layers"][0]["size"], t["parameters"]["width"]);
    EXPECT_GE(t["parameters"]["lr"].get<double>(), 0.01);
    EXPECT_LE(t["parameters"]["lr"].get<double>(), 0.3);
    EXPECT_TRUE(fs::exists(run_dir + "/trials/" + name + "/metrics.jsonl")) << name;
    EXPECT_TRUE(fs::exists(run_dir + "/trials/" + name + "/logs")) << name;
  }
  EXPECT_EQ(summary["passesTrained"], passes_trained);
  ASSERT_TRUE(summary.contains("bestTrial"));
  double best = -1;
  for (const json& t : summary["trials"])
    if (t["phase"] == "Succeeded") best = std::max(best, t["objective"].get<double>());
  EXPECT_EQ(summary["bestTrial"]["objective"].get<double>(), best);
  EXPECT_NE(output.find("best: " + summary["bestTrial"]["name"].get<std::string>()), std::string::npos) << output;
  EXPECT_NE(output.find("trial tiny-0 started: lr="), std::string::npos) << output;

  // ASHA (eta 2, one rung at pass 1): every trial paused there, exactly (its trainer checkpointed
  // after pass 1 and exited); with two at the rung the better was promoted and resumed from its
  // checkpoint in the same folder; those never promoted ended Stopped at the rung.
  int promoted = 0;
  for (const json& t : summary["trials"]) {
    const std::string name = t["name"];
    std::vector<json> events;
    std::ifstream lines(run_dir + "/trials/" + name + "/metrics.jsonl");
    for (std::string line; std::getline(lines, line);) {
      json e = json::parse(line, nullptr, false);
      if (e.is_object() && (e.value("event", "") == "paused" || e.value("event", "") == "resumed")) events.push_back(e);
    }
    ASSERT_FALSE(events.empty()) << name;
    EXPECT_EQ(events[0]["event"], "paused") << name;
    EXPECT_EQ(events[0]["pass"], 1) << name;
    EXPECT_EQ(events[0]["step"], 12) << name << ": 600 examples in batches of 50";
    if (t["phase"] == "Succeeded") {
      ++promoted;
      EXPECT_EQ(t.value("promotedFrom", 0), 1) << t.dump();
      ASSERT_EQ(events.size(), 2u) << name;
      EXPECT_EQ(events[1]["event"], "resumed") << name;
      EXPECT_EQ(events[1]["step"], 12) << name << ": from the pause's checkpoint";
      EXPECT_EQ(t["intermediate"].back()["pass"], 2) << t.dump();
    } else {
      EXPECT_EQ(events.size(), 1u) << name << ": never resumed";
      EXPECT_EQ(t.value("pausedAt", 0), 1) << t.dump();
      EXPECT_EQ(t["intermediate"].size(), 1u) << "nothing trained past the rung: " << t.dump();
      EXPECT_NE(t["reason"].get<std::string>().find("not promoted"), std::string::npos) << t.dump();
    }
  }
  EXPECT_GE(promoted, 1) << "with two trials at rung 1 the better is promoted";
  EXPECT_NE(output.find("promoted (resumes from its checkpoint)"), std::string::npos) << output;
}

// earlyStopping.policy sha through `tandem run` (eta 3, one rung at pass 1): every trial pauses
// at the rung, and the one promoted resumes only after the last of them paused there (ASHA would
// promote the better of the first two, as the test above shows, before the third has trained).
TEST_F(SweepRunTest, ShaPromotesOnlyAfterEveryTrialPausedAtTheRung) {
  std::string text = TinySweep("sha", "{type: momentum, learningRate: 0.1, momentum: 0.9}");
  text.replace(text.find("policy: asha, minPasses: 1, reductionFactor: 2"), 46,
               "policy: sha, minPasses: 1, reductionFactor: 3");
  const Ran ran = RunSweep(text, std::chrono::seconds(300));
  json summary = ran.summary;
  ASSERT_EQ(ran.code, 0) << ran.output;
  ASSERT_TRUE(summary.is_object()) << ran.output;
  EXPECT_EQ(summary["phase"], "Succeeded") << summary.dump(2);
  ASSERT_EQ(summary["trials"].size(), 3u) << summary.dump(2);
  double last_pause = 0, resumed_at = 0;
  int promoted = 0;
  for (const json& t : summary["trials"]) {
    const std::string name = t["name"];
    std::ifstream lines(run_dir() + "/trials/" + name + "/metrics.jsonl");
    for (std::string line; std::getline(lines, line);) {
      json e = json::parse(line, nullptr, false);
      if (!e.is_object()) continue;
      if (e.value("event", "") == "paused") {
        EXPECT_EQ(e["pass"], 1) << name;
        last_pause = std::max(last_pause, e.value("time", 0.0));
      }
      if (e.value("event", "") == "resumed") resumed_at = e.value("time", 0.0);
    }
    if (t["phase"] == "Succeeded") {
      ++promoted;
      EXPECT_EQ(t.value("promotedFrom", 0), 1) << t.dump();
    } else {
      EXPECT_EQ(t["phase"], "Stopped") << t.dump();
      EXPECT_NE(t["reason"].get<std::string>().find("sha: paused at rung 1"), std::string::npos) << t.dump();
    }
  }
  EXPECT_EQ(promoted, 1) << "the top floor(3/3) of rung 1: " << summary.dump(2);
  ASSERT_GT(last_pause, 0) << summary.dump(2);
  EXPECT_GT(resumed_at, last_pause) << "the promotion came before every trial had paused at the rung";
}

// spec.budget.cpuSeconds through `tandem run`: the trials' processes' CPU is charged while they
// run; the sweep starts no trial the rest of the budget cannot pay for, stops what runs once it is
// spent, and ends Succeeded with the reason, long before maxTrials.
TEST_F(SweepRunTest, ACpuBudgetEndsTheSweepBeforeMaxTrials) {
  std::string text = TinySweep("budget", "{type: momentum, learningRate: 0.1, momentum: 0.9}");
  text.replace(text.find("maxTrials: 3"), 12, "maxTrials: 40\n  budget: {cpuSeconds: 1}");
  const Ran ran = RunSweep(text, std::chrono::seconds(300));
  json summary = ran.summary;  // a copy: a missing key reads as null, not an assertion
  ASSERT_EQ(ran.code, 0) << ran.output;
  ASSERT_TRUE(summary.is_object()) << ran.output;
  EXPECT_EQ(summary["phase"], "Succeeded") << summary.dump(2);
  EXPECT_NE(summary["message"].get<std::string>().find("spec.budget.cpuSeconds 1"), std::string::npos)
      << summary["message"];
  const size_t trials = summary["trials"].size();
  EXPECT_GE(trials, 2u);
  EXPECT_LT(trials, 40u) << "the budget, not maxTrials, ended it";
  ASSERT_TRUE(summary.contains("budget")) << summary.dump(2);
  EXPECT_EQ(summary["budget"]["cpuSeconds"], 1);
  double spent = 0, most = 0;
  for (const json& t : summary["trials"]) {
    ASSERT_TRUE(t.contains("cpuSeconds")) << t.dump();
    const double c = t["cpuSeconds"].get<double>();
    EXPECT_GT(c, 0) << t.dump();
    spent += c;
    most = std::max(most, c);
  }
  EXPECT_NEAR(summary["budget"]["spent"].get<double>(), spent, 1e-6);
  // What the trials used is what the sweep's children used (both from wait4).
  EXPECT_NEAR(spent, summary["cpu_s"].get<double>(), 0.05 * summary["cpu_s"].get<double>() + 0.05);
  // Spent up to the budget, and past it at most by what the two trials in flight could use.
  EXPECT_GE(spent, 0.5) << summary.dump(2);
  EXPECT_LE(spent, 1 + 2 * most) << summary.dump(2);
}

TEST_F(SweepRunTest, ASweepWhoseTrialsFailExitsOne) {
  // Data files that exist but are not IDX: the trainers fail at start-up, and maxFailedTrials is 0.
  const std::string garbage = (dir_ / "garbage.gz").string();
  std::ofstream(garbage) << "not an idx file";
  std::string text = TinySweep("broken", "{type: momentum, learningRate: 0.1, momentum: 0.9}");
  text.replace(text.find("train: {format: idx, limit: 600}"), 32,
               absl::StrCat("train: {format: idx, images: ", garbage, ", labels: ", garbage, "}"));
  const Ran ran = RunSweep(text, std::chrono::seconds(120));
  const std::string& output = ran.output;
  json summary = ran.summary;  // a copy: a missing key reads as null, not an assertion
  EXPECT_EQ(ran.code, 1) << output;
  ASSERT_TRUE(summary.is_object()) << output;
  EXPECT_EQ(summary["phase"], "Failed");
  EXPECT_GE(summary["trialsByPhase"]["failed"].get<int>(), 1);
  EXPECT_NE(output.find("spec.maxFailedTrials allows 0"), std::string::npos) << output;
}

}  // namespace
}  // namespace tandem
