// reverse_sequence: reverses each example's valid steps, y[n, t] = x[n, len_n - 1 - t] for
// t < len_n, zero on padding. Padding stays at the end, so a recurrent layer between two of these
// reads the sequence backwards: the backward half of a bidirectional encoder
//   fw = lstm(x);  bw = reverse_sequence(lstm(reverse_sequence(x)));  concat(fw, bw)
// (ModelBuilder::BidirectionalLstm/Gru write exactly that). Input: sequence [T, C]; output the
// same. No attributes. Device ops only (kAnyDevice): one row copy per valid step.
#pragma once

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class ReverseSequenceLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  // dst = reverse(src) per example, by `lengths`.
  void Reverse(const std::vector<int32_t>& lengths, int64_t n, const float* src, float* dst);
  int64_t steps_ = 0, channels_ = 0;
};

}  // namespace tandem::trainer
