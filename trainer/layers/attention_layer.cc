#include "trainer/layers/attention_layer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace tandem::trainer {

bool AttentionBase::SetupInputs(LayerSetup& s) {
  if (!s.ExpectInputs(2, 2, {{BlobKind::kSequence}, {BlobKind::kSequence}})) return false;
  tq_ = s.inputs()[0].shape.dim(0);
  hq_ = s.inputs()[0].shape.dim(1);
  tk_ = s.inputs()[1].shape.dim(0);
  hk_ = s.inputs()[1].shape.dim(1);
  return true;
}

void AttentionBase::Plan(const Blob& q, const Blob& m) {
  const int64_t n = q.batch();
  block_.assign(n + 1, 0);
  runs_.clear();
  for (int64_t e = 0; e < n; ++e) {
    const int64_t lq = q.lengths[e], lk = m.lengths[e];
    const bool valid = lq > 0 && lk > 0;
    block_[e + 1] = block_[e] + (valid ? lq * lk : 0);
    if (!valid) continue;
    if (!runs_.empty()) {
      Run& r = runs_.back();
      if (r.first + r.count == e && r.lq == lq && r.lk == lk) {
        ++r.count;
        continue;
      }
    }
    runs_.push_back({e, 1, lq, lk});
  }
}

void AttentionBase::SoftmaxAndContext(const Blob& q, const Blob& m, Blob& out) {
  const int64_t n = q.batch();
  const float* mem = m.value.data();
  float* c = out.value.data();
  for (const Run& r : runs_) {
    float* p = probs_.data() + Block(r.first);
    device_->Softmax(r.count * r.lq, r.lk, scores_.data() + Block(r.first), p);
    device_->GemmStridedBatched(false, false, r.lq, hk_, r.lk, 1.f, p, r.lk, r.lq * r.lk,
                                mem + r.first * tk_ * hk_, hk_, tk_ * hk_, 0.f,
                                c + r.first * tq_ * hk_, hk_, tq_ * hk_, r.count);
  }
  for (int64_t e = 0; e < n; ++e) {
    const int64_t valid = m.lengths[e] > 0 ? q.lengths[e] : 0;
    if (valid < tq_) device_->Fill((tq_ - valid) * hk_, 0.f, c + (e * tq_ + valid) * hk_);
  }
  out.lengths = q.lengths;
}

void AttentionBase::ContextBackward(const Blob& q, const Blob& m, const Blob& out,
                                    Tensor* dmemory) {
  const int64_t n = q.batch();
  const float* mem = m.value.data();
  const float* dc = out.grad.data();
  dprobs_.Resize(*device_, Shape({n * tq_ * tk_}));
  dscores_.Resize(*device_, Shape({n * tq_ * tk_}));
  for (const Run& r : runs_) {
    const float* p = probs_.data() + Block(r.first);
    const float* dce = dc + r.first * tq_ * hk_;
    float* dp = dprobs_.data() + Block(r.first);
    const int64_t blk = r.lq * r.lk;
    device_->GemmStridedBatched(false, true, r.lq, r.lk, hk_, 1.f, dce, hk_, tq_ * hk_,
                                mem + r.first * tk_ * hk_, hk_, tk_ * hk_, 0.f, dp, r.lk, blk,
                                r.count);
    if (dmemory != nullptr) {
      device_->GemmStridedBatched(true, false, r.lk, hk_, r.lq, 1.f, p, r.lk, blk, dce, hk_,
                                  tq_ * hk_, 0.f, dmemory->data() + r.first * tk_ * hk_, hk_,
                                  tk_ * hk_, r.count);
    }
    device_->SoftmaxBackward(r.count * r.lq, r.lk, p, dp, dscores_.data() + Block(r.first));
  }
  if (dmemory == nullptr) return;
  for (int64_t e = 0; e < n; ++e) {
    const int64_t valid = q.lengths[e] > 0 ? m.lengths[e] : 0;
    if (valid < tk_)
      device_->Fill((tk_ - valid) * hk_, 0.f, dmemory->data() + (e * tk_ + valid) * hk_);
  }
}

// --- dot ---

