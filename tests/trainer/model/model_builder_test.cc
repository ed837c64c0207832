// The fluent builder and the declarative spec.model section build the identical graph, and
// invalid models give errors naming the layer and the field.
#include "trainer/model/model_builder.h"

#include "common/yaml_json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/model/model_graph.h"
#include "trainer/model/trainer_spec.h"

namespace tandem::trainer {
namespace {

using ::testing::HasSubstr;

constexpr char kCnnYaml[] = R"(
inputs:
  - {name: image, source: features, shape: [1, 28, 28]}
  - {name: label, source: labels}
layers:
  - {name: conv1, type: conv2d, input: image, numFilters: 32, filterSize: 5, padding: 2}
  - {name: relu1, type: relu, input: conv1}
  - {name: pool1, type: max_pool, input: relu1, poolSize: 2}
  - {name: conv2, type: conv2d, input: pool1, numFilters: 64, filterSize: [5, 5], padding: 2, stride: 1}
  - {name: relu2, type: relu, input: conv2}
  - {name: pool2, type: max_pool, input: relu2}
  - {name: fc1, type: fc, input: pool2, size: 1024}
  - {name: relu3, type: relu, input: fc1}
  - {name: fc2, type: fc, input: relu3, size: 10}
  - {name: cost, type: softmax_cross_entropy, inputs: [fc2, label]}
)";

ModelDef CnnWithBuilder() {
  ModelBuilder model;
  auto image = model.Features("image", {1, 28, 28});
  auto label = model.Labels("label");
  auto conv1 = model.Conv2d("conv1").NumFilters(32).FilterSize(5).Padding(2).Input(image);
  auto relu1 = model.Relu("relu1").Input(conv1);
  auto pool1 = model.MaxPool("pool1").PoolSize(2).Input(relu1);
  auto conv2 = model.Conv2d("conv2").NumFilters(64).FilterSize(5).Padding(2).Input(pool1);
  auto relu2 = model.Relu("relu2").Input(conv2);
  auto pool2 = model.MaxPool("pool2").Input(relu2);
  auto fc1 = model.Fc("fc1").Size(1024).Input(pool2);
  auto relu3 = model.Relu("relu3").Input(fc1);
  auto fc2 = model.Fc("fc2").Size(10).Input(relu3);
  model.SoftmaxCrossEntropy("cost").Input(fc2).Label(label);
  return model.Build();
}

nlohmann::json Yaml(const std::string& text) {
  auto docs = YamlToJson(text, "test.yaml");
  EXPECT_TRUE(docs.ok()) << docs.status();
  return (*docs)[0];
}

TEST(ModelBuilderTest, BuilderAndSpecBuildTheIdenticalGraph) {
  std::vector<FieldError> errors;
  ModelDef from_spec = ParseModelDef(Yaml(kCnnYaml), "spec.model", &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].ToString();
  ModelDef from_builder = CnnWithBuilder();

  ModelGraph a, b;
  ASSERT_TRUE(BuildModelGraph(from_spec, LayerRegistry::Builtin(), "spec.model", &a).empty());
  ASSERT_TRUE(BuildModelGraph(from_builder, LayerRegistry::Builtin(), "spec.model", &b).empty());
  // The spec spells out defaults ([5, 5], stride 1) that the builder leaves implicit: the
  // resolved graphs are identical all the same.
  EXPECT_EQ(a.Describe(), b.Describe());
  EXPECT_EQ(a.NumParameters(), 32 * 25 + 32 + 64 * 32 * 25 + 64 + 3136 * 1024 + 1024 + 10240 + 10);
  EXPECT_EQ(a.blobs[a.layers[6].inputs[0]].shape, Shape({64, 7, 7}));
  // The builder's definition round-trips through the declarative form.
  std::vector<FieldError> round_trip_errors;
  EXPECT_EQ(ParseModelDef(from_builder.ToJson(), "spec.model", &round_trip_errors), from_builder);
  EXPECT_TRUE(round_trip_errors.empty());
}

// A sequence-to-sequence model with attention, declared both ways (docs/seq2seq.md).
TEST(ModelBuilderTest, Seq2SeqWithAttentionIsTheSameBothWays) {
  std::vector<FieldError> errors;
  ModelDef from_spec = ParseModelDef(Yaml(R"(
inputs:
  - {name: src, source: sourceTokens, shape: [12]}
  - {name: tgt_in, source: tokens, shape: [16]}
  - {name: tgt_out, source: tokenTargets, shape: [16]}
layers:
  - {name: src_emb, type: embedding, input: src, vocabSize: 32, size: 8}
  - {name: enc_fw, type: gru, input: src_emb, size: 6}
  - {name: enc_rin, type: reverse_sequence, input: src_emb}
  - {name: enc_bw, type: gru, input: enc_rin, size: 6}
  - {name: enc_rout, type: reverse_sequence, input: enc_bw}
  - {name: enc, type: concat, inputs: [enc_fw, enc_rout]}
  - {name: tgt_emb, type: embedding, input: tgt_in, vocabSize: 32, size: 8}
  - {name: dec, type: lstm, input: tgt_emb, size: 12}
  - {name: att, type: dot_attention, inputs: [dec, enc], scaled: true}
  - {name: add, type: additive_attention, inputs: [dec, enc], size: 5}
  - {name: cat, type: concat, inputs: [att, add, dec]}
  - {name: logits, type: fc, input: cat, size: 32}
  - {name: cost, type: softmax_cross_entropy, inputs: [logits, tgt_out]}
decode: {beam: 3, limit: 100}
)"), "spec.model", &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].ToString();
  ModelBuilder m;
  auto src = m.SourceTokens("src", 12);
  auto tin = m.Tokens("tgt_in", 16);
  auto tout = m.TokenTargets("tgt_out", 16);
  auto se = m.Embedding("src_emb").VocabSize(32).Size(8).Input(src);
  auto enc = m.Bidirectional("enc", "gru", 6, se);
  auto te = m.Embedding("tgt_emb").VocabSize(32).Size(8).Input(tin);
  auto dec = m.Lstm("dec").Size(12).Input(te);
  auto att = m.DotAttention("att").Scaled(true).Queries(dec).Memory(enc);
  auto add = m.AdditiveAttention("add").Size(5).Queries(dec).Memory(enc);
  auto cat = m.Concat("cat").Inputs({att, add, dec});
  auto logits = m.Fc("logits").Size(32).Input(cat);
  m.SoftmaxCrossEntropy("cost").Input(logits).Label(tout);
  m.Decode({.beam = 3, .limit = 100});
  EXPECT_EQ(m.Build(), from_spec);
  ModelGraph graph;
  ASSERT_TRUE(BuildModelGraph(from_spec, LayerRegistry::Builtin(), "spec.model", &graph).empty());
  EXPECT_EQ(graph.blobs[graph.layers[5].output].shape, Shape({12, 12}));   // enc: 6 + 6
  EXPECT_EQ(graph.blobs[graph.layers[10].output].shape, Shape({16, 36}));  // att + add + dec
  std::vector<FieldError> round_trip;
  EXPECT_EQ(ParseModelDef(from_spec.ToJson(), "spec.model", &round_trip), from_spec);

  // decode without a source input, and a bad beam, are named.
  errors.clear();
  ParseModelDef(Yaml(R"(
inputs: [{name: t, source: tokens, shape: [4]}]
layers: [{name: e, type: embedding, input: t, vocabSize: 8, size: 2}]
decode: {beam: 0}
)"), "spec.model", &errors);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].path, "spec.model.decode.beam");
  EXPECT_EQ(errors[1].path, "spec.model.decode");
}

TEST(ModelBuilderTest, DifferentModelsDescribeDifferently) {
  ModelBuilder model;
  auto image = model.Features("image", {1, 28, 28});
  auto label = model.Labels("label");
  auto fc = model.Fc("fc").Size(10).Input(image);
  model.SoftmaxCrossEntropy("cost").Input(fc).Label(label);
  ModelGraph a, b;
  ASSERT_TRUE(BuildModelGraph(model.Build(), LayerRegistry::Builtin(), "m", &a).empty());
  ASSERT_TRUE(BuildModelGraph(CnnWithBuilder(), LayerRegistry::Builtin(), "m", &b).empty());
  EXPECT_NE(a.Describe(), b.Describe());
}

std::vector<std::string> Errors(const std::string& yaml) {
  std::vector<FieldError> errors;
  ModelDef def = ParseModelDef(Yaml(yaml), "spec.model", &errors);
  if (errors.empty()) {
    ModelGraph graph;
    errors = BuildModelGraph(def, LayerRegistry::Builtin(), "spec.model", &graph);
  }
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.ToString());
  return out;
}

constexpr char kHead[] = R"(
inputs:
  - {name: image, source: features, shape: [1, 28, 28]}
  - {name: label, source: labels}
  - {name: words, source: tokens, shape: [5]}
layers:
)";

std::string M(const std::string& layers) { return std::string(kHead) + layers; }

TEST(ModelErrorsTest, Table) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {M("  - {name: c, type: conv2d, input: image, numFilters: 4, filterSize: 5}\n"
         "  - {name: r, type: relu, input: c}\n"
         "  - {name: c2, type: conv2d, input: r, numFilters: 0, filterSize: 3}\n"),
       "spec.model.layers[2].numFilters: layer 'c2' (conv2d): must be >= 1, got 0"},
      {M("  - {name: f, type: fully, input: image}\n"),
       "spec.model.layers[0].type: unknown layer type \"fully\" (known: additive_attention, avg_pool, batch_norm, "},
      {M("  - {name: f, type: fc, input: image, size: 10, sise: 3}\n"),
       "spec.model.layers[0].sise: layer 'f' (fc): unknown field (known: bias, size)"},
      {M("  - {name: f, type: fc, input: imag, size: 10}\n"),
       "spec.model.layers[0].input: \"imag\" is neither a model input nor an earlier layer"},
      {M("  - {name: e, type: embedding, input: words, vocabSize: 10, size: 4}\n"
         "  - {name: l, type: lstm, input: e, size: 8}\n"
         "  - {name: f, type: fc, input: l, size: 10}\n"
         "  - {name: cost, type: softmax_cross_entropy, inputs: [f, label]}\n"),
       "spec.model.layers[3].inputs[1]: layer 'cost' (softmax_cross_entropy): labels label [1] do "
       "not match logits sequence [5, 10]"},
      {M("  - {name: e, type: embedding, input: words, vocabSize: 10, size: 4}\n"
         "  - {name: f, type: fc, input: image, size: 3}\n"
         "  - {name: c, type: concat, inputs: [e, f]}\n"),
       "spec.model.layers[2].inputs[1]: layer 'c' (concat): cannot concatenate dense [3] with "
       "sequence [5, 4]"},
      {M("  - {name: l, type: lstm, input: image, size: 8}\n"),
       "spec.model.layers[0].input: layer 'l' (lstm): input 'image' is dense [1, 28, 28], expected "
       "sequence"},
      {M("  - {name: p, type: max_pool, input: image, poolSize: 30}\n"),
       "spec.model.layers[0].poolSize: layer 'p' (max_pool): window 30x30 is larger than the input "
       "[1, 28, 28]"},
      {M("  - {name: f, type: fc, input: image, size: 10}\n"),
       "spec.model.layers[0]: the cost layer 'f' must output one loss per example (dense [1]), got "
       "dense [10]"},
      {M("  - {name: image, type: fc, input: image, size: 10}\n"),
       "spec.model.layers[0].name: duplicate name \"image\""},
      {std::string(kHead) + "  - {name: f, type: fc, size: 10}\n",
       "spec.model.layers[0].input: is required"},
  };
  for (const auto& [yaml, expected] : cases) {
    auto errors = Errors(yaml);
    ASSERT_FALSE(errors.empty()) << expected;
    EXPECT_THAT(errors[0], HasSubstr(expected)) << "all errors: " << ::testing::PrintToString(errors);
  }
}

