#include "trainer/layers/lstm_layer.h"

#include <algorithm>
#include <cmath>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "absl/strings/str_cat.h"
#include "trainer/layers/recurrent_cells.h"

namespace tandem::trainer {
namespace {

void TransposeScalar(int64_t rows, int64_t cols, int64_t r_begin, int64_t c_begin,
                     const float* src, float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = (r < r_begin ? c_begin : 0); c < cols; ++c)
      dst[c * rows + r] = src[r * cols + c];
}

#if defined(__x86_64__) && defined(__GNUC__)
// 8 x 8 blocks through AVX registers (unpack, shuffle, permute), the rest element by element:
// the weights are transposed at every backward pass (they change every step), and the scalar
// loop took ~2 ns an element (0.3 ms of the attention model's step).
__attribute__((target("avx2"))) void TransposeAvx2(int64_t rows, int64_t cols, const float* src,
                                                    float* dst) {
  const int64_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
  for (int64_t c0 = 0; c0 < c8; c0 += 8) {
    for (int64_t r0 = 0; r0 < r8; r0 += 8) {
      const float* s = src + r0 * cols + c0;
      __m256 r[8], t[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * cols);
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
      }
      float* d = dst + c0 * rows + r0;
      for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(d + i * rows, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
        _mm256_storeu_ps(d + (i + 4) * rows, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
      }
    }
  }
  TransposeScalar(rows, cols, r8, c8, src, dst);
}
#endif

// dst [cols, rows] = src [rows, cols]^T.
void Transpose(int64_t rows, int64_t cols, const float* src, float* dst) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return TransposeAvx2(rows, cols, src, dst);
#endif
  TransposeScalar(rows, cols, 0, 0, src, dst);
}

}  // namespace

BlobDesc LstmLayer::Setup(LayerSetup& s) {
  h_ = s.attrs().RequiredInt("size", 1, 1 << 16);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kSequence}})) return {};
  if (!s.ok()) return {};
  steps_ = s.inputs()[0].shape.dim(0);
  in_ = s.inputs()[0].shape.dim(1);
  parts_.resize(1);
  parts_[0].width = in_;
  s.AddParam({.name = "input_weights", .shape = Shape({in_, 4 * h_}), .init = ParamInit::kXavier,
              .fan_in = in_, .fan_out = 4 * h_});
  s.AddParam({.name = "recurrent_weights", .shape = Shape({h_, 4 * h_}),
              .init = ParamInit::kXavier, .fan_in = h_, .fan_out = 4 * h_});
  s.AddParam({.name = "bias", .shape = Shape({4 * h_}), .init = ParamInit::kZero});
  return {BlobKind::kSequence, Shape({steps_, h_})};
}

bool LstmLayer::ReadConcatInputs(const std::vector<int64_t>& widths) {
  int64_t sum = 0;
  for (int64_t w : widths) sum += w;
  if (sum != in_) return false;
  parts_.clear();
  parts_.resize(widths.size());
  for (size_t k = 0; k < widths.size(); ++k) {
    parts_[k].width = widths[k];
    parts_[k].offset = k > 0 ? parts_[k - 1].offset + widths[k - 1] : 0;
  }
  return true;
}

bool LstmLayer::ReadRowClasses(int input, const RowClassSource& source) {
  if (input < 0 || input >= static_cast<int>(parts_.size()) || source.layer == nullptr)
    return false;
  parts_[input].source = source;
  return true;
}

bool LstmLayer::projected_distinct_rows() const {
  for (const Part& p : parts_)
    if (p.distinct) return true;
  return false;
}

void LstmLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& x0 = *in[0];
  const int64_t n = x0.batch();
  pack_.Build(x0.lengths, steps_);
  const int64_t cap = n * steps_;
  gates_.Resize(*device_, Shape({cap, 4 * h_}));
  c_.Resize(*device_, Shape({cap, h_}));
  hs_.Resize(*device_, Shape({cap, h_}));
  const int64_t total = pack_.total();
  const float* wx = params_[0]->value.data();
  const float* wh = params_[1]->value.data();
  const float* b = params_[2]->value.data();
  const int64_t h4 = 4 * h_;
  float* g = gates_.data();
  // The input projection, input by input: x_k Wx_k into gates_ (the first written, the others
  // added; each step's GEMM then adds h_{t-1} Wh), or, with few distinct rows, into xwu per
  // distinct row. The cell adds one such input's projection per row (cell_part_); any other is
  // added into gates_ row by row here.
  bool gates_term = false;
  cell_part_ = -1;
  for (size_t k = 0; k < parts_.size(); ++k) {
    Part& p = parts_[k];
    p.x.Resize(*device_, Shape({cap, p.width}));
    pack_.Gather(in[k]->value.data(), p.width, p.x.data());
    if (p.source.layer != nullptr) {
      // Rows grouped by the producer's classes; a row it leaves unclassed (its padding, zero)
      // gets one class of its own, numbered source_classes.
      p.source_classes = p.source.layer->RowClasses(*p.source.inputs, &p.row_class);
      pack_.PaddedRows(&padded_rows_);
      p.packed_class.resize(total);
      for (int64_t r = 0; r < total; ++r) {
        const int32_t c = p.row_class[padded_rows_[r]];
        p.packed_class[r] = c >= 0 ? c : static_cast<int32_t>(p.source_classes);
      }
      p.rows.FromClasses(total, p.packed_class.data(), p.source_classes + 1);
      p.distinct = project_distinct_ && p.rows.count() <= total / 2;
    } else {
      p.distinct = project_distinct_ &&
                   p.rows.Find(total, p.width, p.x.data(), total / 2, pack_.active(0) + 64);
    }
    if (p.distinct) continue;
    device_->Gemm(false, false, total, h4, p.width, 1.f, p.x.data(), p.width, wx + p.offset * h4,
                  h4, gates_term ? 1.f : 0.f, g, h4);
    gates_term = true;
  }
  for (size_t k = 0; k < parts_.size(); ++k) {
    Part& p = parts_[k];
    if (!p.distinct) continue;
    const int64_t u = p.rows.count();
    p.xu.Resize(*device_, Shape({u, p.width}));
    p.xwu.Resize(*device_, Shape({u, h4}));
    for (int64_t d = 0; d < u; ++d)
      device_->Copy(p.width, p.x.data() + p.rows.first()[d] * p.width, p.xu.data() + d * p.width);
    device_->Gemm(false, false, u, h4, p.width, 1.f, p.xu.data(), p.width, wx + p.offset * h4, h4,
                  0.f, p.xwu.data(), h4);
    if (cell_part_ < 0) {
      cell_part_ = static_cast<int>(k);
      continue;
    }
    const int32_t* index = p.rows.index().data();
    for (int64_t r = 0; r < total; ++r) {
      const float* src = p.xwu.data() + index[r] * h4;
      if (gates_term) {
        device_->Axpy(h4, 1.f, src, g + r * h4);
      } else {
        device_->Copy(h4, src, g + r * h4);
      }
    }
    gates_term = true;
  }
  const Part* cell = cell_part_ >= 0 ? &parts_[cell_part_] : nullptr;
  const int32_t* row_index = cell != nullptr ? cell->rows.index().data() : nullptr;
  for (int64_t t = 0; t < steps_; ++t) {
    const int64_t a = pack_.active(t), o = pack_.offset(t);
    if (a == 0) break;
    float* gt = g + o * h4;
    const int64_t op = t > 0 ? pack_.offset(t - 1) : 0;
    if (t > 0) {
      device_->Gemm(false, false, a, h4, h_, 1.f, hs_.data() + op * h_, h_, wh, h4,
                    gates_term ? 1.f : 0.f, gt, h4);
    }
#pragma omp parallel for schedule(static) if (a * h_ > 16384)
    for (int64_t r = 0; r < a; ++r) {
      const float* xw = cell != nullptr ? cell->xwu.data() + row_index[o + r] * h4 : nullptr;
      LstmCellForward(h_, xw, b, gt + r * h4, gates_term,
                      t > 0 ? c_.data() + (op + r) * h_ : nullptr, c_.data() + (o + r) * h_,
                      hs_.data() + (o + r) * h_);
    }
  }
  pack_.Scatter(hs_.data(), h_, out.value.data());
  out.lengths = x0.lengths;
}

void LstmLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                         const StepContext& ctx) {
  const int64_t n = in[0]->batch();
  const int64_t cap = n * steps_;
  const int64_t h4 = 4 * h_;
  const int64_t total = pack_.total();
  dh_.Resize(*device_, Shape({cap, h_}));
  dc_.Resize(*device_, Shape({std::max<int64_t>(n, 1), h_}));
  pack_.Gather(out.grad.data(), h_, dh_.data());
  device_->Fill(dc_.size(), 0.f, dc_.data());
  const float* wx = params_[0]->value.data();
  // The gate gradients overwrite the gate activations they are computed from (each step's cell
  // reads its rows once), so the backward pass streams through one [S, 4h] buffer, not two.
  float* dgates = gates_.data();
  // Wh^T [4h, h], so each step's dh += dgates_t Wh^T is a plain (NN) GEMM: oneDNN's sgemm runs
  // the transposed-B form of these small products at 60-80% of the plain one's speed (measured
  // on this machine's AVX-512 core: 81 vs 110 GFLOP/s at h = 128, 59 vs 95 at h = 64).
  wht_.Resize(*device_, Shape({h4, h_}));
  Transpose(h_, h4, params_[1]->value.data(), wht_.data());
  const float* wht = wht_.data();
  float* dwx = params_[0]->grad.data();
  float* dwh = params_[1]->grad.data();
  float* db = params_[2]->grad.data();
  for (int64_t t = steps_ - 1; t >= 0; --t) {
    const int64_t a = pack_.active(t), o = pack_.offset(t);
    if (a == 0) continue;
    const int64_t op = t > 0 ? pack_.offset(t - 1) : 0;
#pragma omp parallel for schedule(static) if (a * h_ > 16384)
    for (int64_t r = 0; r < a; ++r) {
      LstmCellBackward(h_, gates_.data() + (o + r) * h4, c_.data() + (o + r) * h_,
                       t > 0 ? c_.data() + (op + r) * h_ : nullptr, dh_.data() + (o + r) * h_,
                       dc_.data() + r * h_, dgates + (o + r) * h4);
    }
    if (t > 0) {
      const float* dgt = dgates + o * h4;
      device_->Gemm(false, false, a, h_, h4, 1.f, dgt, h4, wht, h_, 1.f, dh_.data() + op * h_, h_);
    }
  }
  // dWh = sum over t > 0 of h_{t-1}^T dgates_t: one GEMM over every step's rows (the rows of
  // dgates_ after step 0's) instead of one small accumulating GEMM per step. Row r of step t
  // pairs with row r of step t - 1; when every step has as many sequences as step 0 those rows
  // are hs_'s first total - a0 rows as they are, otherwise they are gathered.
  const int64_t a0 = pack_.active(0), rows = total - a0;
  if (rows <= 0) {
    device_->Fill(h_ * h4, 0.f, dwh);
  } else {
    const float* hprev = hs_.data();
    if (pack_.active(steps_ - 1) != a0) {
      hprev_.Resize(*device_, Shape({cap, h_}));
      for (int64_t t = 1; t < steps_ && pack_.active(t) > 0; ++t) {
        device_->CopyRows(pack_.active(t), h_, hs_.data() + pack_.offset(t - 1) * h_, h_,
                          hprev_.data() + (pack_.offset(t) - a0) * h_, h_);
      }
      hprev = hprev_.data();
    }
    device_->Gemm(true, false, h_, h4, rows, 1.f, hprev, h_, dgates + a0 * h4, h4, 0.f,
                  dwh, h4);
  }
  // dWx block by block; the bias gradient from the first distinct input's per-row sums (every
  // row is in exactly one of them), else from all rows.
  bool have_db = false;
  for (size_t k = 0; k < parts_.size(); ++k) {
    Part& p = parts_[k];
    float* dwxk = dwx + p.offset * h4;
    const int64_t u = p.rows.count();
    if (p.distinct || p.source.layer != nullptr) {
      // The gate gradients summed per distinct row.
      p.dgu.Resize(*device_, Shape({u, h4}));
      device_->Fill(p.dgu.size(), 0.f, p.dgu.data());
      const int32_t* row_index = p.rows.index().data();
      for (int64_t r = 0; r < total; ++r)
        device_->Axpy(h4, 1.f, dgates + r * h4, p.dgu.data() + row_index[r] * h4);
    }
    if (p.distinct) {
      // dWx_k = sum_r x_r^T dgates_r = sum_d xu_d^T (sum of dgates_r over the rows equal to xu_d).
      device_->Gemm(true, false, p.width, h4, u, 1.f, p.xu.data(), p.width, p.dgu.data(), h4, 0.f,
                    dwxk, h4);
      if (!have_db) device_->BiasGrad(u, h4, p.dgu.data(), db);
      have_db = true;
    } else {
      device_->Gemm(true, false, p.width, h4, total, 1.f, p.x.data(), p.width, dgates, h4, 0.f,
                    dwxk, h4);
    }
  }
  if (!have_db) device_->BiasGrad(total, h4, dgates, db);
  for (size_t k = 0; k < parts_.size(); ++k) {
    Part& p = parts_[k];
    const bool to_source = p.source.layer != nullptr;
    if (!to_source && in_grad[k] == nullptr) continue;
    // dx = dgates Wx^T against Wx transposed once (the plain GEMM form, as for dh above); for a
    // producer of repeated rows, (gate gradients summed per class) Wx^T: one row per class.
    p.wxt.Resize(*device_, Shape({h4, p.width}));
    Transpose(p.width, h4, wx + p.offset * h4, p.wxt.data());
    if (!to_source) {
      p.dx.Resize(*device_, Shape({cap, p.width}));
      device_->Gemm(false, false, total, p.width, h4, 1.f, dgates, h4, p.wxt.data(), p.width, 0.f,
                    p.dx.data(), p.width);
      pack_.Scatter(p.dx.data(), p.width, in_grad[k]->data());
      continue;
    }
    const int64_t u = p.rows.count();
    p.gu.Resize(*device_, Shape({u, p.width}));
    device_->Gemm(false, false, u, p.width, h4, 1.f, p.dgu.data(), h4, p.wxt.data(), p.width, 0.f,
                  p.gu.data(), p.width);
    // Drop the producer's padding class (its rows are constant zeros: no gradient goes back).
    send_classes_.clear();
    for (int64_t d = 0; d < u; ++d) {
      const int32_t c = p.rows.source_class()[d];
      if (c == p.source_classes) continue;
      if (static_cast<int64_t>(send_classes_.size()) != d) {
        device_->Copy(p.width, p.gu.data() + d * p.width,
                      p.gu.data() + send_classes_.size() * p.width);
      }
      send_classes_.push_back(c);
    }
    p.source.layer->BackwardFromClassSums(*p.source.inputs, *p.source.grads,
                                          static_cast<int64_t>(send_classes_.size()),
                                          send_classes_.data(), p.gu.data(), ctx);
  }
}

LayerExample LstmLayer::GradCheckExample() {
  // size 8 and 9 inputs: the weight transposes run 8 x 8 blocks and a remainder.
  return {.attrs = {{"size", 8}}, .inputs = {{BlobKind::kSequence, Shape({4, 9})}}, .batch = 3};
}

}  // namespace tandem::trainer
