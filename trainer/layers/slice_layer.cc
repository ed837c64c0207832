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
  for (int64_t r = 0; r < rows; ++r)
    device_->Copy(size_, in[0]->value.data() + r * width_ + begin_, out.value.data() + r * size_);
}

void SliceLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                          const StepContext&) {
  if (in_grad[0] == nullptr) return;
  const int64_t rows = in[0]->batch();
  float* g = in_grad[0]->data();
  device_->Fill(rows * width_, 0.f, g);
  for (int64_t r = 0; r < rows; ++r)
    device_->Copy(size_, out.grad.data() + r * size_, g + r * width_ + begin_);
}

LayerExample SliceLayer::GradCheckExample() {
  return {.attrs = {{"begin", 2}, {"size", 3}}, .inputs = {{BlobKind::kDense, Shape({6})}}};
}

}  // namespace tandem::trainer
