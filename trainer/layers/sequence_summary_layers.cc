#include "trainer/layers/sequence_summary_layers.h"

namespace tandem::trainer {

BlobDesc LastStepLayer::Setup(LayerSetup& s) {
  if (!s.ExpectInputs(1, 1, {{BlobKind::kSequence}})) return {};
  steps_ = s.inputs()[0].shape.dim(0);
  channels_ = s.inputs()[0].shape.dim(1);
  return {BlobKind::kDense, Shape({channels_})};
}

void LastStepLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& x = *in[0];
  for (int64_t e = 0; e < x.batch(); ++e) {
    const int64_t len = x.lengths[e];
    float* y = out.value.data() + e * channels_;
    if (len > 0) {
      device_->Copy(channels_, x.value.data() + (e * steps_ + len - 1) * channels_, y);
    } else {
      device_->Fill(channels_, 0.f, y);
    }
  }
}

void LastStepLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                             const StepContext&) {
  if (in_grad[0] == nullptr) return;
  const Blob& x = *in[0];
  float* dx = in_grad[0]->data();
  device_->Fill(x.batch() * steps_ * channels_, 0.f, dx);
  for (int64_t e = 0; e < x.batch(); ++e) {
    const int64_t len = x.lengths[e];
    if (len > 0)
      device_->Copy(channels_, out.grad.data() + e * channels_,
                    dx + (e * steps_ + len - 1) * channels_);
  }
}

LayerExample LastStepLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kSequence, Shape({4, 3})}}, .batch = 3};
}

BlobDesc SequenceExpandLayer::Setup(LayerSetup& s) {
  if (!s.ExpectInputs(2, 2, {{BlobKind::kDense}, {BlobKind::kSequence, BlobKind::kSequenceIds}}))
    return {};
  if (s.inputs()[0].shape.rank() != 1) {
    s.Error("inputs[0]", "must be a vector [C]; got " + s.inputs()[0].ToString());
    return {};
  }
  channels_ = s.inputs()[0].shape.dim(0);
  steps_ = s.inputs()[1].shape.dim(0);
  return {BlobKind::kSequence, Shape({steps_, channels_})};
}

void SequenceExpandLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& v = *in[0];
  const Blob& like = *in[1];
  for (int64_t e = 0; e < v.batch(); ++e) {
    const int64_t len = like.lengths[e];
    float* y = out.value.data() + e * steps_ * channels_;
    device_->CopyRows(len, channels_, v.value.data() + e * channels_, 0, y, channels_);
    if (len < steps_) device_->Fill((steps_ - len) * channels_, 0.f, y + len * channels_);
  }
  out.lengths = like.lengths;
}

void SequenceExpandLayer::Backward(const LayerInputs& in, const Blob& out,
                                   const LayerGrads& in_grad, const StepContext&) {
  if (in_grad[0] == nullptr) return;
  const Blob& like = *in[1];
  for (int64_t e = 0; e < in[0]->batch(); ++e) {
    const int64_t len = like.lengths[e];
    float* dv = in_grad[0]->data() + e * channels_;
    if (len > 0) {
      device_->BiasGrad(len, channels_, out.grad.data() + e * steps_ * channels_, dv);
    } else {
      device_->Fill(channels_, 0.f, dv);
    }
  }
}

int64_t SequenceExpandLayer::RowClasses(const LayerInputs& in, std::vector<int32_t>* row_class) {
  const Blob& like = *in[1];
  const int64_t n = in[0]->batch();
  row_class->assign(n * steps_, -1);
  for (int64_t e = 0; e < n; ++e)
    for (int64_t t = 0; t < like.lengths[e]; ++t)
      (*row_class)[e * steps_ + t] = static_cast<int32_t>(e);
  return n;
}

void SequenceExpandLayer::BackwardFromClassSums(const LayerInputs& in, const LayerGrads& in_grad,
                                                int64_t n, const int32_t* classes,
                                                const float* grads, const StepContext&) {
  if (in_grad[0] == nullptr) return;
  float* dv = in_grad[0]->data();
  device_->Fill(in[0]->batch() * channels_, 0.f, dv);  // examples without steps: zero
  for (int64_t i = 0; i < n; ++i)
    device_->Copy(channels_, grads + i * channels_, dv + int64_t{classes[i]} * channels_);
}

LayerExample SequenceExpandLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kDense, Shape({3})}, {BlobKind::kSequence, Shape({4, 2})}},
          .batch = 3};
}

}  // namespace tandem::trainer
