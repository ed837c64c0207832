// binary_cross_entropy: the logistic cost for click/no-click targets, computed from the logit
// (numerically stable: max(x, 0) - x*t + log(1 + exp(-|x|))). Inputs: logits (dense [1]) and
// targets (dense [1] in [0, 1], or labels 0/1). Output: dense [1], each example's loss.
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class BinaryCrossEntropyLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  bool Differentiable(int i) const override { return i == 0; }
  static LayerExample GradCheckExample();
};

// Target of example `i` from a dense [1] targets blob or a label blob.
float TargetOf(const Blob& targets, int64_t i);

}  // namespace tandem::trainer
