#include "trainer/layers/conv2d_layer.h"

#include "absl/strings/str_cat.h"

namespace tandem::trainer {

BlobDesc Conv2dLayer::Setup(LayerSetup& s) {
  AttrReader& a = s.attrs();
  const int64_t filters = a.RequiredInt("numFilters", 1);
  const bool has_filter_size = s.config().attrs.contains("filterSize");
  const auto kernel = a.IntPair("filterSize", 1, 1);
  if (!has_filter_size) a.Error("filterSize", "is required");
  const auto stride = a.IntPair("stride", 1, 1);
  const auto pad = a.IntPair("padding", 0, 0);
  const int64_t groups = a.Int("groups", 1, 1);
  desc_.bias = a.Bool("bias", true);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense}})) return {};
  const Shape& in = s.inputs()[0].shape;
  if (in.rank() != 3) {
    s.Error("inputs[0]", absl::StrCat("conv2d needs a [channels, height, width] input, got ",
                                      in.ToString()));
    return {};
  }
  if (!s.ok()) return {};
  desc_.in_channels = in.dim(0);
  desc_.in_h = in.dim(1);
  desc_.in_w = in.dim(2);
  desc_.out_channels = filters;
  desc_.kernel_h = kernel.first;
  desc_.kernel_w = kernel.second;
  desc_.stride_h = stride.first;
  desc_.stride_w = stride.second;
  desc_.pad_h = pad.first;
  desc_.pad_w = pad.second;
  desc_.groups = groups;
  if (desc_.in_channels % groups != 0) {
    s.Error("groups", absl::StrCat("input channels (", desc_.in_channels,
                                   ") must be divisible by groups (", groups, ")"));
  }
  if (filters % groups != 0) {
    s.Error("groups", absl::StrCat("numFilters (", filters, ") must be divisible by groups (",
                                   groups, ")"));
  }
  desc_.out_h = (desc_.in_h + 2 * desc_.pad_h - desc_.kernel_h) / desc_.stride_h + 1;
  desc_.out_w = (desc_.in_w + 2 * desc_.pad_w - desc_.kernel_w) / desc_.stride_w + 1;
  if (desc_.in_h + 2 * desc_.pad_h < desc_.kernel_h ||
      desc_.in_w + 2 * desc_.pad_w < desc_.kernel_w) {
    s.Error("filterSize", absl::StrCat("filter ", desc_.kernel_h, "x", desc_.kernel_w,
                                       " is larger than the padded input ", in.ToString()));
  }
  if (!s.ok()) return {};
  const int64_t fan_in = desc_.in_channels / groups * desc_.kernel_h * desc_.kernel_w;
  s.AddParam({.name = "weights",
              .shape = Shape({filters, desc_.in_channels / groups, desc_.kernel_h,
                              desc_.kernel_w}),
              .init = ParamInit::kHe,
              .fan_in = fan_in,
              .fan_out = filters * desc_.kernel_h * desc_.kernel_w / groups});
  if (desc_.bias) s.AddParam({.name = "bias", .shape = Shape({filters}), .init = ParamInit::kZero});
  return {BlobKind::kDense, Shape({filters, desc_.out_h, desc_.out_w})};
}

absl::Status Conv2dLayer::Init(Device& device) {
  device_ = &device;
  kernel_ = device.CreateConv2d(desc_);
  return absl::OkStatus();
}

void Conv2dLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  kernel_->Forward(in[0]->batch(), in[0]->value.data(), params_[0]->value.data(),
                   desc_.bias ? params_[1]->value.data() : nullptr, out.value.data());
}

void Conv2dLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                           const StepContext&) {
  const int64_t n = in[0]->batch();
  kernel_->Backward(n, in[0]->value.data(), out.grad.data(), params_[0]->value.data(),
                    params_[0]->grad.data(), desc_.bias ? params_[1]->grad.data() : nullptr,
                    in_grad[0] != nullptr ? in_grad[0]->data() : nullptr);
}

LayerExample Conv2dLayer::GradCheckExample() {
  return {.attrs = {{"numFilters", 4}, {"filterSize", 3}, {"stride", 2}, {"padding", 1},
                    {"groups", 2}},
          .inputs = {{BlobKind::kDense, Shape({2, 5, 5})}},
          .batch = 2};
}

}  // namespace tandem::trainer
