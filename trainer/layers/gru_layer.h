// gru: a gated recurrent unit layer over variable-length sequences, padding never computed
// (sequence_packing.h). PyTorch's formulation, gates r, z, n:
//   r = sigmoid(x Wr + br + h Ur + cr), z = sigmoid(x Wz + bz + h Uz + cz),
//   n = tanh(x Wn + bn + r * (h Un + cn)), h' = (1 - z) * n + z * h;   h0 = 0.
// Input: sequence [T, C]. Output: sequence [T, size]. Attribute: size (required).
// Parameters: input_weights [C, 3*size], recurrent_weights [size, 3*size], input_bias and
// recurrent_bias [3*size].
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/layers/sequence_packing.h"

namespace tandem::trainer {

class GruLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  int64_t steps_ = 0, in_ = 0, h_ = 0;
  SequencePacking pack_;
  Tensor x_, gx_, gh_, hs_, dh_, dgx_, dgh_, dx_;
};

}  // namespace tandem::trainer
