// batch_norm: per-channel normalisation over the batch (and the spatial positions of [C, H, W]
// inputs), then a learned scale and shift. Training uses the batch statistics and updates running
// averages; inference uses the running averages.
// Attributes: momentum (0.9: running = momentum * running + (1 - momentum) * batch), epsilon (1e-5).
// Parameters: scale [C] (one), shift [C] (zero); running mean and variance [C] (not trained,
// saved in checkpoints).
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class BatchNormLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  int64_t channels_ = 0, spatial_ = 1;
  float momentum_ = 0.9f, epsilon_ = 1e-5f;
  Tensor xhat_;
  std::vector<float> inv_std_;
};

}  // namespace tandem::trainer
