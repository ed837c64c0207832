#include "trainer/layers/batch_norm_layer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace tandem::trainer {

BlobDesc BatchNormLayer::Setup(LayerSetup& s) {
  momentum_ = static_cast<float>(s.attrs().Float("momentum", 0.9, 0.0, 1.0));
  epsilon_ = static_cast<float>(s.attrs().Float("epsilon", 1e-5, 1e-12, 1.0));
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense}})) return {};
  const Shape& in = s.inputs()[0].shape;
  if (in.rank() != 1 && in.rank() != 3) {
    s.Error("inputs[0]", absl::StrCat("batch_norm needs a [channels] or [channels, height, width] "
                                      "input, got ", in.ToString()));
    return {};
  }
  channels_ = in.dim(0);
  spatial_ = in.NumElements() / channels_;
  s.AddParam({.name = "scale", .shape = Shape({channels_}), .init = ParamInit::kOne});
  s.AddParam({.name = "shift", .shape = Shape({channels_}), .init = ParamInit::kZero});
  s.AddParam({.name = "running_mean", .shape = Shape({channels_}), .init = ParamInit::kZero,
              .trainable = false});
  s.AddParam({.name = "running_var", .shape = Shape({channels_}), .init = ParamInit::kOne,
              .trainable = false});
  return s.inputs()[0];
}

void BatchNormLayer::Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) {
  const int64_t n = in[0]->batch();
  const float* x = in[0]->value.data();
  float* y = out.value.data();
  const float* gamma = params_[0]->value.data();
  const float* beta = params_[1]->value.data();
  float* rmean = params_[2]->value.data();
  float* rvar = params_[3]->value.data();
  const int64_t m = n * spatial_;
  xhat_.Resize(*device_, in[0]->value.shape());
  inv_std_.resize(channels_);
  for (int64_t c = 0; c < channels_; ++c) {
    float mean, var;
    if (ctx.training) {
      double sum = 0, sq = 0;
      for (int64_t e = 0; e < n; ++e) {
        const float* p = x + (e * channels_ + c) * spatial_;
        for (int64_t k = 0; k < spatial_; ++k) sum += p[k];
      }
      mean = static_cast<float>(sum / m);
      for (int64_t e = 0; e < n; ++e) {
        const float* p = x + (e * channels_ + c) * spatial_;
        for (int64_t k = 0; k < spatial_; ++k) sq += (p[k] - mean) * (p[k] - mean);
      }
      var = static_cast<float>(sq / m);
      rmean[c] = momentum_ * rmean[c] + (1 - momentum_) * mean;
      // Running variance is the unbiased estimate (as PyTorch and cuDNN keep it).
      rvar[c] = momentum_ * rvar[c] + (1 - momentum_) * var * (m > 1 ? m / (m - 1.f) : 1.f);
    } else {
      mean = rmean[c];
      var = rvar[c];
    }
    const float inv = 1.f / std::sqrt(var + epsilon_);
    inv_std_[c] = inv;
    for (int64_t e = 0; e < n; ++e) {
      const int64_t base = (e * channels_ + c) * spatial_;
      for (int64_t k = 0; k < spatial_; ++k) {
        const float xh = (x[base + k] - mean) * inv;
        xhat_.data()[base + k] = xh;
        y[base + k] = gamma[c] * xh + beta[c];
      }
    }
  }
}

void BatchNormLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                              const StepContext&) {
  const int64_t n = in[0]->batch();
  const int64_t m = n * spatial_;
  const float* dy = out.grad.data();
  const float* xh = xhat_.data();
  const float* gamma = params_[0]->value.data();
  float* dgamma = params_[0]->grad.data();
  float* dbeta = params_[1]->grad.data();
  for (int64_t c = 0; c < channels_; ++c) {
    double sg = 0, sb = 0;
    for (int64_t e = 0; e < n; ++e) {
      const int64_t base = (e * channels_ + c) * spatial_;
      for (int64_t k = 0; k < spatial_; ++k) {
        sg += dy[base + k] * xh[base + k];
        sb += dy[base + k];
      }
    }
    dgamma[c] = static_cast<float>(sg);
    dbeta[c] = static_cast<float>(sb);
    if (in_grad[0] == nullptr) continue;
    float* dx = in_grad[0]->data();
    const float k1 = gamma[c] * inv_std_[c] / m;
    for (int64_t e = 0; e < n; ++e) {
      const int64_t base = (e * channels_ + c) * spatial_;
      for (int64_t k = 0; k < spatial_; ++k)
        dx[base + k] = k1 * (m * dy[base + k] - static_cast<float>(sb) -
                             xh[base + k] * static_cast<float>(sg));
    }
  }
}

LayerExample BatchNormLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kDense, Shape({2, 2, 2})}}, .batch = 3};
}

}  // namespace tandem::trainer
