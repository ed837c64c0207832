// The fluent, typed C++ way to define a model. It writes the same ModelDef as the declarative
// `spec.model` section, so both build the identical graph.
//
//   ModelBuilder model;
//   auto image = model.Features("image", {1, 28, 28});
//   auto label = model.Labels("label");
//   auto conv1 = model.Conv2d("conv1").NumFilters(32).FilterSize(5).Padding(2).Input(image);
//   auto relu1 = model.Relu("relu1").Input(conv1);
//   auto pool1 = model.MaxPool("pool1").PoolSize(2).Input(relu1);
//   ...
//   model.SoftmaxCrossEntropy("cost").Input(fc2).Label(label);
//   ModelDef def = model.Build();   // then BuildModelGraph() validates it like a manifest
//
// Setters only record values; validation (with the same messages as for manifests) happens in
// BuildModelGraph. Unset fields take the layer's defaults.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "trainer/model/model_def.h"

namespace tandem::trainer {

// A reference to an input or a layer's output, by name.
struct Ref {
  std::string name;
};

template <typename Self>
class LayerBuilder {
 public:
  explicit LayerBuilder(LayerConfig* c) : c_(c) {}
  Self& Input(const Ref& r) {
    c_->inputs.push_back(r.name);
    return self();
  }
  Self& Inputs(const std::vector<Ref>& rs) {
    for (const Ref& r : rs) c_->inputs.push_back(r.name);
    return self();
  }
  // Any attribute by its manifest name (for fields without a typed setter).
  Self& Set(const std::string& field, nlohmann::json value) {
    c_->attrs[field] = std::move(value);
    return self();
  }
  operator Ref() const { return Ref{c_->name}; }  // NOLINT: a layer is usable where a Ref is

 protected:
  Self& self() { return static_cast<Self&>(*this); }
  LayerConfig* c_;
};

#define TANDEM_BUILDER_FIELD(Method, field, Type) \
  auto& Method(Type v) { return this->Set(field, v); }

class FcBuilder : public LayerBuilder<FcBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
  TANDEM_BUILDER_FIELD(Size, "size", int64_t)
  TANDEM_BUILDER_FIELD(Bias, "bias", bool)
};

class Conv2dBuilder : public LayerBuilder<Conv2dBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
  TANDEM_BUILDER_FIELD(NumFilters, "numFilters", int64_t)
  TANDEM_BUILDER_FIELD(FilterSize, "filterSize", int64_t)
  TANDEM_BUILDER_FIELD(Stride, "stride", int64_t)
  TANDEM_BUILDER_FIELD(Padding, "padding", int64_t)
  TANDEM_BUILDER_FIELD(Groups, "groups", int64_t)
  TANDEM_BUILDER_FIELD(Bias, "bias", bool)
};

class PoolBuilder : public LayerBuilder<PoolBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
  TANDEM_BUILDER_FIELD(PoolSize, "poolSize", int64_t)
  TANDEM_BUILDER_FIELD(Stride, "stride", int64_t)
  TANDEM_BUILDER_FIELD(Padding, "padding", int64_t)
};

class PlainBuilder : public LayerBuilder<PlainBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
};

class CostBuilder : public LayerBuilder<CostBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
  // The second input: labels or targets.
  CostBuilder& Label(const Ref& r) { return Input(r); }
  TANDEM_BUILDER_FIELD(Margin, "margin", double)
};

class DropoutBuilder : public LayerBuilder<DropoutBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
  TANDEM_BUILDER_FIELD(Rate, "rate", double)
};

class BatchNormBuilder : public LayerBuilder<BatchNormBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
  TANDEM_BUILDER_FIELD(Momentum, "momentum", double)
  TANDEM_BUILDER_FIELD(Epsilon, "epsilon", double)
};

class EmbeddingBuilder : public LayerBuilder<EmbeddingBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
  TANDEM_BUILDER_FIELD(VocabSize, "vocabSize", int64_t)
  TANDEM_BUILDER_FIELD(Size, "size", int64_t)
  TANDEM_BUILDER_FIELD(Pooling, "pooling", std::string)
};

class RecurrentBuilder : public LayerBuilder<RecurrentBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
  TANDEM_BUILDER_FIELD(Size, "size", int64_t)
};

class AttentionBuilder : public LayerBuilder<AttentionBuilder> {
 public:
  using LayerBuilder::LayerBuilder;
  // Queries (e.g. decoder states) then memory (e.g. encoder states).
  AttentionBuilder& Queries(const Ref& r) { return Input(r); }
  AttentionBuilder& Memory(const Ref& r) { return Input(r); }
  TANDEM_BUILDER_FIELD(Size, "size", int64_t)     // additive_attention
  TANDEM_BUILDER_FIELD(Scaled, "scaled", bool)    // dot_attention
};

#undef TANDEM_BUILDER_FIELD

