#include "trainer/optim/optimizer.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/backend/cpu/cpu_device.h"

namespace tandem::trainer {
namespace {

struct Fixture {
  std::unique_ptr<Device> device = CreateCpuDevice({.threads = 1});
  std::vector<Param> params;
  Param& Add(Shape shape, bool sparse, float value, float grad) {
    params.emplace_back();
    Param& p = params.back();
    p.desc.shape = shape;
    p.desc.sparse = sparse;
    p.value.Resize(*device, shape);
    p.grad.Resize(*device, shape);  // sparse: compact rows, room for every row
    device->Fill(p.value.size(), value, p.value.data());
    device->Fill(p.grad.size(), grad, p.grad.data());
    if (sparse) p.row_slot.assign(shape.dim(0), -1);
    return p;
  }
};

OptimizerConfig Parse(const nlohmann::json& j) {
  std::vector<FieldError> errors;
  OptimizerConfig c = ParseOptimizerConfig(j, "spec.optimizer", &errors);
  EXPECT_TRUE(errors.empty()) << errors[0].ToString();
  return c;
}

TEST(OptimizerTest, MomentumWithWeightDecayMatchesHandComputation) {
  Fixture f;
  f.params.reserve(1);
  Param& p = f.Add(Shape({2}), false, 1.f, 0.5f);
  Optimizer opt(Parse({{"type", "momentum"}, {"learningRate", 0.1}, {"momentum", 0.9},
                       {"weightDecay", 0.01}}),
                f.params, *f.device);
  opt.Step(0, 10);  // v = 0.5 + 0.01 = 0.51; w = 1 - 0.051
  EXPECT_NEAR(p.value.data()[0], 0.949f, 1e-6);
  opt.Step(1, 10);  // v = 0.9*0.51 + 0.5 + 0.01*0.949 = 0.96849; w -= 0.096849
  EXPECT_NEAR(p.value.data()[1], 0.949f - 0.096849f, 1e-6);
}

TEST(OptimizerTest, AdamFirstStepMovesByLearningRate) {
  Fixture f;
  f.params.reserve(1);
  Param& p = f.Add(Shape({3}), false, 0.f, -2.f);
  Optimizer opt(Parse({{"type", "adam"}, {"learningRate", 0.01}}), f.params, *f.device);
  opt.Step(0, 1);
  // Bias-corrected m/sqrt(v) is sign(g) on the first step.
  EXPECT_NEAR(p.value.data()[0], 0.01f, 1e-5);
}

TEST(OptimizerTest, AdagradTouchesOnlyTheRowsTheBatchUsed) {
  Fixture f;
  f.params.reserve(1);
  Param& p = f.Add(Shape({4, 2}), true, 1.f, 0.f);
  p.grad.data()[0] = p.grad.data()[1] = 0.5f;  // compact row 0: table row 1
  p.touched_rows = {1};
  p.row_slot[1] = 0;
  Optimizer opt(Parse({{"type", "adagrad"}, {"learningRate", 0.1}, {"weightDecay", 0.1}}),
                f.params, *f.device);
  opt.Step(0, 1);
  for (int row : {0, 2, 3}) {
    EXPECT_EQ(p.value.data()[row * 2], 1.f) << "untouched row " << row << " (despite weight decay)";
  }
  EXPECT_LT(p.value.data()[2], 1.f);
  EXPECT_TRUE(p.touched_rows.empty());
  EXPECT_EQ(p.row_slot[1], -1) << "the next backward gives the row a fresh, zeroed slot";
  Tensor* state = opt.State()[0];
  EXPECT_EQ(state->data()[0], 0.f);
  EXPECT_GT(state->data()[2], 0.f);
}

TEST(OptimizerTest, Schedules) {
  OptimizerConfig c = Parse({{"learningRate", 1.0},
                             {"schedule", {{"type", "step"}, {"stepSize", 10}, {"gamma", 0.5}}}});
  EXPECT_DOUBLE_EQ(c.LearningRateAt(9, 100), 1.0);
  EXPECT_DOUBLE_EQ(c.LearningRateAt(10, 100), 0.5);
  EXPECT_DOUBLE_EQ(c.LearningRateAt(25, 100), 0.25);
  OptimizerConfig cos = Parse({{"learningRate", 1.0},
                               {"schedule", {{"type", "cosine"}, {"minLearningRate", 0.1}}}});
  EXPECT_DOUBLE_EQ(cos.LearningRateAt(0, 101), 1.0);
  EXPECT_NEAR(cos.LearningRateAt(50, 101), 0.55, 1e-12);
  EXPECT_NEAR(cos.LearningRateAt(100, 101), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(Parse({{"learningRate", 0.3}}).LearningRateAt(1000, 10), 0.3);
}

TEST(OptimizerTest, ConfigErrorsHaveFullPaths) {
  std::vector<FieldError> errors;
  ParseOptimizerConfig({{"type", "momentum"}, {"learningRate", -1}, {"momentum", 1.5},
                        {"schedule", {{"type", "cosine"}, {"stepSize", 3}}}},
                       "spec.optimizer", &errors);
  std::vector<std::string> s;
  for (auto& e : errors) s.push_back(e.ToString());
  EXPECT_THAT(s, ::testing::Contains(::testing::HasSubstr("spec.optimizer.learningRate: must be in")));
  EXPECT_THAT(s, ::testing::Contains(::testing::HasSubstr("spec.optimizer.momentum: must be in")));
  EXPECT_THAT(s, ::testing::Contains(::testing::HasSubstr(
                     "spec.optimizer.schedule.stepSize: unknown field")));
}

}  // namespace
}  // namespace tandem::trainer
