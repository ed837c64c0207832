// softmax_cross_entropy: the cost -log softmax(logits)[label], fused for a stable gradient.
// Inputs: logits (dense [C], or sequence [T, C]) and labels (label, or sequence ids [T]).
// Output: dense [1], each example's loss (for sequences, the mean over its valid steps; padding
// contributes nothing). Labels must lie in [0, C); the data reader guarantees it.
#pragma once

#include <vector>

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class SoftmaxCrossEntropyLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  bool Differentiable(int i) const override { return i == 0; }
  static LayerExample GradCheckExample();

 private:
  int64_t classes_ = 0, steps_ = 1;
  bool sequence_ = false;
  // Per row of the last forward pass (rows past a sequence's length unset): the logits' max, the
  // sum of e^(logit - max), and the row's loss.
  std::vector<float> row_max_, row_sum_, row_loss_;
};

}  // namespace tandem::trainer
