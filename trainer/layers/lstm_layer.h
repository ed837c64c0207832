// lstm: a long short-term memory layer over variable-length sequences in one batch; padding is
// never computed (see sequence_packing.h). Gates i, f, g, o (PyTorch's order); h0 = c0 = 0.
// Input: sequence [T, C]. Output: sequence [T, size] (hidden state at each step, zero on padding).
// Attribute: size (required). Parameters: input_weights [C, 4*size], recurrent_weights
// [size, 4*size] (Xavier), bias [4*size] (zero).
// Each step costs one GEMM over only the still-running sequences; the input projection of all
// steps is a single GEMM, and so are the backward pass's weight gradients (dWx, and dWh over the
// stacked gate gradients of every step).
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/layers/sequence_packing.h"

namespace tandem::trainer {

class LstmLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  int64_t steps_ = 0, in_ = 0, h_ = 0;
  SequencePacking pack_;
  Tensor x_, gates_, c_, hs_, dh_, dgates_, dx_, dc_, hprev_, wht_;
};

}  // namespace tandem::trainer
