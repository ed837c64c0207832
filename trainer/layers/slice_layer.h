// slice: a contiguous part of a dense input's (flattened) features: [n] -> [size], the features
// begin .. begin + size - 1. Used to take the left and right halves of a pair (an embedding of a
// 2-field pair gives [2 * dim]: left's vector, then right's).
// Attributes: begin (0, >= 0), size (required, begin + size <= n).
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class SliceLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  int64_t begin_ = 0, size_ = 0, width_ = 0;
};

}  // namespace tandem::trainer