class ModelBuilder {
 public:
  Ref Features(const std::string& name, Shape shape) {
    return AddInput(name, InputSource::kFeatures, std::move(shape));
  }
  Ref Labels(const std::string& name) { return AddInput(name, InputSource::kLabels, Shape({1})); }
  Ref Targets(const std::string& name) { return AddInput(name, InputSource::kTargets, Shape({1})); }
  Ref Tokens(const std::string& name, int64_t steps) {
    return AddInput(name, InputSource::kTokens, Shape({steps}));
  }
  Ref TokenTargets(const std::string& name, int64_t steps) {
    return AddInput(name, InputSource::kTokenTargets, Shape({steps}));
  }
  Ref Fields(const std::string& name, int64_t fields) {
    return AddInput(name, InputSource::kFields, Shape({fields}));
  }

  FcBuilder Fc(const std::string& name) { return FcBuilder(Add(name, "fc")); }
  Conv2dBuilder Conv2d(const std::string& name) { return Conv2dBuilder(Add(name, "conv2d")); }
  PoolBuilder MaxPool(const std::string& name) { return PoolBuilder(Add(name, "max_pool")); }
  PoolBuilder AvgPool(const std::string& name) { return PoolBuilder(Add(name, "avg_pool")); }
  PlainBuilder Relu(const std::string& name) { return PlainBuilder(Add(name, "relu")); }
  PlainBuilder Sigmoid(const std::string& name) { return PlainBuilder(Add(name, "sigmoid")); }
  PlainBuilder Tanh(const std::string& name) { return PlainBuilder(Add(name, "tanh")); }
  PlainBuilder Softmax(const std::string& name) { return PlainBuilder(Add(name, "softmax")); }
  PlainBuilder Concat(const std::string& name) { return PlainBuilder(Add(name, "concat")); }
  DropoutBuilder Dropout(const std::string& name) { return DropoutBuilder(Add(name, "dropout")); }
  BatchNormBuilder BatchNorm(const std::string& name) {
    return BatchNormBuilder(Add(name, "batch_norm"));
  }
  EmbeddingBuilder Embedding(const std::string& name) {
    return EmbeddingBuilder(Add(name, "embedding"));
  }
  RecurrentBuilder Lstm(const std::string& name) { return RecurrentBuilder(Add(name, "lstm")); }
  RecurrentBuilder Gru(const std::string& name) { return RecurrentBuilder(Add(name, "gru")); }
  AttentionBuilder DotAttention(const std::string& name) {
    return AttentionBuilder(Add(name, "dot_attention"));
  }
  AttentionBuilder AdditiveAttention(const std::string& name) {
    return AttentionBuilder(Add(name, "additive_attention"));
  }
  PlainBuilder LastStep(const std::string& name) { return PlainBuilder(Add(name, "last_step")); }
  // Inputs: the vector, then the sequence whose steps it is repeated over.
  PlainBuilder SequenceExpand(const std::string& name) {
    return PlainBuilder(Add(name, "sequence_expand"));
  }
  PlainBuilder ReverseSequence(const std::string& name) {
    return PlainBuilder(Add(name, "reverse_sequence"));
  }
  // A bidirectional recurrent encoder of `size` per direction, as five layers: name + "_fw"
  // (forward), "_rin", "_bw", "_rout" (the backward direction between two reverse_sequence) and
  // `name`, their concat (sequence [T, 2 * size]). `type`: "lstm" or "gru".
  Ref Bidirectional(const std::string& name, const std::string& type, int64_t size,
                    const Ref& input);
  // The source side of a sequence-to-sequence model (sourceTokens input, shape [steps]).
  Ref SourceTokens(const std::string& name, int64_t steps) {
    return AddInput(name, InputSource::kSourceTokens, Shape({steps}));
  }
  CostBuilder SoftmaxCrossEntropy(const std::string& name) {
    return CostBuilder(Add(name, "softmax_cross_entropy"));
  }
  CostBuilder BinaryCrossEntropy(const std::string& name) {
    return CostBuilder(Add(name, "binary_cross_entropy"));
  }
  CostBuilder RankCost(const std::string& name) { return CostBuilder(Add(name, "rank_cost")); }
  // Any registered layer type, attributes set with Set().
  PlainBuilder Layer(const std::string& name, const std::string& type) {
    return PlainBuilder(Add(name, type));
  }
  // The cost layer (default: the last layer).
  ModelBuilder& Cost(const Ref& r) {
    cost_ = r.name;
    return *this;
  }
  // spec.model.decode: how a sequence-to-sequence model is decoded for evaluation.
  ModelBuilder& Decode(DecodeDef decode) {
    decode_ = decode;
    return *this;
  }

  ModelDef Build() const;

 private:
  Ref AddInput(const std::string& name, InputSource source, Shape shape);
  LayerConfig* Add(const std::string& name, const std::string& type);
  std::vector<InputDef> inputs_;
  std::deque<LayerConfig> layers_;  // deque: builders keep pointers while layers are added
  std::string cost_;
  std::optional<DecodeDef> decode_;
};

}  // namespace tandem::trainer
