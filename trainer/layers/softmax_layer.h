// softmax: normalised exponentials over the last dimension (dense [C] or sequence [T, C]).
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class SoftmaxLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  int64_t cols_ = 0;
};

}  // namespace tandem::trainer
