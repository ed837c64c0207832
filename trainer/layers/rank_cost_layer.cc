#include "trainer/layers/rank_cost_layer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "trainer/layers/binary_cross_entropy_layer.h"

namespace tandem::trainer {

BlobDesc RankCostLayer::Setup(LayerSetup& s) {
  margin_ = static_cast<float>(s.attrs().Float("margin", 0.1, 0.0, 1e6));
  if (!s.ExpectInputs(3, 3, {{BlobKind::kDense}, {BlobKind::kDense},
                             {BlobKind::kDense, BlobKind::kLabel}})) {
    return {};
  }
  for (int i = 0; i < 3; ++i) {
    if (s.inputs()[i].shape != Shape({1})) {
      s.Error(absl::StrCat("inputs[", i, "]"),
              absl::StrCat("must be one value per example (dense [1]), got ",
                           s.inputs()[i].ToString()));
    }
  }
  return {BlobKind::kDense, Shape({1})};
}

void RankCostLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const int64_t n = in[0]->batch();
  for (int64_t i = 0; i < n; ++i) {
    const float s = TargetOf(*in[2], i) > 0.5f ? 1.f : -1.f;
    const float d = in[0]->value.data()[i] - in[1]->value.data()[i];
    out.value.data()[i] = std::max(0.f, margin_ - s * d);
  }
}

void RankCostLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                             const StepContext&) {
  const int64_t n = in[0]->batch();
  for (int64_t i = 0; i < n; ++i) {
    const float s = TargetOf(*in[2], i) > 0.5f ? 1.f : -1.f;
    const float d = in[0]->value.data()[i] - in[1]->value.data()[i];
    const float g = margin_ - s * d > 0.f ? -s * out.grad.data()[i] : 0.f;
    if (in_grad[0] != nullptr) in_grad[0]->data()[i] = g;
    if (in_grad[1] != nullptr) in_grad[1]->data()[i] = -g;
  }
}

// A large margin keeps every pair of grid inputs (|l - r| <= 4) inside the hinge's linear part,
// away from its kink; the zero side is covered by the unit test in rank_cost_test.
LayerExample RankCostLayer::GradCheckExample() {
  return {.attrs = {{"margin", 5.0}},
          .inputs = {{BlobKind::kDense, Shape({1})}, {BlobKind::kDense, Shape({1})},
                     {BlobKind::kLabel, Shape({1})}},
          .batch = 4,
          .vocab = 2};
}

}  // namespace tandem::trainer