BlobDesc DotAttentionLayer::Setup(LayerSetup& s) {
  const bool scaled = s.attrs().Bool("scaled", false);
  if (!SetupInputs(s)) return {};
  if (hq_ != hk_) {
    s.Error("inputs", absl::StrCat("dot_attention needs queries and memory of the same width, got ",
                                   hq_, " and ", hk_,
                                   " (project one with an fc layer, or use additive_attention)"));
    return {};
  }
  scale_ = scaled ? 1.f / std::sqrt(static_cast<float>(hk_)) : 1.f;
  return {BlobKind::kSequence, Shape({tq_, hk_})};
}

void DotAttentionLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& q = *in[0];
  const Blob& m = *in[1];
  const int64_t n = q.batch();
  scores_.Resize(*device_, Shape({n * tq_ * tk_}));
  probs_.Resize(*device_, Shape({n * tq_ * tk_}));
  Plan(q, m);
  for (const Run& r : runs_) {
    device_->GemmStridedBatched(false, true, r.lq, r.lk, hk_, scale_,
                                q.value.data() + r.first * tq_ * hq_, hq_, tq_ * hq_,
                                m.value.data() + r.first * tk_ * hk_, hk_, tk_ * hk_, 0.f,
                                scores_.data() + Block(r.first), r.lk, r.lq * r.lk, r.count);
  }
  SoftmaxAndContext(q, m, out);
}

void DotAttentionLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                                 const StepContext&) {
  const Blob& q = *in[0];
  const Blob& m = *in[1];
  const int64_t n = q.batch();
  ContextBackward(q, m, out, in_grad[1]);
  for (const Run& r : runs_) {
    const float* ds = dscores_.data() + Block(r.first);
    const int64_t blk = r.lq * r.lk;
    if (in_grad[0] != nullptr) {
      device_->GemmStridedBatched(false, false, r.lq, hq_, r.lk, scale_, ds, r.lk, blk,
                                  m.value.data() + r.first * tk_ * hk_, hk_, tk_ * hk_, 0.f,
                                  in_grad[0]->data() + r.first * tq_ * hq_, hq_, tq_ * hq_,
                                  r.count);
    }
    if (in_grad[1] != nullptr) {
      device_->GemmStridedBatched(true, false, r.lk, hk_, r.lq, scale_, ds, r.lk, blk,
                                  q.value.data() + r.first * tq_ * hq_, hq_, tq_ * hq_, 1.f,
                                  in_grad[1]->data() + r.first * tk_ * hk_, hk_, tk_ * hk_,
                                  r.count);
    }
  }
  if (in_grad[0] == nullptr) return;
  for (int64_t e = 0; e < n; ++e) {
    const int64_t rows = m.lengths[e] > 0 ? q.lengths[e] : 0;
    if (rows < tq_)
      device_->Fill((tq_ - rows) * hq_, 0.f, in_grad[0]->data() + (e * tq_ + rows) * hq_);
  }
}

LayerExample DotAttentionLayer::GradCheckExample() {
  return {.attrs = {{"scaled", true}},
          .inputs = {{BlobKind::kSequence, Shape({3, 4})}, {BlobKind::kSequence, Shape({5, 4})}},
          .batch = 3};
}

// --- additive ---

BlobDesc AdditiveAttentionLayer::Setup(LayerSetup& s) {
  a_ = s.attrs().RequiredInt("size", 1, 1 << 16);
  if (!SetupInputs(s) || !s.ok()) return {};
  s.AddParam({.name = "query_weights", .shape = Shape({hq_, a_}), .init = ParamInit::kXavier,
              .fan_in = hq_, .fan_out = a_});
  s.AddParam({.name = "memory_weights", .shape = Shape({hk_, a_}), .init = ParamInit::kXavier,
              .fan_in = hk_, .fan_out = a_});
  s.AddParam({.name = "score_weights", .shape = Shape({a_}), .init = ParamInit::kXavier,
              .fan_in = a_, .fan_out = 1});
  return {BlobKind::kSequence, Shape({tq_, hk_})};
}

void AdditiveAttentionLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& q = *in[0];
  const Blob& m = *in[1];
  const int64_t n = q.batch();
  scores_.Resize(*device_, Shape({n * tq_ * tk_}));
  probs_.Resize(*device_, Shape({n * tq_ * tk_}));
  hidden_.Resize(*device_, Shape({n * tq_ * tk_, a_}));
  qw_.Resize(*device_, Shape({n * tq_, a_}));
  kw_.Resize(*device_, Shape({n * tk_, a_}));
  Plan(q, m);
  // Padded rows are projected too (one GEMM each); their results are never read.
  device_->Gemm(false, false, n * tq_, a_, hq_, 1.f, q.value.data(), hq_,
                params_[0]->value.data(), a_, 0.f, qw_.data(), a_);
  device_->Gemm(false, false, n * tk_, a_, hk_, 1.f, m.value.data(), hk_,
                params_[1]->value.data(), a_, 0.f, kw_.data(), a_);
  const float* v = params_[2]->value.data();
  const int64_t a = a_;
