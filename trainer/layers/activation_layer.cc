#include "trainer/layers/activation_layer.h"

namespace tandem::trainer {

BlobDesc ActivationLayer::Setup(LayerSetup& s) {
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense, BlobKind::kSequence}})) return {};
  return s.inputs()[0];
}

absl::Status ActivationLayer::Init(Device& device) {
  device_ = &device;
  kernel_ = device.CreateEltwise(kind_);
  return absl::OkStatus();
}

void ActivationLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  kernel_->Forward(in[0]->value.size(), in[0]->value.data(), out.value.data());
  out.lengths = in[0]->lengths;
}

void ActivationLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                               const StepContext&) {
  if (in_grad[0] != nullptr) {
    kernel_->Backward(out.value.size(), out.value.data(), out.grad.data(), in_grad[0]->data());
  }
}

// Inputs are drawn away from relu's kink by the gradient check (see gradient_check_test.cc).
LayerExample ActivationLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kDense, Shape({7})}}};
}

}  // namespace tandem::trainer
