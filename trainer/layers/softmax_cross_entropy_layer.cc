#include "trainer/layers/softmax_cross_entropy_layer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "trainer/layers/softmax_layer.h"

namespace tandem::trainer {

BlobDesc SoftmaxCrossEntropyLayer::Setup(LayerSetup& s) {
  if (!s.ExpectInputs(2, 2, {{BlobKind::kDense, BlobKind::kSequence},
                             {BlobKind::kLabel, BlobKind::kSequenceIds}})) {
    return {};
  }
  const BlobDesc& logits = s.inputs()[0];
  const BlobDesc& labels = s.inputs()[1];
  sequence_ = logits.kind == BlobKind::kSequence;
  if (sequence_ != (labels.kind == BlobKind::kSequenceIds)) {
    s.Error("inputs[1]", absl::StrCat("labels ", labels.ToString(), " do not match logits ",
                                      logits.ToString(),
                                      " (sequences need sequence ids, dense logits need labels)"));
    return {};
  }
  if (sequence_) {
    steps_ = logits.shape.dim(0);
    classes_ = logits.shape.dim(1);
    if (labels.shape.dim(0) != steps_) {
      s.Error("inputs[1]", absl::StrCat("labels ", labels.ToString(), " and logits ",
                                        logits.ToString(), " have different lengths"));
    }
  } else {
    if (logits.shape.rank() != 1) {
      s.Error("inputs[0]", absl::StrCat("logits must be a vector [classes], got ",
                                        logits.shape.ToString()));
      return {};
    }
    classes_ = logits.shape.dim(0);
  }
  if (classes_ < 2) s.Error("inputs[0]", "needs at least 2 classes");
  return {BlobKind::kDense, Shape({1})};
}

void SoftmaxCrossEntropyLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& logits = *in[0];
  const Blob& labels = *in[1];
  const int64_t n = logits.batch();
  probs_.Resize(*device_, logits.value.shape());
  device_->Softmax(n * steps_, classes_, logits.value.data(), probs_.data());
  float* loss = out.value.data();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = sequence_ ? labels.lengths[i] : 1;
    double sum = 0;
    for (int64_t t = 0; t < len; ++t) {
      const int64_t row = i * steps_ + t;
      const int32_t label = labels.ids[row];
      TANDEM_DCHECK(label >= 0 && label < classes_);
      sum -= std::log(std::max(probs_.data()[row * classes_ + label], 1e-30f));
    }
    loss[i] = len > 0 ? static_cast<float>(sum / len) : 0.f;
  }
}

void SoftmaxCrossEntropyLayer::Backward(const LayerInputs& in, const Blob& out,
                                        const LayerGrads& in_grad, const StepContext&) {
  if (in_grad[0] == nullptr) return;
  const Blob& labels = *in[1];
  const int64_t n = in[0]->batch();
  float* dx = in_grad[0]->data();
  const float* p = probs_.data();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = sequence_ ? labels.lengths[i] : 1;
    const float scale = len > 0 ? out.grad.data()[i] / len : 0.f;
    for (int64_t t = 0; t < steps_; ++t) {
      const int64_t row = i * steps_ + t;
      float* d = dx + row * classes_;
      if (t >= len) {
        std::fill(d, d + classes_, 0.f);
        continue;
      }
      for (int64_t c = 0; c < classes_; ++c) d[c] = p[row * classes_ + c] * scale;
      d[labels.ids[row]] -= scale;
    }
  }
}

LayerExample SoftmaxCrossEntropyLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kDense, Shape({4})}, {BlobKind::kLabel, Shape({1})}},
          .batch = 3,
          .vocab = 4};
}

}  // namespace tandem::trainer
