#include "trainer/layers/softmax_layer.h"

namespace tandem::trainer {

BlobDesc SoftmaxLayer::Setup(LayerSetup& s) {
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense, BlobKind::kSequence}})) return {};
  const BlobDesc& in = s.inputs()[0];
  cols_ = in.shape.dim(in.shape.rank() - 1);
  return in;
}

void SoftmaxLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  device_->Softmax(in[0]->value.size() / cols_, cols_, in[0]->value.data(), out.value.data());
  out.lengths = in[0]->lengths;
}

void SoftmaxLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                            const StepContext&) {
  if (in_grad[0] == nullptr) return;
  device_->SoftmaxBackward(out.value.size() / cols_, cols_, out.value.data(), out.grad.data(),
                           in_grad[0]->data());
}

LayerExample SoftmaxLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kDense, Shape({5})}}};
}

}  // namespace tandem::trainer
