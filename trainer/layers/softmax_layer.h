// softmax: normalised exponentials over the last dimension (dense [C] or sequence [T, C]).
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

// out[r, :] = softmax(x[r, :]) for `rows` rows of `cols`; stable (subtracts the row maximum).
void SoftmaxRows(int64_t rows, int64_t cols, const float* x, float* out);

class SoftmaxLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  int64_t cols_ = 0;
};

}  // namespace tandem::trainer
