#include "trainer/layers/embedding_layer.h"

#include <cstring>

namespace tandem::trainer {

BlobDesc EmbeddingLayer::Setup(LayerSetup& s) {
  vocab_ = s.attrs().RequiredInt("vocabSize", 1, int64_t{1} << 31);
  size_ = s.attrs().RequiredInt("size", 1, 1 << 20);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kIds, BlobKind::kSequenceIds}})) return {};
  const BlobDesc& in = s.inputs()[0];
  sequence_ = in.kind == BlobKind::kSequenceIds;
  if (!sequence_) mean_ = s.attrs().Enum("pooling", "sum", {"sum", "mean"}) == "mean";
  if (!s.ok()) return {};
  s.AddParam({.name = "table",
              .shape = Shape({vocab_, size_}),
              .init = ParamInit::kSmall,
              .fan_in = 1,
              .fan_out = size_,
              .sparse = true});
  if (sequence_) {
    steps_ = in.shape.dim(0);
    return {BlobKind::kSequence, Shape({steps_, size_})};
  }
  fields_ = in.shape.dim(0);
  return {BlobKind::kDense, Shape({fields_ * size_})};
}

template <typename F>
void EmbeddingLayer::ForEach(const Blob& in, F f) const {
  const int64_t n = static_cast<int64_t>(sequence_ ? in.lengths.size() : (in.offsets.size() - 1) / fields_);
  if (sequence_) {
    for (int64_t e = 0; e < n; ++e)
      for (int64_t t = 0; t < in.lengths[e]; ++t) f(e * steps_ + t, in.ids[e * steps_ + t], 1.f);
    return;
  }
  for (int64_t r = 0; r < n * fields_; ++r) {
    const int32_t b = in.offsets[r], end = in.offsets[r + 1];
    const float w = mean_ && end > b ? 1.f / static_cast<float>(end - b) : 1.f;
    for (int32_t k = b; k < end; ++k) f(r, in.ids[k], w);
  }
}

void EmbeddingLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  float* y = out.value.data();
  device_->Fill(out.value.size(), 0.f, y);
  const float* table = params_[0]->value.data();
  ForEach(*in[0], [&](int64_t row, int32_t id, float w) {
    const float* src = table + Row(id) * size_;
    float* dst = y + row * size_;
    for (int64_t c = 0; c < size_; ++c) dst[c] += w * src[c];
  });
  if (sequence_) out.lengths = in[0]->lengths;
}

void EmbeddingLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads&,
                              const StepContext&) {
  Param& p = *params_[0];
  const float* dy = out.grad.data();
  float* g = p.grad.data();
  ForEach(*in[0], [&](int64_t row, int32_t id, float w) {
    const int64_t r = Row(id);
    float* dst = g + r * size_;
    if (!p.row_touched[r]) {  // first use this step: start from zero
      p.row_touched[r] = 1;
      p.touched_rows.push_back(static_cast<int32_t>(r));
      std::memset(dst, 0, sizeof(float) * size_);
    }
    const float* src = dy + row * size_;
    for (int64_t c = 0; c < size_; ++c) dst[c] += w * src[c];
  });
}

LayerExample EmbeddingLayer::GradCheckExample() {
  return {.attrs = {{"vocabSize", 5}, {"size", 3}, {"pooling", "mean"}},
          .inputs = {{BlobKind::kIds, Shape({2})}},
          .batch = 3,
          .vocab = 5};
}

}  // namespace tandem::trainer
