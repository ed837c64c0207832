// relu, sigmoid, tanh: element-wise activations on dense or sequence input (no attributes).
#pragma once

#include <memory>

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class ActivationLayer : public Layer {
 public:
  explicit ActivationLayer(EltwiseKind kind) : kind_(kind) {}
  BlobDesc Setup(LayerSetup& s) override;
  absl::Status Init(Device& device) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();
  // Element-wise: any layout works, the output's being the input's.
  LayoutSupport BlockedLayoutSupport() const override { return LayoutSupport::kSame; }

 private:
  EltwiseKind kind_;
  std::unique_ptr<EltwiseKernel> kernel_;
};

class ReluLayer final : public ActivationLayer {
 public:
  ReluLayer() : ActivationLayer(EltwiseKind::kRelu) {}
};
class SigmoidLayer final : public ActivationLayer {
 public:
  SigmoidLayer() : ActivationLayer(EltwiseKind::kSigmoid) {}
};
class TanhLayer final : public ActivationLayer {
 public:
  TanhLayer() : ActivationLayer(EltwiseKind::kTanh) {}
};

}  // namespace tandem::trainer
