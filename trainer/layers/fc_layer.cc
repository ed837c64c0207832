#include "trainer/layers/fc_layer.h"

namespace tandem::trainer {

BlobDesc FcLayer::Setup(LayerSetup& s) {
  size_ = s.attrs().RequiredInt("size", 1);
  bias_ = s.attrs().Bool("bias", true);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense, BlobKind::kSequence}})) return {};
  const BlobDesc& in = s.inputs()[0];
  sequence_ = in.kind == BlobKind::kSequence;
  in_features_ = sequence_ ? in.shape.dim(1) : in.shape.NumElements();
  widths_ = {in_features_};
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

bool FcLayer::ReadConcatInputs(const std::vector<int64_t>& widths) {
  int64_t sum = 0;
  for (int64_t w : widths) sum += w;
  if (sum != in_features_) return false;
  widths_ = widths;
  return true;
}

void FcLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const int64_t rows = Rows(*in[0]);
  float* y = out.value.data();
  if (bias_) {
    const float* b = params_[1]->value.data();
    device_->CopyRows(rows, size_, b, 0, y, size_);  // y = bias, then y += x W
  }
  // y += x_k W_k for each input k (one input, unless a concat is read in place).
  const float* w = params_[0]->value.data();
  for (size_t k = 0; k < widths_.size(); ++k) {
    device_->Gemm(false, false, rows, size_, widths_[k], 1.f, in[k]->value.data(), widths_[k], w,
                  size_, bias_ || k > 0 ? 1.f : 0.f, y, size_);
    w += widths_[k] * size_;
  }
  if (sequence_) out.lengths = in[0]->lengths;
}

void FcLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                       const StepContext&) {
  const int64_t rows = Rows(*in[0]);
  const float* dy = out.grad.data();
  const float* w = params_[0]->value.data();
  float* dw = params_[0]->grad.data();
  for (size_t k = 0; k < widths_.size(); ++k) {
    const int64_t wk = widths_[k];
    device_->Gemm(true, false, wk, size_, rows, 1.f, in[k]->value.data(), wk, dy, size_, 0.f, dw,
                  size_);
    if (in_grad[k] != nullptr) {
      device_->Gemm(false, true, rows, wk, size_, 1.f, dy, size_, w, size_, 0.f,
                    in_grad[k]->data(), wk);
    }
    w += wk * size_;
    dw += wk * size_;
  }
  if (bias_) device_->BiasGrad(rows, size_, dy, params_[1]->grad.data());
}

LayerExample FcLayer::GradCheckExample() {
  return {.attrs = {{"size", 3}}, .inputs = {{BlobKind::kDense, Shape({2, 2})}}};
}

}  // namespace tandem::trainer
