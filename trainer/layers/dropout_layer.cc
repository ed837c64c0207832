#include "trainer/layers/dropout_layer.h"

#include <functional>

namespace tandem::trainer {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

BlobDesc DropoutLayer::Setup(LayerSetup& s) {
  rate_ = static_cast<float>(s.attrs().Float("rate", 0.5, 0.0, 0.99));
  salt_ = std::hash<std::string>()(s.config().name);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kDense, BlobKind::kSequence}})) return {};
  return s.inputs()[0];
}

bool DropoutLayer::Keep(const StepContext& ctx, int64_t i) const {
  const uint64_t h = Mix(Mix(Mix(ctx.seed ^ salt_) ^ ctx.step) ^ static_cast<uint64_t>(i));
  return static_cast<double>(h >> 11) * 0x1.0p-53 >= rate_;
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
  const float scale = 1.f / (1.f - rate_);
  for (int64_t i = 0; i < n; ++i) y[i] = Keep(ctx, i) ? x[i] * scale : 0.f;
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
  const float scale = 1.f / (1.f - rate_);
  for (int64_t i = 0; i < n; ++i) dx[i] = Keep(ctx, i) ? dy[i] * scale : 0.f;
}

LayerExample DropoutLayer::GradCheckExample() {
  return {.attrs = {{"rate", 0.3}}, .inputs = {{BlobKind::kDense, Shape({6})}}};
}

}  // namespace tandem::trainer
