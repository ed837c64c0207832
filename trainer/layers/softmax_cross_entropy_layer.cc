#include "trainer/layers/softmax_cross_entropy_layer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "trainer/core/fast_math.h"

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

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TANDEM_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TANDEM_VECTOR_CLONES
#endif

TANDEM_VECTOR_CLONES float RowMax(int64_t n, const float* x) {
  float m = x[0];
#pragma omp simd reduction(max : m)
  for (int64_t c = 0; c < n; ++c) m = x[c] > m ? x[c] : m;
  return m;
}

// sum_c e^(x_c - m)
TANDEM_VECTOR_CLONES float RowSumExp(int64_t n, const float* x, float m) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < n; ++c) s += FastExp(x[c] - m);
  return s;
}

// d_c = e^(x_c - m) * scale: softmax(x) * scale when scale is the step's weight over the sum.
TANDEM_VECTOR_CLONES void RowScaledExp(int64_t n, const float* x, float m, float scale, float* d) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) d[c] = FastExp(x[c] - m) * scale;
}

}  // namespace

// The softmax is never stored: the forward pass keeps each valid row's max and sum of
// exponentials, the loss is log(sum) - (x_label - max), and the backward pass recomputes
// softmax(x) = e^(x - max) / sum from the logits straight into the gradient. At 10,000 classes
// (bench/seq2seq-vs-pytorch's rnn model: 1,920 rows a step) the probabilities were a 77 MB
// buffer written by the forward pass and read back by the backward one.
void SoftmaxCrossEntropyLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& logits = *in[0];
  const Blob& labels = *in[1];
  const int64_t n = logits.batch();
  const int64_t rows = n * steps_;
  row_max_.resize(rows);
  row_sum_.resize(rows);
  row_loss_.resize(rows);
  const float* x = logits.value.data();
  auto valid = [&](int64_t row) {
    return !sequence_ || row % steps_ < labels.lengths[row / steps_];
  };
#pragma omp parallel for schedule(static) if (rows * classes_ >= 65536)
  for (int64_t row = 0; row < rows; ++row) {
    if (!valid(row)) continue;  // padding: no loss, zero gradient
    const float* xr = x + row * classes_;
    const float m = RowMax(classes_, xr);
    const float sum = RowSumExp(classes_, xr, m);
    const int32_t label = labels.ids[row];
    TANDEM_DCHECK(label >= 0 && label < classes_);
    row_max_[row] = m;
    row_sum_[row] = sum;
    row_loss_[row] = std::log(sum) - (xr[label] - m);
  }
  float* loss = out.value.data();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = sequence_ ? labels.lengths[i] : 1;
    double total = 0;
    for (int64_t t = 0; t < len; ++t) total += row_loss_[i * steps_ + t];
    loss[i] = len > 0 ? static_cast<float>(total / len) : 0.f;
  }
}

void SoftmaxCrossEntropyLayer::Backward(const LayerInputs& in, const Blob& out,
                                        const LayerGrads& in_grad, const StepContext&) {
  if (in_grad[0] == nullptr) return;
  const Blob& labels = *in[1];
  const int64_t n = in[0]->batch();
  const int64_t rows = n * steps_;
  float* dx = in_grad[0]->data();
  const float* x = in[0]->value.data();
  const float* dloss = out.grad.data();
#pragma omp parallel for schedule(static) if (rows * classes_ >= 65536)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t i = row / steps_, t = row % steps_;
    const int64_t len = sequence_ ? labels.lengths[i] : 1;
    float* d = dx + row * classes_;
    if (t >= len) {
      std::fill(d, d + classes_, 0.f);
      continue;
    }
    const float scale = dloss[i] / len;
    RowScaledExp(classes_, x + row * classes_, row_max_[row], scale / row_sum_[row], d);
    d[labels.ids[row]] -= scale;
  }
}

LayerExample SoftmaxCrossEntropyLayer::GradCheckExample() {
  return {.inputs = {{BlobKind::kDense, Shape({4})}, {BlobKind::kLabel, Shape({1})}},
          .batch = 3,
          .vocab = 4};
}

}  // namespace tandem::trainer
