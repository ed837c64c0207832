// Two small layers that carry a whole-sequence summary into another sequence: the classic
// encoder-decoder without attention (Cho et al. 2014: the encoder's last state conditions every
// decoder step).
//
//   last_step:       sequence [T, C] -> dense [C], each example's state at its last valid step
//                    (length - 1; zero for an empty sequence). Backward puts the gradient there.
//   sequence_expand: (dense [C], sequence [T, *]) -> sequence [T, C]: the vector repeated at every
//                    valid step of the second input (whose lengths it takes), zero on padding. The
//                    second input only gives the lengths (no gradient).
//
//   summary = last_step(encoder);  decoder_in = concat(target_embedding,
//                                                     sequence_expand(summary, target_embedding))
// No attributes. Device ops only (kAnyDevice).
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class LastStepLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  int64_t steps_ = 0, channels_ = 0;
};

class SequenceExpandLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  bool Differentiable(int i) const override { return i == 0; }
  bool HasRowClasses() const override { return true; }
  // Class of row (e, t): example e.
  int64_t RowClasses(const LayerInputs& in, std::vector<int32_t>* row_class) override;
  void BackwardFromClassSums(const LayerInputs& in, const LayerGrads& in_grad, int64_t n,
                             const int32_t* classes, const float* grads,
                             const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  int64_t steps_ = 0, channels_ = 0;
};

}  // namespace tandem::trainer
