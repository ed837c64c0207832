// Train() on a stream, in one process: maxSteps ends the run successfully at that step; a run
// stopped at a checkpoint and resumed reads exactly the records an uninterrupted run reads next,
// so it ends with bit-identical weights; the end marker ends the run once everything is read;
// a stop request checkpoints the position.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/checkpoint.h"
#include "common/yaml_json.h"
#include "trainer/engine/trainer.h"
#include "trainer/model/trainer_spec.h"

namespace tandem::trainer {
namespace {

namespace fs = std::filesystem;

constexpr char kSpec[] = R"(
trainer: {threads: 1}
data:
  train:
    format: libsvm
    numFields: 3
    stream: {dir: DIR, endMarker: _END, pollSeconds: 0.05, MAXSTEPS
             rollingEval: {windowRecords: 200, intervalSteps: 5}}
  batchSize: 16
model:
  inputs:
    - {name: ids, source: fields, shape: [3]}
    - {name: click, source: targets}
  layers:
    - {name: emb, type: embedding, input: ids, vocabSize: 101, size: 4, pooling: sum}
    - {name: logit, type: fc, input: emb, size: 1}
    - {name: cost, type: binary_cross_entropy, inputs: [logit, click]}
optimizer: {type: adagrad, learningRate: 0.1}
)";

class StreamTrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            absl::StrCat("stream_train_test_", ::getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "in");
    // 3 files of 100 records; the click depends on field 0's id, so the model can learn it.
    int64_t id = 0;
    for (int f = 0; f < 3; ++f) {
      std::ofstream out(root_ / "in" / absl::StrCat("part-", f, ".svm"));
      for (int k = 0; k < 100; ++k, ++id) {
        const int a = static_cast<int>((id * 7) % 10), b = static_cast<int>((id * 13) % 17);
        out << (a < 5 ? 1 : 0) << " qid:" << id << " 0:" << a << ":1 1:" << 20 + b << ":1 2:"
            << 50 + id % 3 << ":1\n";
      }
    }
    std::ofstream(root_ / "in" / "_END").close();
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
  }
  TrainerSpec Spec(int64_t max_steps = 0) const {
    std::string text = absl::StrReplaceAll(
        kSpec, {{"DIR", (root_ / "in").string()},
                {"MAXSTEPS", max_steps > 0 ? absl::StrCat("maxSteps: ", max_steps, ",") : ""}});
    auto docs = YamlToJson(text, "spec");
    EXPECT_TRUE(docs.ok()) << docs.status();
    auto spec = ParseTrainerSpec((*docs)[0], {.check_files = true});
    EXPECT_TRUE(spec.ok()) << spec.status();
    return *spec;
  }
  std::string Dir(const std::string& name) const { return (root_ / name).string(); }

  fs::path root_;
};

TEST_F(StreamTrainTest, ReadsToTheEndMarkerAndLearns) {
  auto r = Train(Spec(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->examples, 300);
  EXPECT_EQ(r->steps, 19);  // 300 records in batches of 16: 18 full and one of 12
  EXPECT_GT(r->test_auc, 0.75) << "the rolling AUC of a learnable click";
}

TEST_F(StreamTrainTest, MaxStepsEndsTheRunAtThatStep) {
  auto r = Train(Spec(/*max_steps=*/7), {.checkpoint_dir = Dir("ckpt")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps, 7);
  EXPECT_EQ(r->examples, 7 * 16);
  // The final checkpoint holds the position after the 112 records trained.
  auto files = ListNumberedCheckpoints(Dir("ckpt"), "trainer");
  ASSERT_TRUE(files.ok());
  ASSERT_FALSE(files->empty());
  auto ckpt = CheckpointFile::Open(files->back().path);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->metadata()["stream"]["records"], 112);
  EXPECT_EQ((*ckpt)->metadata()["stream"]["file"], "part-1.svm");
  EXPECT_EQ((*ckpt)->metadata()["stream"]["ordinal"], 12);
}

TEST_F(StreamTrainTest, ResumeGivesTheSameWeightsAsAnUninterruptedRun) {
  auto full = Train(Spec(), {});
  ASSERT_TRUE(full.ok()) << full.status();
  // Stopped at step 9 (checkpoints every 3 steps), then resumed to the end marker.
  auto first = Train(Spec(), {.checkpoint_dir = Dir("ckpt"), .checkpoint_every = 3, .max_steps = 9});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->steps, 9);
  auto second = Train(Spec(), {.checkpoint_dir = Dir("ckpt"), .checkpoint_every = 3, .resume = true});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->resumed_step, 9);
  EXPECT_EQ(second->steps, 19);
  EXPECT_EQ(first->examples + second->examples, 300);
  ASSERT_EQ(second->final_parameters.size(), full->final_parameters.size());
  EXPECT_EQ(second->final_parameters, full->final_parameters);
}

TEST_F(StreamTrainTest, StopRequestCheckpointsThePosition) {
  std::atomic<bool> stop{true};  // requested before the first step: stops at once, step 0
  auto r = Train(Spec(), {.checkpoint_dir = Dir("ckpt"), .stop = &stop});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  stop = false;
  auto resumed = Train(Spec(), {.checkpoint_dir = Dir("ckpt"), .resume = true, .stop = &stop});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->examples, 300);  // nothing was trained before the stop, nothing is skipped
}

}  // namespace
}  // namespace tandem::trainer
