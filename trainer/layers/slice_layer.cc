#include "trainer/layers/slice_layer.h"

#include "absl/strings/str_cat.h"

namespace tandem::trainer {

BlobDesc SliceLayer::Setup(LayerSetup& s) {
  begin_ = s.attrs().Int("begin", 0, 0, int64_t{1} << 40);
  size_ = s.attrs().RequiredInt("size", 1, int64_t{1} << 40);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense}})) return {};
  if (!s.ok()) return {};
  width_ = s.inputs()[0].shape.NumElements();
  if (begin_ + size_ > width_) {
    s.Error("size", absl::StrCat("begin + size = ", begin_ + size_, " exceeds the input's ",
                                 width_, " features"));
    return {};
  }
  return {BlobKind::kDense, Shape({size_})};
}

void SliceLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const int64_t rows = in[0]->batch();
  device_->CopyRows(rows, size_, in[0]->value.data() + begin_, width_, out.value.data(), size_);
}

void SliceLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                          const StepContext&) {
  if (in_grad[0] == nullptr) return;
  const int64_t rows = in[0]->batch();
  float* g = in_grad[0]->data();
  device_->Fill(rows * width_, 0.f, g);
  device_->CopyRows(rows, size_, out.grad.data(), size_, g + begin_, width_);
}

LayerExample SliceLayer::GradCheckExample() {
  return {.attrs = {{"begin", 2}, {"size", 3}}, .inputs = {{BlobKind::kDense, Shape({6})}}};
}

}  // namespace tandem::trainer
