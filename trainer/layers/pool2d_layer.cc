#include "trainer/layers/pool2d_layer.h"

#include "absl/strings/str_cat.h"

namespace tandem::trainer {

BlobDesc Pool2dLayer::Setup(LayerSetup& s) {
  AttrReader& a = s.attrs();
  const auto size = a.IntPair("poolSize", 2, 1);
  const auto stride = a.IntPair("stride", 0, 1);  // 0 (absent): same as poolSize
  const auto pad = a.IntPair("padding", 0, 0);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense}})) return {};
  const Shape& in = s.inputs()[0].shape;
  if (in.rank() != 3) {
    s.Error("inputs[0]",
            absl::StrCat("pooling needs a [channels, height, width] input, got ", in.ToString()));
    return {};
  }
  if (!s.ok()) return {};
  desc_.channels = in.dim(0);
  desc_.in_h = in.dim(1);
  desc_.in_w = in.dim(2);
  desc_.kernel_h = size.first;
  desc_.kernel_w = size.second;
  desc_.stride_h = stride.first > 0 ? stride.first : size.first;
  desc_.stride_w = stride.second > 0 ? stride.second : size.second;
  desc_.pad_h = pad.first;
  desc_.pad_w = pad.second;
  if (desc_.pad_h >= desc_.kernel_h || desc_.pad_w >= desc_.kernel_w) {
    s.Error("padding", "must be smaller than poolSize");
    return {};
  }
  if (desc_.in_h + 2 * desc_.pad_h < desc_.kernel_h ||
      desc_.in_w + 2 * desc_.pad_w < desc_.kernel_w) {
    s.Error("poolSize", absl::StrCat("window ", desc_.kernel_h, "x", desc_.kernel_w,
                                     " is larger than the input ", in.ToString()));
    return {};
  }
  desc_.out_h = (desc_.in_h + 2 * desc_.pad_h - desc_.kernel_h) / desc_.stride_h + 1;
  desc_.out_w = (desc_.in_w + 2 * desc_.pad_w - desc_.kernel_w) / desc_.stride_w + 1;
  return {BlobKind::kDense, Shape({desc_.channels, desc_.out_h, desc_.out_w})};
}

absl::Status Pool2dLayer::Init(Device& device) {
  device_ = &device;
  kernel_ = device.CreatePool2d(desc_);
  return absl::OkStatus();
}

void Pool2dLayer::Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) {
  kernel_->Forward(in[0]->batch(), in[0]->value.data(), out.value.data(), ctx.training);
}

void Pool2dLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                           const StepContext&) {
  if (in_grad[0] != nullptr) kernel_->Backward(in[0]->batch(), out.grad.data(), in_grad[0]->data());
}

LayerExample MaxPoolLayer::GradCheckExample() {
  return {.attrs = {{"poolSize", 2}}, .inputs = {{BlobKind::kDense, Shape({2, 4, 4})}}, .batch = 2};
}

LayerExample AvgPoolLayer::GradCheckExample() {
  return {.attrs = {{"poolSize", 3}, {"stride", 2}, {"padding", 1}},
          .inputs = {{BlobKind::kDense, Shape({2, 5, 5})}},
          .batch = 2};
}

}  // namespace tandem::trainer
