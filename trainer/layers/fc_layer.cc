#include "trainer/layers/fc_layer.h"

namespace tandem::trainer {

BlobDesc FcLayer::Setup(LayerSetup& s) {
  size_ = s.attrs().RequiredInt("size", 1);
  bias_ = s.attrs().Bool("bias", true);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense, BlobKind::kSequence}})) return {};
  const BlobDesc& in = s.inputs()[0];
  sequence_ = in.kind == BlobKind::kSequence;
  in_features_ = sequence_ ? in.shape.dim(1) : in.shape.NumElements();
  s.AddParam({.name = "weights",
              .shape = Shape({in_features_, size_}),
              .init = ParamInit::kXavier,
              .fan_in = in_features_,
              .fan_out = size_});
  if (bias_) s.AddParam({.name = "bias", .shape = Shape({size_}), .init = ParamInit::kZero});
  if (sequence_) return {BlobKind::kSequence, Shape({in.shape.dim(0), size_})};
  return {BlobKind::kDense, Shape({size_})};
}

int64_t FcLayer::Rows(const Blob& b) const {
  return sequence_ ? b.value.shape().dim(0) * b.value.shape().dim(1) : b.value.shape().dim(0);
}

void FcLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& x = *in[0];
  const int64_t rows = Rows(x);
  float* y = out.value.data();
  if (bias_) {
    const float* b = params_[1]->value.data();
    device_->CopyRows(rows, size_, b, 0, y, size_);  // y = bias, then y += x W
  }
  device_->Gemm(false, false, rows, size_, in_features_, 1.f, x.value.data(), in_features_,
                params_[0]->value.data(), size_, bias_ ? 1.f : 0.f, y, size_);
  if (sequence_) out.lengths = x.lengths;
}

void FcLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                       const StepContext&) {
  const Blob& x = *in[0];
  const int64_t rows = Rows(x);
  const float* dy = out.grad.data();
  device_->Gemm(true, false, in_features_, size_, rows, 1.f, x.value.data(), in_features_, dy,
                size_, 0.f, params_[0]->grad.data(), size_);
  if (bias_) {
    float* db = params_[1]->grad.data();
    device_->BiasGrad(rows, size_, dy, db);
  }
  if (in_grad[0] != nullptr) {
    device_->Gemm(false, true, rows, in_features_, size_, 1.f, dy, size_,
                  params_[0]->value.data(), size_, 0.f, in_grad[0]->data(), in_features_);
  }
}

LayerExample FcLayer::GradCheckExample() {
  return {.attrs = {{"size", 3}}, .inputs = {{BlobKind::kDense, Shape({2, 2})}}};
}

}  // namespace tandem::trainer
