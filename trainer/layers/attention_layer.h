// Attention over a padded memory sequence, masked by its lengths (Luong et al. 2015, "global
// attention"; Bahdanau et al. 2014's additive score).
//
//   dot_attention:      score(q_i, k_j) = scale * q_i . k_j          (kAnyDevice: device ops only)
//   additive_attention: score(q_i, k_j) = v . tanh(q_i Wq + k_j Wk)  (host loops)
//
// Inputs: queries (sequence [Tq, Hq]: e.g. the decoder's states, teacher-forced in training) and
// memory (sequence [Tk, Hk]: e.g. the encoder's states). Output: sequence [Tq, Hk], the context
// c_i = sum_j softmax_j(score(q_i, k_j)) k_j over the memory's valid steps j < memory length only
// (padding gets exactly zero weight: it is never in the softmax), with the queries' lengths; zero
// at padded query steps. A memory of length 0 gives a zero context.
// dot_attention attributes: scaled (default false: scale 1; true: 1/sqrt(H)). REQUIRES Hq == Hk.
// additive_attention attributes: size (required, the score's hidden width A). Parameters:
// query_weights [Hq, A], memory_weights [Hk, A] (Xavier), score_weights [A] (Xavier).
// Work per example: scores and context are two GEMMs over only the valid block [lq, lk] (no
// masking arithmetic, no padded rows); the additive score adds lq * lk * A tanh terms.
// Consecutive examples of equal lengths (every example, when the batch is full length or
// bucketed to one length) share one strided batched GEMM per product and one softmax call.
#pragma once

#include <vector>

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

// What both scores share: shapes, the per-example valid blocks, softmax and the context GEMMs.
class AttentionBase : public Layer {
 protected:
  // Checks the two sequence inputs and records their shapes; false on error.
  bool SetupInputs(LayerSetup& s);
  // Per example n: where its [lq, lk] score block starts in a [N * Tq * Tk] buffer. The blocks
  // are packed (each lq * lk after the one before), so a run of examples with equal lengths is one
  // contiguous [count * lq, lk] matrix: one softmax and one batched GEMM per product for the run.
  int64_t Block(int64_t n) const { return block_[n]; }
  // Consecutive examples [first, first + count) with the same lengths lq, lk > 0.
  struct Run {
    int64_t first, count, lq, lk;
  };
  // Fills block_ and runs_ from the batch's lengths (in Forward; Backward reuses them).
  void Plan(const Blob& q, const Blob& m);
  // probs_ = softmax(scores_) per valid block, then out = probs * memory (zero elsewhere).
  void SoftmaxAndContext(const Blob& q, const Blob& m, Blob& out);
  // From out.grad: dmemory = probs^T dc (overwritten, when wanted) and dscores_ (per block).
  void ContextBackward(const Blob& q, const Blob& m, const Blob& out, Tensor* dmemory);

  int64_t tq_ = 0, tk_ = 0, hq_ = 0, hk_ = 0;
  std::vector<int64_t> block_;
  std::vector<Run> runs_;
  Tensor scores_, probs_, dprobs_, dscores_;
};

class DotAttentionLayer final : public AttentionBase {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  float scale_ = 1.f;
};

class AdditiveAttentionLayer final : public AttentionBase {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  static LayerExample GradCheckExample();

 private:
  int64_t a_ = 0;
  // qw_ = queries Wq [N*Tq, A], kw_ = memory Wk [N*Tk, A]; hidden_ = tanh(qw_i + kw_j) per valid
  // (n, i, j) at (Block(n) + i * lk + j) * A.
  Tensor qw_, kw_, hidden_, dqw_, dkw_, dtmp_;
};

}  // namespace tandem::trainer
