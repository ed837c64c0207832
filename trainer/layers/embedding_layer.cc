#include "trainer/layers/embedding_layer.h"

#include <omp.h>

#include <algorithm>
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
  const float* table = params_[0]->value.data();
  const Blob& b = *in[0];
  if (sequence_) {
    device_->Fill(out.value.size(), 0.f, y);
    ForEach(b, [&](int64_t row, int32_t id, float w) {
      const float* src = table + Row(id) * size_;
      float* dst = y + row * size_;
      for (int64_t c = 0; c < size_; ++c) dst[c] += w * src[c];
    });
    out.lengths = b.lengths;
    return;
  }
  // One output row per (example, field), each written by one thread: the row lookups are cache
  // and TLB misses into a table far larger than the caches, which threads overlap.
  const int64_t rows = static_cast<int64_t>(b.offsets.size()) - 1;
#pragma omp parallel for schedule(static) if (rows * size_ >= 65536)
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = y + r * size_;
    const int32_t begin = b.offsets[r], end = b.offsets[r + 1];
    if (begin == end) {
      std::memset(dst, 0, sizeof(float) * size_);
      continue;
    }
    const float w = mean_ ? 1.f / static_cast<float>(end - begin) : 1.f;
    const float* first = table + Row(b.ids[begin]) * size_;
    for (int64_t c = 0; c < size_; ++c) dst[c] = w * first[c];
    for (int32_t k = begin + 1; k < end; ++k) {
      const float* src = table + Row(b.ids[k]) * size_;
      for (int64_t c = 0; c < size_; ++c) dst[c] += w * src[c];
    }
  }
}

namespace {

// Room for `rows` compact gradient rows of `cols` in p.grad, keeping the first `keep` (a second
// backward before the update adds to them). Grows geometrically, so the capacity settles after
// the first steps at about the distinct rows of the largest batch.
void ReserveGradRows(Device& device, Param& p, int64_t rows, int64_t keep, int64_t cols) {
  const int64_t have = p.grad.empty() ? 0 : p.grad.shape().dim(0);
  if (rows <= have) return;
  Tensor grown;
  grown.Resize(device, Shape({std::max(rows, 2 * have), cols}));
  if (keep > 0) device.Copy(keep * cols, p.grad.data(), grown.data());
  p.grad = std::move(grown);
}

}  // namespace

template <typename ForEachRow>
void EmbeddingLayer::TouchRows(Param& p, ForEachRow for_each_row) {
  const int64_t before = static_cast<int64_t>(p.touched_rows.size());
  for_each_row([&](int64_t r) {
    if (p.row_slot[r] >= 0) return;
    p.row_slot[r] = static_cast<int32_t>(p.touched_rows.size());
    p.touched_rows.push_back(static_cast<int32_t>(r));
  });
  const int64_t rows = static_cast<int64_t>(p.touched_rows.size());
  ReserveGradRows(*device_, p, rows, before, size_);
  std::memset(p.grad.data() + before * size_, 0, sizeof(float) * (rows - before) * size_);
}

void EmbeddingLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads&,
                              const StepContext&) {
  Param& p = *params_[0];
  const Blob& ids = *in[0];
  const float* dy = out.grad.data();
  // 1. On one thread, in first-touch order: a compact gradient row (zeroed) for every table row
  //    the batch uses. The order, and so the gradient's layout, is the same for any thread count.
  TouchRows(p, [&](auto touch) {
    ForEach(ids, [&](int64_t, int32_t id, float) { touch(Row(id)); });
  });
  float* g = p.grad.data();
  // 2. Scatter-add dy into those rows. With several threads, thread t owns the table rows r with
  //    r % T == t and walks every (output row, id) pair in order, so each gradient row is summed
  //    in the same order as on one thread (identical results) and no two threads write one row.
  auto accumulate = [&](int t, int nt) {
    ForEach(ids, [&](int64_t row, int32_t id, float w) {
      const int64_t r = Row(id);
      if (nt > 1 && r % nt != t) return;
      float* dst = g + int64_t{p.row_slot[r]} * size_;
      const float* src = dy + row * size_;
      for (int64_t c = 0; c < size_; ++c) dst[c] += w * src[c];
    });
  };
  const int threads = device_->threads();
  const int64_t work = static_cast<int64_t>(ids.ids.size()) * size_;
  if (threads <= 1 || work < 65536) {
    accumulate(0, 1);
    return;
  }
#pragma omp parallel num_threads(threads)
  accumulate(omp_get_thread_num(), omp_get_num_threads());
}

int64_t EmbeddingLayer::RowClasses(const LayerInputs& in, std::vector<int32_t>* row_class) {
  const Blob& ids = *in[0];
  row_class->assign(ids.lengths.size() * steps_, -1);
  class_rows_.clear();
  class_of_row_.clear();
  ForEach(ids, [&](int64_t row, int32_t id, float) {
    const int64_t r = Row(id);
    auto [it, added] = class_of_row_.try_emplace(r, static_cast<int32_t>(class_rows_.size()));
    if (added) class_rows_.push_back(r);
    (*row_class)[row] = it->second;
  });
  return static_cast<int64_t>(class_rows_.size());
}

// The table rows' gradients are the class sums themselves (every row of a class is one lookup of
// its table row with weight 1).
void EmbeddingLayer::BackwardFromClassSums(const LayerInputs&, const LayerGrads&, int64_t n,
                                           const int32_t* classes, const float* grads,
                                           const StepContext&) {
  Param& p = *params_[0];
  TouchRows(p, [&](auto touch) {
    for (int64_t i = 0; i < n; ++i) touch(class_rows_[classes[i]]);
  });
  float* g = p.grad.data();
  for (int64_t i = 0; i < n; ++i) {
    float* dst = g + int64_t{p.row_slot[class_rows_[classes[i]]]} * size_;
    const float* src = grads + i * size_;
    for (int64_t c = 0; c < size_; ++c) dst[c] += src[c];
  }
}

LayerExample EmbeddingLayer::GradCheckExample() {
  return {.attrs = {{"vocabSize", 5}, {"size", 3}, {"pooling", "mean"}},
          .inputs = {{BlobKind::kIds, Shape({2})}},
          .batch = 3,
          .vocab = 5};
}

}  // namespace tandem::trainer
