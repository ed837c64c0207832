// The trainer memory estimate, checked against sums done by hand for small models, and its
// saturation on shapes too big to count.
#include "trainer/model/memory_estimate.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_builder.h"

namespace tandem::trainer {
namespace {

using ::testing::HasSubstr;

ModelGraph Build(const ModelDef& def) {
  ModelGraph graph;
  std::vector<FieldError> errors = BuildModelGraph(def, LayerRegistry::Builtin(), "spec.model", &graph);
  EXPECT_TRUE(errors.empty()) << errors[0].ToString();
  return graph;
}

// features [784] -> fc 100 -> relu -> fc 10 -> softmax cross-entropy with labels.
ModelDef Mlp(int64_t hidden) {
  ModelBuilder model;
  auto x = model.Features("x", {784});
  auto label = model.Labels("label");
  auto fc1 = model.Fc("fc1").Size(hidden).Input(x);
  auto relu = model.Relu("relu").Input(fc1);
  auto fc2 = model.Fc("fc2").Size(10).Input(relu);
  model.SoftmaxCrossEntropy("cost").Input(fc2).Label(label);
  return model.Build();
}

TEST(MemoryEstimateTest, MlpByHand) {
  const ModelGraph graph = Build(Mlp(100));
  const int64_t params = 784 * 100 + 100 + 100 * 10 + 10;  // weights and biases
  ASSERT_EQ(graph.NumParameters(), params);

  const MemoryEstimate sgd = EstimateTrainerMemory(graph, OptimizerType::kSgd, 32);
  EXPECT_EQ(sgd.parameter_bytes, params * 4);
  EXPECT_EQ(sgd.gradient_bytes, params * 4);
  EXPECT_EQ(sgd.optimizer_state_bytes, 0);
  // Activations: inputs x [784] and label [1] once; every layer output and its gradient.
  int64_t outputs = 0;
  for (size_t i = graph.inputs.size(); i < graph.blobs.size(); ++i)
    outputs += graph.blobs[i].shape.NumElements();
  EXPECT_EQ(sgd.activation_bytes, (784 + 1) * 32 * 4 + 2 * outputs * 32 * 4);

  const MemoryEstimate adam = EstimateTrainerMemory(graph, OptimizerType::kAdam, 32);
  EXPECT_EQ(adam.optimizer_state_bytes, 2 * params * 4);
  EXPECT_EQ(adam.total_bytes(), sgd.total_bytes() + 2 * params * 4);
  EXPECT_EQ(EstimateTrainerMemory(graph, OptimizerType::kMomentum, 32).optimizer_state_bytes,
            params * 4);
  // Activations scale with the batch, nothing else does.
  const MemoryEstimate big_batch = EstimateTrainerMemory(graph, OptimizerType::kSgd, 64);
  EXPECT_EQ(big_batch.activation_bytes, 2 * sgd.activation_bytes);
  EXPECT_EQ(big_batch.parameter_bytes, sgd.parameter_bytes);
}

TEST(MemoryEstimateTest, AModelTooBigForAnyMachineSaturatesAndExplains) {
  const ModelGraph graph = Build(Mlp(int64_t{1} << 40));  // 784 * 2^40 weights
  const MemoryEstimate m = EstimateTrainerMemory(graph, OptimizerType::kAdam, 64);
  EXPECT_GT(m.total_bytes(), int64_t{1} << 50);
  EXPECT_THAT(m.Explain(), HasSubstr("parameters"));
  EXPECT_THAT(m.Explain(), HasSubstr("(adam)"));
  EXPECT_THAT(m.Explain(), HasSubstr("PiB"));
}

TEST(MemoryEstimateTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3 GiB");
}

}  // namespace
}  // namespace tandem::trainer
