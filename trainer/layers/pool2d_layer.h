// max_pool and avg_pool: 2-D pooling over NCHW input.
// Attributes: poolSize (2; n or [h, w]), stride (defaults to poolSize), padding (0).
// Average pooling divides by the part of the window inside the image.
#pragma once

#include <memory>

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class Pool2dLayer : public Layer {
 public:
  explicit Pool2dLayer(PoolKind kind) { desc_.kind = kind; }
  BlobDesc Setup(LayerSetup& s) override;
  absl::Status Init(Device& device) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  LayoutSupport BlockedLayoutSupport() const override { return LayoutSupport::kAny; }
  void SetActivationLayouts(ActivationLayout input, ActivationLayout output) override {
    desc_.src_layout = input;
    desc_.dst_layout = output;
  }

 private:
  Pool2dDesc desc_;
  std::unique_ptr<Pool2dKernel> kernel_;
};

class MaxPoolLayer final : public Pool2dLayer {
 public:
  MaxPoolLayer() : Pool2dLayer(PoolKind::kMax) {}
  static LayerExample GradCheckExample();
};

class AvgPoolLayer final : public Pool2dLayer {
 public:
  AvgPoolLayer() : Pool2dLayer(PoolKind::kAvg) {}
  static LayerExample GradCheckExample();
};

}  // namespace tandem::trainer
