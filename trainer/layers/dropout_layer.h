// dropout: in training, zeroes each value with probability `rate` and scales the rest by
// 1/(1-rate) (inverted dropout); at inference, the identity. Attribute: rate (0.5, in [0, 1)).
// The mask is a hash of (seed, step, layer name, position): the same step gives the same mask,
// so runs and resumed runs are reproducible, and nothing random is stored between steps.
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class DropoutLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  float rate_ = 0.5f;
  uint64_t salt_ = 0;
};

}  // namespace tandem::trainer
