// rank_cost: the pairwise ranking cost with a margin (the seed's "ranking cost on the top"):
// for scores l (left) and r (right) and a preference y (1: left should rank higher, 0: right),
// loss = max(0, margin - s * (l - r)) with s = +1 for y > 0.5, else -1.
// Inputs: left score (dense [1]), right score (dense [1]), preference (dense [1] or label).
// Attribute: margin (0.1, >= 0). Output: dense [1], each pair's loss.
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class RankCostLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  bool Differentiable(int i) const override { return i < 2; }
  static LayerExample GradCheckExample();

 private:
  float margin_ = 0.1f;
};

}  // namespace tandem::trainer
