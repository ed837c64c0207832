#include "trainer/layers/lstm_layer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace tandem::trainer {
namespace {

inline float Sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

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
  for (int64_t r = 0; r < total; ++r) device_->Copy(4 * h_, b, g + r * 4 * h_);
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
      float* gr = gt + r * h4;
      float* cr = c_.data() + (o + r) * h_;
      float* hr = hs_.data() + (o + r) * h_;
      const float* cp = t > 0 ? c_.data() + (op + r) * h_ : nullptr;
      for (int64_t k = 0; k < h_; ++k) {
        const float i = Sigmoid(gr[k]), f = Sigmoid(gr[h_ + k]);
        const float gg = std::tanh(gr[2 * h_ + k]), og = Sigmoid(gr[3 * h_ + k]);
        gr[k] = i;
        gr[h_ + k] = f;
        gr[2 * h_ + k] = gg;
        gr[3 * h_ + k] = og;
        const float c = (cp != nullptr ? f * cp[k] : 0.f) + i * gg;
        cr[k] = c;
        hr[k] = og * std::tanh(c);
      }
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
  const float* wh = params_[1]->value.data();
  float* dwx = params_[0]->grad.data();
  float* dwh = params_[1]->grad.data();
  float* db = params_[2]->grad.data();
  device_->Fill(h_ * h4, 0.f, dwh);
  for (int64_t t = steps_ - 1; t >= 0; --t) {
    const int64_t a = pack_.active(t), o = pack_.offset(t);
    if (a == 0) continue;
    const int64_t op = t > 0 ? pack_.offset(t - 1) : 0;
#pragma omp parallel for schedule(static) if (a * h_ > 16384)
    for (int64_t r = 0; r < a; ++r) {
      const float* gr = gates_.data() + (o + r) * h4;
      float* dg = dgates_.data() + (o + r) * h4;
      const float* cr = c_.data() + (o + r) * h_;
      const float* cp = t > 0 ? c_.data() + (op + r) * h_ : nullptr;
      const float* dh = dh_.data() + (o + r) * h_;
      float* dc = dc_.data() + r * h_;
      for (int64_t k = 0; k < h_; ++k) {
        const float i = gr[k], f = gr[h_ + k], g = gr[2 * h_ + k], og = gr[3 * h_ + k];
        const float tc = std::tanh(cr[k]);
        const float dct = dh[k] * og * (1.f - tc * tc) + dc[k];
        dg[k] = dct * g * i * (1.f - i);
        dg[h_ + k] = cp != nullptr ? dct * cp[k] * f * (1.f - f) : 0.f;
        dg[2 * h_ + k] = dct * i * (1.f - g * g);
        dg[3 * h_ + k] = dh[k] * tc * og * (1.f - og);
        dc[k] = dct * f;
      }
    }
    if (t > 0) {
      const float* dgt = dgates_.data() + o * h4;
      device_->Gemm(false, true, a, h_, h4, 1.f, dgt, h4, wh, h4, 1.f, dh_.data() + op * h_, h_);
      device_->Gemm(true, false, h_, h4, a, 1.f, hs_.data() + op * h_, h_, dgt, h4, 1.f, dwh, h4);
    }
  }
  device_->Gemm(true, false, in_, h4, total, 1.f, x_.data(), in_, dgates_.data(), h4, 0.f, dwx, h4);
  device_->Fill(h4, 0.f, db);
  for (int64_t r = 0; r < total; ++r) device_->Axpy(h4, 1.f, dgates_.data() + r * h4, db);
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
