#include "trainer/layers/reverse_sequence_layer.h"

namespace tandem::trainer {

BlobDesc ReverseSequenceLayer::Setup(LayerSetup& s) {
  if (!s.ExpectInputs(1, 1, {{BlobKind::kSequence}})) return {};
  steps_ = s.inputs()[0].shape.dim(0);
  channels_ = s.inputs()[0].shape.dim(1);
  return s.inputs()[0];
}

void ReverseSequenceLayer::Reverse(const std::vector<int32_t>& lengths, int64_t n,
                                   const float* src, float* dst) {
  for (int64_t e = 0; e < n; ++e) {
    const int64_t len = lengths[e];
    const float* s = src + e * steps_ * channels_;
    float* d = dst + e * steps_ * channels_;
    for (int64_t t = 0; t < len; ++t)
      device_->Copy(channels_, s + (len - 1 - t) * channels_, d + t * channels_);
    if (len < steps_) device_->Fill((steps_ - len) * channels_, 0.f, d + len * channels_);
  }
}

void ReverseSequenceLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  Reverse(in[0]->lengths, in[0]->batch(), in[0]->value.data(), out.value.data());
  out.lengths = in[0]->lengths;
}

void ReverseSequenceLayer::Backward(const LayerInputs& in, const Blob& out,
                                    const LayerGrads& in_grad, const StepContext&) {
  if (in_grad[0] == nullptr) return;
  Reverse(in[0]->lengths, in[0]->batch(), out.grad.data(), in_grad[0]->data());
}

LayerExample ReverseSequenceLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kSequence, Shape({4, 2})}}, .batch = 3};
}

}  // namespace tandem::trainer
