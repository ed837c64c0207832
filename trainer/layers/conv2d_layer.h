// conv2d: 2-D convolution over NCHW input.
// Attributes: numFilters (required, > 0), filterSize (required; n or [h, w]), stride (1),
// padding (0), groups (1; channels and numFilters divisible by it), bias (true).
// Parameters: weights [numFilters, channels/groups, h, w] (He init), bias [numFilters].
#pragma once

#include <memory>

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class Conv2dLayer final : public Layer {
 public:
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
  bool FuseRelu() override {
    desc_.fused_relu = true;
    return true;
  }
  static LayerExample GradCheckExample();

 private:
  Conv2dDesc desc_;
  std::unique_ptr<Conv2dKernel> kernel_;
};

}  // namespace tandem::trainer
