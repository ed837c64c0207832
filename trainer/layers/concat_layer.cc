#include "trainer/layers/concat_layer.h"

#include "absl/strings/str_cat.h"

namespace tandem::trainer {

BlobDesc ConcatLayer::Setup(LayerSetup& s) {
  if (!s.ExpectInputs(1, 64, {{BlobKind::kDense, BlobKind::kSequence}})) return {};
  sequence_ = s.inputs()[0].kind == BlobKind::kSequence;
  for (size_t i = 0; i < s.inputs().size(); ++i) {
    const BlobDesc& d = s.inputs()[i];
    if ((d.kind == BlobKind::kSequence) != sequence_ ||
        (sequence_ && d.shape.dim(0) != s.inputs()[0].shape.dim(0))) {
      s.Error(absl::StrCat("inputs[", i, "]"),
              absl::StrCat("cannot concatenate ", d.ToString(), " with ",
                           s.inputs()[0].ToString(),
                           " (all dense, or all sequences of the same length)"));
      return {};
    }
    widths_.push_back(sequence_ ? d.shape.dim(1) : d.shape.NumElements());
    total_ += widths_.back();
  }
  if (sequence_) {
    steps_ = s.inputs()[0].shape.dim(0);
    return {BlobKind::kSequence, Shape({steps_, total_})};
  }
  return {BlobKind::kDense, Shape({total_})};
}

void ConcatLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const int64_t rows = in[0]->batch() * steps_;
  int64_t col = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    device_->CopyRows(rows, widths_[i], in[i]->value.data(), widths_[i], out.value.data() + col,
                      total_);
    col += widths_[i];
  }
  if (sequence_) out.lengths = in[0]->lengths;
}

void ConcatLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                           const StepContext&) {
  const int64_t rows = in[0]->batch() * steps_;
  int64_t col = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in_grad[i] != nullptr) {
      device_->CopyRows(rows, widths_[i], out.grad.data() + col, total_, in_grad[i]->data(),
                        widths_[i]);
    }
    col += widths_[i];
  }
}

LayerExample ConcatLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kDense, Shape({2})}, {BlobKind::kDense, Shape({1, 3})}}};
}

}  // namespace tandem::trainer
