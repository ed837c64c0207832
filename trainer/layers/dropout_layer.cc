#include "trainer/layers/dropout_layer.h"

#include <functional>

#include "trainer/core/dropout_mask.h"

namespace tandem::trainer {

BlobDesc DropoutLayer::Setup(LayerSetup& s) {
  rate_ = static_cast<float>(s.attrs().Float("rate", 0.5, 0.0, 0.99));
  salt_ = std::hash<std::string>()(s.config().name);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense, BlobKind::kSequence}})) return {};
  return s.inputs()[0];
}

void DropoutLayer::Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) {
  const int64_t n = in[0]->value.size();
  const float* x = in[0]->value.data();
  float* y = out.value.data();
  out.lengths = in[0]->lengths;
  if (!ctx.training || rate_ == 0.f) {
    device_->Copy(n, x, y);
    return;
  }
  device_->Dropout(n, DropoutKey(ctx.seed, salt_, ctx.step), rate_, x, y);
}

void DropoutLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                            const StepContext& ctx) {
  if (in_grad[0] == nullptr) return;
  const int64_t n = out.grad.size();
  const float* dy = out.grad.data();
  float* dx = in_grad[0]->data();
  if (!ctx.training || rate_ == 0.f) {
    device_->Copy(n, dy, dx);
    return;
  }
  device_->Dropout(n, DropoutKey(ctx.seed, salt_, ctx.step), rate_, dy, dx);
}

LayerExample DropoutLayer::GradCheckExample() {
  return {.attrs = {{"rate", 0.3}}, .inputs = {{BlobKind::kDense, Shape({6})}}};
}

}  // namespace tandem::trainer
