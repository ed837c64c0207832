#include "trainer/layers/gru_layer.h"

#include <cmath>

#include "trainer/layers/recurrent_cells.h"

namespace tandem::trainer {

BlobDesc GruLayer::Setup(LayerSetup& s) {
  h_ = s.attrs().RequiredInt("size", 1, 1 << 16);
  if (!s.ExpectInputs(1, 1, {{BlobKind::kSequence}})) return {};
  if (!s.ok()) return {};
  steps_ = s.inputs()[0].shape.dim(0);
  in_ = s.inputs()[0].shape.dim(1);
  s.AddParam({.name = "input_weights", .shape = Shape({in_, 3 * h_}), .init = ParamInit::kXavier,
              .fan_in = in_, .fan_out = 3 * h_});
  s.AddParam({.name = "recurrent_weights", .shape = Shape({h_, 3 * h_}),
              .init = ParamInit::kXavier, .fan_in = h_, .fan_out = 3 * h_});
  s.AddParam({.name = "input_bias", .shape = Shape({3 * h_}), .init = ParamInit::kZero});
  s.AddParam({.name = "recurrent_bias", .shape = Shape({3 * h_}), .init = ParamInit::kZero});
  return {BlobKind::kSequence, Shape({steps_, h_})};
}

void GruLayer::Forward(const LayerInputs& in, Blob& out, const StepContext&) {
  const Blob& x = *in[0];
  const int64_t n = x.batch();
  const int64_t h3 = 3 * h_;
  pack_.Build(x.lengths, steps_);
  const int64_t cap = n * steps_;
  x_.Resize(*device_, Shape({cap, in_}));
  gx_.Resize(*device_, Shape({cap, h3}));
  gh_.Resize(*device_, Shape({cap, h3}));
  hs_.Resize(*device_, Shape({cap, h_}));
  const int64_t total = pack_.total();
  pack_.Gather(x.value.data(), in_, x_.data());
  const float* wx = params_[0]->value.data();
  const float* wh = params_[1]->value.data();
  const float* bx = params_[2]->value.data();
  const float* bh = params_[3]->value.data();
  for (int64_t r = 0; r < total; ++r) {
    device_->Copy(h3, bx, gx_.data() + r * h3);
    device_->Copy(h3, bh, gh_.data() + r * h3);
  }
  device_->Gemm(false, false, total, h3, in_, 1.f, x_.data(), in_, wx, h3, 1.f, gx_.data(), h3);
  for (int64_t t = 0; t < steps_; ++t) {
    const int64_t a = pack_.active(t), o = pack_.offset(t);
    if (a == 0) break;
    const int64_t op = t > 0 ? pack_.offset(t - 1) : 0;
    if (t > 0)
      device_->Gemm(false, false, a, h3, h_, 1.f, hs_.data() + op * h_, h_, wh, h3, 1.f,
                    gh_.data() + o * h3, h3);
    for (int64_t r = 0; r < a; ++r) {
      GruCellForward(h_, gx_.data() + (o + r) * h3, gh_.data() + (o + r) * h3,
                     t > 0 ? hs_.data() + (op + r) * h_ : nullptr, hs_.data() + (o + r) * h_);
    }
  }
  pack_.Scatter(hs_.data(), h_, out.value.data());
  out.lengths = x.lengths;
}

void GruLayer::Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                        const StepContext&) {
  const Blob& x = *in[0];
  const int64_t n = x.batch();
  const int64_t cap = n * steps_;
  const int64_t h3 = 3 * h_;
  const int64_t total = pack_.total();
  dh_.Resize(*device_, Shape({cap, h_}));
  dgx_.Resize(*device_, Shape({cap, h3}));
  dgh_.Resize(*device_, Shape({cap, h3}));
  pack_.Gather(out.grad.data(), h_, dh_.data());
  const float* wx = params_[0]->value.data();
  const float* wh = params_[1]->value.data();
  float* dwx = params_[0]->grad.data();
  float* dwh = params_[1]->grad.data();
  float* dbx = params_[2]->grad.data();
  float* dbh = params_[3]->grad.data();
  device_->Fill(h_ * h3, 0.f, dwh);
  for (int64_t t = steps_ - 1; t >= 0; --t) {
    const int64_t a = pack_.active(t), o = pack_.offset(t);
    if (a == 0) continue;
    const int64_t op = t > 0 ? pack_.offset(t - 1) : 0;
    for (int64_t r = 0; r < a; ++r) {
      const float* g = gx_.data() + (o + r) * h3;  // r, z, n after activation
      const float* gh = gh_.data() + (o + r) * h3;
      const float* hp = t > 0 ? hs_.data() + (op + r) * h_ : nullptr;
      const float* dh = dh_.data() + (o + r) * h_;
      float* dgx = dgx_.data() + (o + r) * h3;
      float* dgh = dgh_.data() + (o + r) * h3;
      float* dhp = t > 0 ? dh_.data() + (op + r) * h_ : nullptr;
      for (int64_t k = 0; k < h_; ++k) {
        const float rg = g[k], z = g[h_ + k], nn = g[2 * h_ + k];
        const float hprev = hp != nullptr ? hp[k] : 0.f;
        const float dn = dh[k] * (1.f - z);
        const float dz = dh[k] * (hprev - nn);
        const float dn_pre = dn * (1.f - nn * nn);
        const float dr_pre = dn_pre * gh[2 * h_ + k] * rg * (1.f - rg);
        const float dz_pre = dz * z * (1.f - z);
        dgx[k] = dr_pre;
        dgx[h_ + k] = dz_pre;
        dgx[2 * h_ + k] = dn_pre;
        dgh[k] = dr_pre;
        dgh[h_ + k] = dz_pre;
        dgh[2 * h_ + k] = dn_pre * rg;
        if (dhp != nullptr) dhp[k] += dh[k] * z;
      }
    }
    if (t > 0) {
      const float* dght = dgh_.data() + o * h3;
      device_->Gemm(false, true, a, h_, h3, 1.f, dght, h3, wh, h3, 1.f, dh_.data() + op * h_, h_);
      device_->Gemm(true, false, h_, h3, a, 1.f, hs_.data() + op * h_, h_, dght, h3, 1.f, dwh, h3);
    }
  }
  device_->Gemm(true, false, in_, h3, total, 1.f, x_.data(), in_, dgx_.data(), h3, 0.f, dwx, h3);
  device_->Fill(h3, 0.f, dbx);
  device_->Fill(h3, 0.f, dbh);
  for (int64_t r = 0; r < total; ++r) {
    device_->Axpy(h3, 1.f, dgx_.data() + r * h3, dbx);
    device_->Axpy(h3, 1.f, dgh_.data() + r * h3, dbh);
  }
  if (in_grad[0] != nullptr) {
    dx_.Resize(*device_, Shape({cap, in_}));
    device_->Gemm(false, true, total, in_, h3, 1.f, dgx_.data(), h3, wx, h3, 0.f, dx_.data(), in_);
    pack_.Scatter(dx_.data(), in_, in_grad[0]->data());
  }
}

LayerExample GruLayer::GradCheckExample() {
  return {.attrs = {{"size", 3}}, .inputs = {{BlobKind::kSequence, Shape({4, 2})}}, .batch = 3};
}

}  // namespace tandem::trainer