#pragma omp parallel for schedule(dynamic)
  for (int64_t e = 0; e < n; ++e) {
    const int64_t lq = q.lengths[e], lk = m.lengths[e];
    for (int64_t i = 0; i < lq; ++i) {
      const float* qi = qw_.data() + (e * tq_ + i) * a;
      for (int64_t j = 0; j < lk; ++j) {
        const float* kj = kw_.data() + (e * tk_ + j) * a;
        float* u = hidden_.data() + (Block(e) + i * lk + j) * a;
        float s = 0.f;
        for (int64_t k = 0; k < a; ++k) {
          u[k] = std::tanh(qi[k] + kj[k]);
          s += v[k] * u[k];
        }
        scores_.data()[Block(e) + i * lk + j] = s;
      }
    }
  }
  SoftmaxAndContext(q, m, out);
}

void AdditiveAttentionLayer::Backward(const LayerInputs& in, const Blob& out,
                                      const LayerGrads& in_grad, const StepContext&) {
  const Blob& q = *in[0];
  const Blob& m = *in[1];
  const int64_t n = q.batch();
  ContextBackward(q, m, out, in_grad[1]);
  dqw_.Resize(*device_, Shape({n * tq_, a_}));
  dkw_.Resize(*device_, Shape({n * tk_, a_}));
  device_->Fill(dqw_.size(), 0.f, dqw_.data());
  device_->Fill(dkw_.size(), 0.f, dkw_.data());
  const float* v = params_[2]->value.data();
  float* dv = params_[2]->grad.data();
  device_->Fill(a_, 0.f, dv);
  const int64_t a = a_;
  // Examples are independent (their dqw_/dkw_ rows are disjoint); dv is summed per thread.
#pragma omp parallel
  {
    std::vector<float> dv_local(static_cast<size_t>(a), 0.f);
#pragma omp for schedule(dynamic)
    for (int64_t e = 0; e < n; ++e) {
      const int64_t lq = q.lengths[e], lk = m.lengths[e];
      for (int64_t i = 0; i < lq; ++i) {
        float* dqi = dqw_.data() + (e * tq_ + i) * a;
        for (int64_t j = 0; j < lk; ++j) {
          const float g = dscores_.data()[Block(e) + i * lk + j];
          const float* u = hidden_.data() + (Block(e) + i * lk + j) * a;
          float* dkj = dkw_.data() + (e * tk_ + j) * a;
          for (int64_t k = 0; k < a; ++k) {
            dv_local[k] += g * u[k];
            const float du = g * v[k] * (1.f - u[k] * u[k]);
            dqi[k] += du;
            dkj[k] += du;
          }
        }
      }
    }
#pragma omp critical
    for (int64_t k = 0; k < a; ++k) dv[k] += dv_local[k];
  }
  device_->Gemm(true, false, hq_, a_, n * tq_, 1.f, q.value.data(), hq_, dqw_.data(), a_, 0.f,
                params_[0]->grad.data(), a_);
  device_->Gemm(true, false, hk_, a_, n * tk_, 1.f, m.value.data(), hk_, dkw_.data(), a_, 0.f,
                params_[1]->grad.data(), a_);
  if (in_grad[0] != nullptr) {
    // Padded query rows of dqw_ are zero, so their gradient is too.
    device_->Gemm(false, true, n * tq_, hq_, a_, 1.f, dqw_.data(), a_, params_[0]->value.data(),
                  a_, 0.f, in_grad[0]->data(), hq_);
  }
  if (in_grad[1] != nullptr) {
    device_->Gemm(false, true, n * tk_, hk_, a_, 1.f, dkw_.data(), a_, params_[1]->value.data(),
                  a_, 1.f, in_grad[1]->data(), hk_);
  }
}

LayerExample AdditiveAttentionLayer::GradCheckExample() {
  return {.attrs = {{"size", 3}},
          .inputs = {{BlobKind::kSequence, Shape({3, 2})}, {BlobKind::kSequence, Shape({4, 3})}},
          .batch = 3};
}

}  // namespace tandem::trainer