TEST(TrainerSpecTest, ValidateTrainerSectionsReportsEverySectionWithFullPaths) {
  nlohmann::json spec = Yaml(R"(
passes: 0
model:
  inputs: [{name: image, source: features, shape: [1, 28, 28]}, {name: label, source: labels}]
  layers:
    - {name: f, type: fc, input: image, size: -1}
optimizer: {type: rmsprop, learningRate: 0.1, momentun: 0.9}
data: {batchSize: 0}
)");
  std::vector<std::string> errors;
  for (const auto& e : ValidateTrainerSections(spec)) errors.push_back(e.ToString());
  auto has = [&](const std::string& s) {
    for (const auto& e : errors)
      if (e.find(s) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("spec.model.layers[0].size: layer 'f' (fc): must be >= 1, got -1")) << ::testing::PrintToString(errors);
  EXPECT_TRUE(has("spec.optimizer.type: must be one of sgd, momentum, adam, adagrad")) << ::testing::PrintToString(errors);
  EXPECT_TRUE(has("spec.optimizer.momentun: unknown field")) << ::testing::PrintToString(errors);
  EXPECT_TRUE(has("spec.data.batchSize")) << ::testing::PrintToString(errors);
  EXPECT_TRUE(has("spec.passes: must be an integer in [1, 1000000], got 0")) << ::testing::PrintToString(errors);
}

TEST(TrainerSpecTest, ExamplesAreValid) {
  for (const char* name : {"fashion-mnist-cnn.yaml", "fashion-mnist-mlp.yaml"}) {
    auto docs = YamlFileToJson(std::string(std::getenv("TANDEM_SOURCE_DIR")) + "/examples/" + name);
    ASSERT_TRUE(docs.ok()) << docs.status();
    auto errors = ValidateTrainerSections((*docs)[0]["spec"]);
    EXPECT_TRUE(errors.empty()) << name << ": " << errors[0].ToString();
  }
}

TEST(TrainerSpecTest, HostileInputNeverThrows) {
  for (const char* text : {"[]", "{model: 3}", "{model: {layers: [3, {name: [1]}], inputs: {}}}",
                           "{model: {inputs: [{name: a, source: features, shape: [0]}], layers: "
                           "[{name: b, type: conv2d, input: a, numFilters: 1e30}]}}"}) {
    auto errors = ValidateTrainerSections(Yaml(text));
    EXPECT_FALSE(errors.empty()) << text;
  }
}

}  // namespace
}  // namespace tandem::trainer
