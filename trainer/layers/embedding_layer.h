// embedding: a table lookup with sparse-row gradients.
// Inputs: multi-hot ids (shape [fields]; each example has any number of ids per field, pooled by
// `pooling` into one vector per field; output dense [fields * size]), or token sequences (sequence
// ids [T]; output sequence [T, size], zero on padding).
// Attributes: vocabSize (required), size (required), pooling (sum | mean, default sum; multi-hot).
// Ids are taken modulo vocabSize (the hashing trick for raw feature ids; token ids are checked
// against the vocabulary by the data reader). A field with no ids gives a zero vector.
// Parameter: table [vocabSize, size], sparse (only the rows a batch touched get a gradient and an
// update; Param::touched_rows lists them, and the gradient holds only those rows: Param).
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class EmbeddingLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  bool Differentiable(int) const override { return false; }
  static LayerExample GradCheckExample();

 private:
  int64_t Row(int32_t id) const { return static_cast<int64_t>(id) % vocab_; }
  // Calls f(output row, id, weight) for every looked-up id.
  template <typename F>
  void ForEach(const Blob& in, F f) const;
  int64_t vocab_ = 0, size_ = 0, fields_ = 0, steps_ = 0;
  bool sequence_ = false, mean_ = false;
};

}  // namespace tandem::trainer
