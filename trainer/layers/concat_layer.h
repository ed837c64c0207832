// concat: joins its inputs along the feature dimension: dense inputs are flattened and
// concatenated ([a] + [b, c] -> [a + b*c]); sequence inputs (all with the same T) are joined per
// step ([T, a] + [T, b] -> [T, a + b]). No attributes.
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class ConcatLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  std::vector<int64_t> widths_;  // per input: floats per row
  int64_t total_ = 0, steps_ = 1;
  bool sequence_ = false;
};

}  // namespace tandem::trainer
