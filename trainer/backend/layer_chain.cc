#include "trainer/backend/layer_chain.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

absl::StatusOr<std::unique_ptr<LayerChain>> LayerChain::Create(Device& device, const Shape& input,
                                                               std::vector<LayerConfig> layers,
                                                               int64_t batch) {
  const LayerRegistry& reg = LayerRegistry::Builtin();
  if (absl::Status s = reg.CheckRunsOn(device.kind(), layers); !s.ok()) return s;
  std::unique_ptr<LayerChain> chain(new LayerChain(device, batch));
  const size_t n = layers.size();
  chain->blobs_.resize(n + 1);
  BlobDesc desc{BlobKind::kDense, input};
  chain->blobs_[0].value.Resize(device, input.WithBatch(batch));
  std::vector<std::vector<size_t>> param_index(n);
  for (size_t i = 0; i < n; ++i) {
    LayerConfig& c = layers[i];
    c.inputs = {i == 0 ? std::string("input") : layers[i - 1].name};
    auto layer = reg.Create(c.type);
    if (!layer.ok()) return layer.status();
    LayerSetup setup(c, {desc});
    const BlobDesc out = (*layer)->Setup(setup);
    setup.attrs().CheckNoUnknownFields();
    if (!setup.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer '", c.name, "': ", setup.attrs().errors()[0].ToString()));
    }
    for (const ParamDesc& pd : setup.params()) {
      param_index[i].push_back(chain->params_.size());
      chain->params_.emplace_back().desc = pd;
      if (pd.name == "weights") {
        const int64_t out_per_weight_row = c.type == "fc" ? pd.shape.dim(1) : pd.shape.dim(0);
        chain->flops_per_example_ +=
            2.0 * pd.shape.NumElements() * out.shape.NumElements() / out_per_weight_row;
      }
    }
    chain->layers_.push_back(std::move(*layer));
    chain->blobs_[i + 1].value.Resize(device, out.shape.WithBatch(batch));
    chain->blobs_[i + 1].grad.Resize(device, out.shape.WithBatch(batch));
    if (i > 0) chain->blobs_[i].needs_grad = true;
    desc = out;
  }
  // Parameters live in one vector that no longer grows: layers may keep pointers into it now.
  for (size_t i = 0; i < n; ++i) {
    for (size_t k : param_index[i]) {
      Param& p = chain->params_[k];
      p.value.Resize(device, p.desc.shape);
      p.grad.Resize(device, p.desc.shape);
      chain->layers_[i]->params().push_back(&p);
    }
    TANDEM_RETURN_IF_ERROR(chain->layers_[i]->Init(device), "layer '", layers[i].name, "'");
  }
  return chain;
}

void LayerChain::InitParameters(uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (Param& p : params_) {
    std::vector<float> v(p.value.size(), 0.f);
    if (p.desc.init != ParamInit::kZero) {
      std::normal_distribution<float> d(0.f, std::sqrt(2.f / static_cast<float>(p.desc.fan_in)));
      for (float& x : v) x = d(rng);
    }
    device_.Upload(p.value.size(), v.data(), p.value.data());
  }
}

void LayerChain::Forward(const StepContext& ctx) {
  for (size_t i = 0; i < layers_.size(); ++i) layers_[i]->Forward({&blobs_[i]}, blobs_[i + 1], ctx);
}

void LayerChain::Backward(const StepContext& ctx) {
  for (size_t i = layers_.size(); i-- > 0;) {
    Tensor* dx = i == 0 ? nullptr : &blobs_[i].grad;
    layers_[i]->Backward({&blobs_[i]}, blobs_[i + 1], {dx}, ctx);
  }
}

void LayerChain::SgdUpdate(float learning_rate) {
  for (Param& p : params_) device_.Axpy(p.value.size(), -learning_rate, p.grad.data(), p.value.data());
}

}  // namespace tandem::trainer
