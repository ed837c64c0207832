// Finite-difference gradient check of every registered layer, found by iterating the registry:
// registering a layer (with its GradCheckExample) adds its check here.
//
// For a layer with output y and a fixed random projection r, the scalar L = sum(r * y) has
// dL/dy = r. We run Backward with out.grad = r and compare each analytic gradient (dense inputs
// and parameters) with the central difference (L(x + h) - L(x - h)) / 2h.
//
// Tolerances: the layers compute in float32 (oneDNN has no double path), so the check accumulates
// L in double but each y carries a relative rounding error of about 1e-7 * (terms summed). With
// |y| <= ~10 and a few hundred outputs, L is off by <= ~1e-5; divided by 2h = 1e-2 that is
// <= 1e-3 of noise, while the truncation error of the central difference is O(h^2 * f''') ~ 1e-5
// for these smooth functions. So |analytic - numeric| <= 5e-3 + 2e-2 * |numeric| catches any real
// error (a wrong sign, index or missing term is off by O(1)) without flaking on rounding.
// Kinks (relu at 0, max-pool ties) are kept out of reach of +-h: inputs are distinct values on a
// grid of spacing 0.02 (> 2h), shuffled, and never closer to 0 than 0.01.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/core/device.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {
namespace {

constexpr double kStep = 5e-3;
constexpr double kAbsTol = 5e-3;
constexpr double kRelTol = 2e-2;

struct Harness {
  std::unique_ptr<Device> device = CreateCpuDevice({.threads = 1});
  std::unique_ptr<Layer> layer;
  std::vector<Blob> inputs;
  std::vector<Param> params;
  Blob out;
  BlobDesc out_desc;
  std::vector<float> r;  // projection
  StepContext ctx{.training = true, .step = 7, .seed = 3};
  std::mt19937 rng{42};

  // Distinct grid values in [-2, 2] with |v| >= 0.01, shuffled.
  std::vector<float> GridValues(int64_t n) {
    std::vector<float> v;
    for (int k = 0; v.size() < static_cast<size_t>(n); ++k) {
      const float base = -2.f + 0.01f + 0.02f * static_cast<float>(k % 200);
      v.push_back(base + 0.001f * static_cast<float>(k / 200));
    }
    std::shuffle(v.begin(), v.end(), rng);
    return v;
  }

  void Fill(Tensor& t) {
    auto v = GridValues(t.size());
    std::copy(v.begin(), v.end(), t.data());
  }

  void Build(const std::string& type) {
    const LayerExample& ex = LayerRegistry::Builtin().Example(type);
    layer = *LayerRegistry::Builtin().Create(type);
    LayerConfig config;
    config.name = type;
    config.type = type;
    config.attrs = ex.attrs;
    for (size_t i = 0; i < ex.inputs.size(); ++i) config.inputs.push_back(absl::StrCat("in", i));
    LayerSetup setup(config, ex.inputs);
    out_desc = layer->Setup(setup);
    setup.attrs().CheckNoUnknownFields();
    ASSERT_TRUE(setup.ok()) << type << ": " << setup.attrs().errors()[0].ToString();
    params.resize(setup.params().size());
    for (size_t k = 0; k < params.size(); ++k) {
      params[k].desc = setup.params()[k];
      params[k].value.Resize(*device, params[k].desc.shape);
      if (!params[k].desc.sparse) params[k].grad.Resize(*device, params[k].desc.shape);
      Fill(params[k].value);
      // Scale parameters down so activations stay in the smooth range.
      for (int64_t i = 0; i < params[k].value.size(); ++i) params[k].value.data()[i] *= 0.3f;
      if (params[k].desc.sparse) params[k].row_slot.assign(params[k].desc.shape.dim(0), -1);
      layer->params().push_back(&params[k]);
    }
    ASSERT_TRUE(layer->Init(*device).ok());
    const int64_t n = ex.batch;
    inputs.resize(ex.inputs.size());
    std::uniform_int_distribution<int> id(0, std::max<int>(1, static_cast<int>(ex.vocab)) - 1);
    for (size_t i = 0; i < ex.inputs.size(); ++i) {
      const BlobDesc& d = ex.inputs[i];
      Blob& b = inputs[i];
      switch (d.kind) {
        case BlobKind::kDense:
          b.value.Resize(*device, d.shape.WithBatch(n));
          Fill(b.value);
          break;
        case BlobKind::kSequence:
          b.value.Resize(*device, d.shape.WithBatch(n));
          Fill(b.value);
          for (int64_t e = 0; e < n; ++e)  // full, one short, ..., at least 1
            b.lengths.push_back(static_cast<int32_t>(std::max<int64_t>(1, d.shape.dim(0) - e)));
          break;
        case BlobKind::kLabel:
          for (int64_t e = 0; e < n; ++e) b.ids.push_back(id(rng));
          break;
        case BlobKind::kSequenceIds:
          for (int64_t e = 0; e < n * d.shape.dim(0); ++e) b.ids.push_back(id(rng));
          for (int64_t e = 0; e < n; ++e)
            b.lengths.push_back(static_cast<int32_t>(std::max<int64_t>(1, d.shape.dim(0) - e)));
          break;
        case BlobKind::kIds: {
          b.offsets.push_back(0);
          for (int64_t e = 0; e < n * d.shape.dim(0); ++e) {
            const int count = static_cast<int>(e % 3);  // 0, 1 or 2 ids per field
            for (int c = 0; c < count; ++c) b.ids.push_back(id(rng));
            b.offsets.push_back(static_cast<int32_t>(b.ids.size()));
          }
          break;
        }
      }
    }
    out.value.Resize(*device, out_desc.shape.WithBatch(n));
    out.grad.Resize(*device, out.value.shape());
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    r.resize(out.value.size());
    for (float& x : r) x = u(rng);
  }

