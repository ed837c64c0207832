// The trainer memory estimate, checked against sums done by hand for small models, and its
// saturation on shapes too big to count.
#include "trainer/model/memory_estimate.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_builder.h"
#include "trainer/model/trainer_spec.h"

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

// The estimate wired into the one validation (trainer/model/trainer_spec.h): the spec of a
// TrainingJob after defaults, against the trainer's memory budget.
nlohmann::json Spec(int64_t hidden, const std::string& optimizer, nlohmann::json trainer_resources,
                    const std::string& dense = "ring") {
  return {{"trainer", {{"resources", trainer_resources}}},
          {"model", {{"inputs", {{{"name", "image"}, {"source", "features"}, {"shape", {1, 28, 28}}},
                                 {{"name", "label"}, {"source", "labels"}}}},
                     {"layers", {{{"name", "fc1"}, {"type", "fc"}, {"input", "image"}, {"size", hidden}},
                                 {{"name", "cost"}, {"type", "softmax_cross_entropy"}, {"inputs", {"fc1", "label"}}}}},
                     {"cost", "cost"}}},
          {"data", {{"batchSize", 64}}},
          {"optimizer", {{"type", optimizer}, {"learningRate", 0.01}}},
          {"sync", {{"dense", dense}}}};
}

TEST(TrainerMemoryCheckTest, TheBudgetIsTheLimitElseTheRequestAndPServerStateIsLeftOut) {
  const nlohmann::json req2g = {{"requests", {{"memory", "2Gi"}}}};
  // fc 784 -> 2^18: 785 MiB of parameters; adam doubles it again in optimizer state.
  struct Case {
    const char* name;
    nlohmann::json spec;
    bool fits;
    const char* field;
  } cases[] = {
      {"small model", Spec(100, "sgd", req2g), true, "spec.trainer.resources.requests.memory"},
      {"sgd fits 2Gi", Spec(1 << 18, "sgd", req2g), true, "spec.trainer.resources.requests.memory"},
      {"adam does not", Spec(1 << 18, "adam", req2g), false, "spec.trainer.resources.requests.memory"},
      {"the limit is the wall", Spec(1 << 18, "adam", {{"requests", {{"memory", "2Gi"}}}, {"limits", {{"memory", "4Gi"}}}}),
       true, "spec.trainer.resources.limits.memory"},
      {"a smaller limit", Spec(1 << 18, "sgd", {{"requests", {{"memory", "2Gi"}}}, {"limits", {{"memory", "1Gi"}}}}),
       false, "spec.trainer.resources.limits.memory"},
      {"adam's state on the pservers", Spec(1 << 18, "adam", req2g, "pserver"), true,
       "spec.trainer.resources.requests.memory"},
  };
  for (const Case& c : cases) {
    std::optional<TrainerMemoryCheck> check = CheckTrainerMemory(c.spec);
    ASSERT_TRUE(check.has_value()) << c.name;
    EXPECT_EQ(check->fits(), c.fits) << c.name << ": " << check->Explain();
    EXPECT_EQ(check->budget_field, c.field) << c.name;
    std::vector<FieldError> errors;
    ValidateTrainerMemory(c.spec["model"], c.spec, "spec.model", &errors);
    ASSERT_EQ(errors.size(), c.fits ? 0u : 1u) << c.name;
    if (!c.fits) {
      EXPECT_EQ(errors[0].path, c.field);
      EXPECT_THAT(errors[0].message, HasSubstr("cannot hold the model, which needs at least"));
    }
  }
  // fc weights and bias, by hand.
  EXPECT_EQ(CheckTrainerMemory(Spec(1 << 18, "adam", req2g))->estimate.parameter_bytes,
            (784 + 1) * (int64_t{1} << 18) * 4);
  const MemoryEstimate remote = CheckTrainerMemory(Spec(1 << 18, "adam", req2g, "pserver"))->estimate;
  EXPECT_EQ(remote.optimizer_state_bytes, 0);
  EXPECT_THAT(remote.Explain(), HasSubstr("dense optimizer state is on the pservers"));
}

TEST(TrainerMemoryCheckTest, EmbeddingTablesLiveOnThePServers) {
  nlohmann::json spec = Spec(10, "adagrad", {{"requests", {{"memory", "64Mi"}}}});
  spec["model"] = {{"inputs", {{{"name", "ids"}, {"source", "fields"}, {"shape", {2}}},
                               {{"name", "label"}, {"source", "labels"}}}},
                   {"layers", {{{"name", "emb"}, {"type", "embedding"}, {"input", "ids"},
                                {"vocabSize", 10000000}, {"size", 64}, {"pooling", "sum"}},
                               {{"name", "fc"}, {"type", "fc"}, {"input", "emb"}, {"size", 2}},
                               {{"name", "cost"}, {"type", "softmax_cross_entropy"}, {"inputs", {"fc", "label"}}}}},
                   {"cost", "cost"}};
  std::optional<TrainerMemoryCheck> check = CheckTrainerMemory(spec);
  ASSERT_TRUE(check.has_value());
  EXPECT_TRUE(check->fits()) << check->Explain() << ": a 2.4 GiB table is the pservers'";
  EXPECT_LT(check->estimate.parameter_bytes, 1 << 20);
  EXPECT_THAT(check->Explain(), HasSubstr("embedding tables are on the pservers"));
}

TEST(TrainerMemoryCheckTest, InvalidSectionsAreLeftToTheirOwnValidators) {
  const nlohmann::json req = {{"requests", {{"memory", "2Gi"}}}};
  nlohmann::json bad_batch = Spec(100, "sgd", req);
  bad_batch["data"]["batchSize"] = 0;
  nlohmann::json bad_model = Spec(100, "sgd", req);
  bad_model["model"]["layers"][0]["type"] = "nope";
  nlohmann::json bad_optimizer = Spec(100, "nope", req);
  nlohmann::json no_budget = Spec(100, "sgd", nlohmann::json::object());
  for (const nlohmann::json& s : {bad_batch, bad_model, bad_optimizer, no_budget})
    EXPECT_FALSE(CheckTrainerMemory(s).has_value()) << s.dump();
}

TEST(MemoryEstimateTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3 GiB");
}

}  // namespace
}  // namespace tandem::trainer
