#include "trainer/layers/lstm_layer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "trainer/layers/recurrent_cells.h"

namespace tandem::trainer {
namespace {

// dst [cols, rows] = src [rows, cols]^T, in 16 x 16 tiles.
void Transpose(int64_t rows, int64_t cols, const float* src, float* dst) {
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile)
      for (int64_t r = r0; r < std::min(rows, r0 + kTile); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + kTile); ++c)
          dst[c * rows + r] = src[r * cols + c];
}

}  // namespace

BlobDesc LstmLayer::Setup(LayerSetup& s) {
  h_ = s.attrs().RequiredInt("size", 1, 1 << 16);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kSequence}})) return {};
  if (!s.ok()) return {};
  steps_ = s.inputs()[0].shape.dim(0);
  in_ = s.inputs()[0].shape.dim(1);
  s.AddParam({.name = "input_weights", .shape = Shape({in_, 4 * h_}), .init = ParamInit::kXavier,
              .fan_in = in_, .fan_out = 4 * h_});
  s.AddParam({.name = "recurrent_weights", .shape = Shape({h_, 4 * h_}),
              .init = ParamInit::kXavier, .fan_in = h_, .fan_out = 4 * h_});
  s.AddParam({.name = "bias", .shape = Shape({4 * h_}), .init = ParamInit::kZero});
  return {BlobKind::kSequence, Shape({steps_, h_})};
}

void LstmLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& x = *in[0];
  const int64_t n = x.batch();
  pack_.Build(x.lengths, steps_);
  const int64_t cap = n * steps_;
  x_.Resize(*device_, Shape({cap, in_}));
  gates_.Resize(*device_, Shape({cap, 4 * h_}));
  c_.Resize(*device_, Shape({cap, h_}));
  hs_.Resize(*device_, Shape({cap, h_}));
  const int64_t total = pack_.total();
  pack_.Gather(x.value.data(), in_, x_.data());
  const float* wx = params_[0]->value.data();
  const float* wh = params_[1]->value.data();
  const float* b = params_[2]->value.data();
  float* g = gates_.data();
  device_->CopyRows(total, 4 * h_, b, 0, g, 4 * h_);  // g = bias, then g += x Wx
  device_->Gemm(false, false, total, 4 * h_, in_, 1.f, x_.data(), in_, wx, 4 * h_, 1.f, g, 4 * h_);
  const int64_t h4 = 4 * h_;
  for (int64_t t = 0; t < steps_; ++t) {
    const int64_t a = pack_.active(t), o = pack_.offset(t);
    if (a == 0) break;
    float* gt = g + o * h4;
    const int64_t op = t > 0 ? pack_.offset(t - 1) : 0;
    if (t > 0) device_->Gemm(false, false, a, h4, h_, 1.f, hs_.data() + op * h_, h_, wh, h4, 1.f, gt, h4);
#pragma omp parallel for schedule(static) if (a * h_ > 16384)
    for (int64_t r = 0; r < a; ++r) {
      LstmCellForward(h_, gt + r * h4, t > 0 ? c_.data() + (op + r) * h_ : nullptr,
                      c_.data() + (o + r) * h_, hs_.data() + (o + r) * h_);
    }
  }
  pack_.Scatter(hs_.data(), h_, out.value.data());
  out.lengths = x.lengths;
}

void LstmLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                         const StepContext&) {
  const Blob& x = *in[0];
  const int64_t n = x.batch();
  const int64_t cap = n * steps_;
  const int64_t h4 = 4 * h_;
  const int64_t total = pack_.total();
  dh_.Resize(*device_, Shape({cap, h_}));
  dgates_.Resize(*device_, Shape({cap, h4}));
  dc_.Resize(*device_, Shape({std::max<int64_t>(n, 1), h_}));
  pack_.Gather(out.grad.data(), h_, dh_.data());
  device_->Fill(dc_.size(), 0.f, dc_.data());
  const float* wx = params_[0]->value.data();
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
                       dc_.data() + r * h_, dgates_.data() + (o + r) * h4);
    }
    if (t > 0) {
      const float* dgt = dgates_.data() + o * h4;
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
    device_->Gemm(true, false, h_, h4, rows, 1.f, hprev, h_, dgates_.data() + a0 * h4, h4, 0.f,
                  dwh, h4);
  }
  device_->Gemm(true, false, in_, h4, total, 1.f, x_.data(), in_, dgates_.data(), h4, 0.f, dwx, h4);
  device_->BiasGrad(total, h4, dgates_.data(), db);
  if (in_grad[0] != nullptr) {
    dx_.Resize(*device_, Shape({cap, in_}));
    device_->Gemm(false, true, total, in_, h4, 1.f, dgates_.data(), h4, wx, h4, 0.f, dx_.data(), in_);
    pack_.Scatter(dx_.data(), in_, in_grad[0]->data());
  }
}

LayerExample LstmLayer::GradCheckExample() {
  return {.attrs = {{"size", 3}}, .inputs = {{BlobKind::kSequence, Shape({4, 2})}}, .batch = 3};
}

}  // namespace tandem::trainer
