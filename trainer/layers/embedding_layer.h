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
#include <unordered_map>
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
  // Over token sequences: the class of a row is its table row (one class per distinct id).
  bool HasRowClasses() const override { return sequence_; }
  int64_t RowClasses(const LayerInputs& in, std::vector<int32_t>* row_class) override;
  void BackwardFromClassSums(const LayerInputs& in, const LayerGrads& in_grad, int64_t n,
                             const int32_t* classes, const float* grads,
                             const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  // Registers table rows as touched (Param::touched_rows, in first-touch order) and sizes the
  // compact gradient to them, zeroing the new rows.
  template <typename ForEachRow>
  void TouchRows(Param& p, ForEachRow for_each_row);
  int64_t Row(int32_t id) const { return static_cast<int64_t>(id) % vocab_; }
  // Calls f(output row, id, weight) for every looked-up id.
  template <typename F>
  void ForEach(const Blob& in, F f) const;
  int64_t vocab_ = 0, size_ = 0, fields_ = 0, steps_ = 0;
  bool sequence_ = false, mean_ = false;
  std::vector<int64_t> class_rows_;                   // RowClasses: per class, its table row
  std::unordered_map<int64_t, int32_t> class_of_row_;  // RowClasses: table row -> class
};

}  // namespace tandem::trainer
