#include "trainer/layers/binary_cross_entropy_layer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace tandem::trainer {

float TargetOf(const Blob& targets, int64_t i) {
  return targets.ids.empty() ? targets.value.data()[i] : static_cast<float>(targets.ids[i]);
}

BlobDesc BinaryCrossEntropyLayer::Setup(LayerSetup& s) {
  if (!s.ExpectInputs(2, 2, {{BlobKind::kDense}, {BlobKind::kDense, BlobKind::kLabel}})) return {};
  for (int i = 0; i < 2; ++i) {
    if (s.inputs()[i].shape != Shape({1})) {
      s.Error(absl::StrCat("inputs[", i, "]"),
              absl::StrCat("must be one value per example (dense [1]), got ",
                           s.inputs()[i].ToString()));
    }
  }
  return {BlobKind::kDense, Shape({1})};
}

void BinaryCrossEntropyLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const int64_t n = in[0]->batch();
  const float* x = in[0]->value.data();
  for (int64_t i = 0; i < n; ++i) {
    const float t = TargetOf(*in[1], i);
    out.value.data()[i] = std::max(x[i], 0.f) - x[i] * t + std::log1p(std::exp(-std::abs(x[i])));
  }
}

void BinaryCrossEntropyLayer::Backward(const LayerInputs& in, const Blob& out,
                                       const LayerGrads& in_grad, const StepContext&) {
  if (in_grad[0] == nullptr) return;
  const int64_t n = in[0]->batch();
  const float* x = in[0]->value.data();
  for (int64_t i = 0; i < n; ++i) {
    const float p = 1.f / (1.f + std::exp(-x[i]));
    in_grad[0]->data()[i] = (p - TargetOf(*in[1], i)) * out.grad.data()[i];
  }
}

LayerExample BinaryCrossEntropyLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kDense, Shape({1})}, {BlobKind::kLabel, Shape({1})}},
          .batch = 4,
          .vocab = 2};
}

}  // namespace tandem::trainer