  LayerInputs In() {
    LayerInputs in;
    for (Blob& b : inputs) in.push_back(&b);
    return in;
  }

  // L = sum(r * y) over valid outputs (sequence padding excluded).
  double Objective() {
    layer->Forward(In(), out, ctx);
    double l = 0;
    const int64_t n = out.value.shape().dim(0);
    const int64_t per = out.value.size() / n;
    for (int64_t e = 0; e < n; ++e) {
      int64_t valid = per;
      if (out_desc.kind == BlobKind::kSequence)
        valid = static_cast<int64_t>(out.lengths.at(e)) * out_desc.shape.dim(1);
      for (int64_t i = 0; i < valid; ++i) l += static_cast<double>(r[e * per + i]) * out.value.data()[e * per + i];
    }
    return l;
  }

  void MaskProjection() {
    if (out_desc.kind != BlobKind::kSequence) return;
    const int64_t n = out.value.shape().dim(0);
    const int64_t per = out.value.size() / n;
    for (int64_t e = 0; e < n; ++e)
      for (int64_t i = static_cast<int64_t>(out.lengths[e]) * out_desc.shape.dim(1); i < per; ++i)
        r[e * per + i] = 0.f;
  }

  // Compares analytic and numeric gradients of `values` (n floats).
  void Compare(const std::string& what, float* values, const float* analytic, int64_t n,
               const std::vector<bool>* skip = nullptr) {
    int failures = 0;
    for (int64_t i = 0; i < n && failures < 5; ++i) {
      if (skip != nullptr && (*skip)[i]) continue;
      const float saved = values[i];
      values[i] = static_cast<float>(saved + kStep);
      const double lp = Objective();
      values[i] = static_cast<float>(saved - kStep);
      const double lm = Objective();
      values[i] = saved;
      const double numeric = (lp - lm) / (2 * kStep);
      const double a = analytic[i];
      if (std::abs(a - numeric) > kAbsTol + kRelTol * std::abs(numeric)) {
        ADD_FAILURE() << what << "[" << i << "]: analytic " << a << " vs numeric " << numeric;
        ++failures;
      }
    }
  }
};

TEST(GradientCheckTest, EveryRegisteredLayer) {
  const std::vector<std::string> types = LayerRegistry::Builtin().Types();
  ASSERT_GE(types.size(), 9u);
  for (const std::string& type : types) {
    SCOPED_TRACE("layer type " + type);
    Harness h;
    h.Build(type);
    if (HasFatalFailure()) return;
    h.Objective();
    h.MaskProjection();
    std::copy(h.r.begin(), h.r.end(), h.out.grad.data());
    // Analytic gradients.
    std::vector<std::unique_ptr<Tensor>> in_grads;
    LayerGrads slots;
    for (size_t i = 0; i < h.inputs.size(); ++i) {
      const bool dense = h.inputs[i].value.size() > 0 && h.layer->Differentiable(static_cast<int>(i));
      in_grads.push_back(std::make_unique<Tensor>());
      if (dense) in_grads.back()->Resize(*h.device, h.inputs[i].value.shape());
      slots.push_back(dense ? in_grads.back().get() : nullptr);
    }
    h.layer->Backward(h.In(), h.out, slots, h.ctx);
    std::vector<std::vector<float>> analytic_in, analytic_param;
    for (auto& g : in_grads) analytic_in.emplace_back(g->data(), g->data() + g->size());
    for (Param& p : h.params) {
      if (p.desc.sparse) {
        // Sparse gradients are compact rows, one per touched table row (zero elsewhere).
        std::vector<float> dense(p.value.size(), 0.f);
        const int64_t cols = p.value.size() / p.desc.shape.dim(0);
        for (size_t k = 0; k < p.touched_rows.size(); ++k)
          std::copy(p.grad.data() + k * cols, p.grad.data() + (k + 1) * cols,
                    dense.begin() + p.touched_rows[k] * cols);
        analytic_param.push_back(dense);
      } else {
        analytic_param.emplace_back(p.grad.data(), p.grad.data() + p.grad.size());
      }
    }
    int checked = 0;
    for (size_t i = 0; i < h.inputs.size(); ++i) {
      if (slots[i] == nullptr) continue;
      h.Compare(absl::StrCat(type, " input ", i), h.inputs[i].value.data(), analytic_in[i].data(),
                h.inputs[i].value.size());
      ++checked;
    }
    for (size_t k = 0; k < h.params.size(); ++k) {
      if (!h.params[k].desc.trainable) continue;
      h.Compare(absl::StrCat(type, " param ", h.params[k].desc.name), h.params[k].value.data(),
                analytic_param[k].data(), h.params[k].value.size());
      ++checked;
    }
    EXPECT_GT(checked, 0) << type << " has nothing to check: give its example a dense input";
  }
}

}  // namespace
}  // namespace tandem::trainer
