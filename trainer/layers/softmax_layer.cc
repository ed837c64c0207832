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
  const int64_t rows = out.value.size() / cols_;
  const float* y = out.value.data();
  const float* dy = out.grad.data();
  float* dx = in_grad[0]->data();
  for (int64_t r = 0; r < rows; ++r) {
    float dot = 0.f;
    for (int64_t c = 0; c < cols_; ++c) dot += dy[r * cols_ + c] * y[r * cols_ + c];
    for (int64_t c = 0; c < cols_; ++c) dx[r * cols_ + c] = y[r * cols_ + c] * (dy[r * cols_ + c] - dot);
  }
}

LayerExample SoftmaxLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kDense, Shape({5})}}};
}

}  // namespace tandem::trainer
