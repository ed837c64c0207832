// End-to-end training on a slice of Fashion-MNIST: the loop learns, evaluation runs, and a run
// resumed from a checkpoint ends with the same weights as an uninterrupted one.
#include "trainer/engine/trainer.h"

#include <filesystem>
#include <fstream>

#include "common/checkpoint.h"
#include "common/yaml_json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem::trainer {
namespace {

constexpr char kSpec[] = R"(
passes: 2
trainer: {threads: 1}
data:
  train: {format: idx, limit: 1280}
  test: {format: idx, limit: 500}
  batchSize: 64
  seed: 3
model:
  inputs:
    - {name: image, source: features, shape: [1, 28, 28]}
    - {name: label, source: labels}
  layers:
    - {name: conv, type: conv2d, input: image, numFilters: 4, filterSize: 3, stride: 2}
    - {name: relu, type: relu, input: conv}
    - {name: pool, type: max_pool, input: relu}
    - {name: drop, type: dropout, input: pool, rate: 0.2}
    - {name: fc, type: fc, input: drop, size: 10}
    - {name: cost, type: softmax_cross_entropy, inputs: [fc, label]}
optimizer: {type: momentum, learningRate: 0.05, momentum: 0.9, weightDecay: 0.0001}
)";

TrainerSpec Spec() {
  auto docs = YamlToJson(kSpec, "spec");
  EXPECT_TRUE(docs.ok());
  auto spec = ParseTrainerSpec((*docs)[0], {.check_files = true});
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

std::string TempDir(const std::string& name) {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("tandem_trainer_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(TrainerTest, LearnsAndEvaluates) {
  auto result = Train(Spec(), {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 40);
  EXPECT_EQ(result->examples, 2560);
  EXPECT_GT(result->test_accuracy, 0.6) << "well above chance (0.1) after 2560 examples";
  EXPECT_LT(result->test_loss, 1.2);
  EXPECT_THAT(result->SummaryLine(), ::testing::HasSubstr("test_accuracy="));
}

TEST(TrainerTest, ResumeGivesTheSameWeightsAsAnUninterruptedRun) {
  auto full = Train(Spec(), {});
  ASSERT_TRUE(full.ok()) << full.status();

  const std::string dir = TempDir("resume");
  // Interrupted after 25 steps (mid-pass 2), with a checkpoint every 5 steps.
  auto first = Train(Spec(), {.checkpoint_dir = dir, .checkpoint_every = 5, .max_steps = 25});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->steps, 25);
  auto second = Train(Spec(), {.checkpoint_dir = dir, .checkpoint_every = 5, .resume = true});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->steps, 40);
  ASSERT_EQ(second->final_parameters.size(), full->final_parameters.size());
  EXPECT_EQ(second->final_parameters, full->final_parameters);
  std::filesystem::remove_all(dir);
}

// ASHA's pause at a rung (TrainOptions::stop_after_pass): the run checkpoints after the pass and
// returns; resumed, it ends with the same weights and test figures as an uninterrupted run (the
// learning-rate schedule spans every pass, the data order is the pass'). Checkpoints at the ends
// of passes (0) and every few steps (7, not a divisor of the pass' 20 steps) both.
TEST(TrainerTest, PausedAfterAPassAndResumedEqualsUninterrupted) {
  TrainerSpec spec = Spec();
  spec.passes = 3;
  auto full = Train(spec, {});
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->paused_after_pass, 0);
  for (int64_t every : {0, 7}) {
    SCOPED_TRACE(every);
    const std::string dir = TempDir("pause" + std::to_string(every));
    auto paused = Train(spec, {.checkpoint_dir = dir, .checkpoint_every = every, .stop_after_pass = 1});
    ASSERT_TRUE(paused.ok()) << paused.status();
    EXPECT_EQ(paused->paused_after_pass, 1);
    EXPECT_EQ(paused->steps, 20) << "one pass of 1280 examples in batches of 64";
    auto resumed = Train(spec, {.checkpoint_dir = dir, .checkpoint_every = every, .resume = true});
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    EXPECT_EQ(resumed->resumed_step, 20) << "resumed from the pause's checkpoint";
    EXPECT_EQ(resumed->paused_after_pass, 0);
    EXPECT_EQ(resumed->steps, 60);
    EXPECT_EQ(resumed->final_parameters, full->final_parameters);
    EXPECT_EQ(resumed->test_accuracy, full->test_accuracy);
    EXPECT_EQ(resumed->test_loss, full->test_loss);
    std::filesystem::remove_all(dir);
  }
  // At or past the last pass there is nothing to pause for: the run finishes.
  auto last = Train(spec, {.stop_after_pass = 3});
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->paused_after_pass, 0);
  EXPECT_EQ(last->final_parameters, full->final_parameters);
}

TEST(TrainerTest, CorruptCheckpointIsRefusedNotLoaded) {
  const std::string dir = TempDir("corrupt");
  auto first = Train(Spec(), {.checkpoint_dir = dir, .checkpoint_every = 10, .max_steps = 20});
  ASSERT_TRUE(first.ok()) << first.status();
  // Flip one byte in the newest checkpoint (step 20): resume must fall back to step 10.
  const std::string newest = NumberedCheckpointPath(dir, "trainer", 20);
  ASSERT_TRUE(std::filesystem::exists(newest));
  {
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    char c;
    f.read(&c, 1);
    f.seekp(100);
    c ^= 0x40;
    f.write(&c, 1);
  }
  auto resumed = Train(Spec(), {.checkpoint_dir = dir, .resume = true, .max_steps = 21});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->steps, 21);
  EXPECT_EQ(resumed->examples, 11 * 64) << "resumed from step 10, not from the corrupt step 20";
  std::filesystem::remove_all(dir);
}

TEST(TrainerBinaryTest, InvalidManifestExitsTwoWithFieldPaths) {
  const std::string dir = TempDir("binary");
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/job.yaml";
  std::ofstream(path) << "apiVersion: tandem.dev/v1alpha1\nkind: TrainingJob\nspec:\n"
                         "  model:\n    inputs: [{name: x, source: features, shape: [4]}]\n"
                         "    layers: [{name: f, type: fc, input: x, size: 0}]\n";
  auto r = tandem::testing::RunCommand(tandem::testing::BinDir() + "/tandem-trainer " + path);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, ::testing::HasSubstr("spec.model.layers[0].size: layer 'f' (fc): must be >= 1, got 0"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem::trainer
