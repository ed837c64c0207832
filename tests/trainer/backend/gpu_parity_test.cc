// CPU/GPU parity of every registered layer that runs on the GPU, found by iterating the registry
// (LayerRegistry::RunsOn): registering a layer as kAnyDevice adds its case here, as registering
// it adds its gradient check. Each case builds the layer's GradCheckExample twice, on the CPU
// device and on the CUDA device, feeds both the same parameters, inputs and output gradient, and
// compares the output and every gradient (inputs and parameters) by normalised mean squared
// error, NMSE = sum((gpu - cpu)^2) / sum(cpu^2) (the measure ggml's backend test uses):
//   fp32 (no TF32, FMA-only cuDNN): only summation order differs, relative error ~1e-6, so
//        NMSE ~1e-12; the bound 1e-8 leaves room for long sums and catches any wrong index
//        (a real error gives NMSE ~1).
//   bf16 compute (8-bit mantissa, fp32 accumulation): relative error ~4e-3 per product, NMSE
//        ~1e-5; the bound 1e-3 still catches real errors.
// Each example runs at its own batch and at a GPU-sized batch of 64. Without the CUDA backend or
// without a GPU every case reports Skipped with the reason.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/core/device.h"
#include "trainer/layers/layer_registry.h"

#ifdef TANDEM_HAVE_CUDA
#include "trainer/backend/cuda/cuda_device.h"
#endif

namespace tandem::trainer {
namespace {

std::vector<std::string> GpuLayerTypes() {
  std::vector<std::string> types;
  for (const std::string& t : LayerRegistry::Builtin().Types())
    if (LayerRegistry::Builtin().RunsOn(t, DeviceKind::kCuda)) types.push_back(t);
  return types;
}

#ifdef TANDEM_HAVE_CUDA
double Nmse(const std::vector<float>& ref, const std::vector<float>& got) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (static_cast<double>(got[i]) - ref[i]) * (static_cast<double>(got[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0 ? num / den : num;
}

// One layer instance on one device, with its own parameter, input and output tensors.
struct Instance {
  Device* device = nullptr;
  std::unique_ptr<Layer> layer;
  std::vector<Param> params;
  std::vector<Blob> inputs;
  std::vector<Tensor> in_grads;
  Blob out;

  std::vector<float> Read(const Tensor& t) const {
    std::vector<float> v(t.size());
    device->Download(t.size(), t.data(), v.data());
    return v;
  }
};

struct Values {  // what both instances are fed, drawn once
  std::vector<std::vector<float>> params, inputs;
  std::vector<std::vector<int32_t>> lengths;
  std::vector<float> out_grad;
};

void Build(const std::string& type, int64_t batch, Device& device, Values& values, Instance& inst) {
  const LayerExample& ex = LayerRegistry::Builtin().Example(type);
  inst.device = &device;
  inst.layer = *LayerRegistry::Builtin().Create(type);
  LayerConfig config{.name = type, .type = type, .attrs = ex.attrs};
  for (size_t i = 0; i < ex.inputs.size(); ++i) config.inputs.push_back(absl::StrCat("in", i));
  LayerSetup setup(config, ex.inputs);
  const BlobDesc out_desc = inst.layer->Setup(setup);
  ASSERT_TRUE(setup.ok()) << type << ": " << setup.attrs().errors()[0].ToString();
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  auto draw = [&](int64_t n, float scale) {
    std::vector<float> v(n);
    for (float& x : v) x = scale * normal(rng);
    return v;
  };
  const bool first = values.params.empty() && values.inputs.empty();
  inst.params.resize(setup.params().size());
  for (size_t k = 0; k < inst.params.size(); ++k) {
    Param& p = inst.params[k];
    p.desc = setup.params()[k];
    p.value.Resize(device, p.desc.shape);
    p.grad.Resize(device, p.desc.shape);
    if (first) values.params.push_back(draw(p.value.size(), 0.3f));
    device.Upload(p.value.size(), values.params[k].data(), p.value.data());
    inst.layer->params().push_back(&p);
  }
  ASSERT_TRUE(inst.layer->Init(device).ok()) << type;
  inst.inputs.resize(ex.inputs.size());
  inst.in_grads.resize(ex.inputs.size());
  for (size_t i = 0; i < ex.inputs.size(); ++i) {
    const BlobDesc& d = ex.inputs[i];
    ASSERT_TRUE(d.kind == BlobKind::kDense || d.kind == BlobKind::kSequence)
        << type << ": a GPU layer with a " << BlobKindName(d.kind)
        << " input needs an id upload here";
    Blob& b = inst.inputs[i];
    b.value.Resize(device, d.shape.WithBatch(batch));
    if (first) {
      values.inputs.push_back(draw(b.value.size(), 1.f));
      std::vector<int32_t> lengths;
      if (d.kind == BlobKind::kSequence)
        for (int64_t e = 0; e < batch; ++e)
          lengths.push_back(static_cast<int32_t>(std::max<int64_t>(1, d.shape.dim(0) - e)));
      values.lengths.push_back(lengths);
    }
    device.Upload(b.value.size(), values.inputs[i].data(), b.value.data());
    b.lengths = values.lengths[i];
    if (inst.layer->Differentiable(static_cast<int>(i))) inst.in_grads[i].Resize(device, b.value.shape());
  }
  inst.out.value.Resize(device, out_desc.shape.WithBatch(batch));
  inst.out.grad.Resize(device, inst.out.value.shape());
  if (first) values.out_grad = draw(inst.out.value.size(), 1.f);
  device.Upload(inst.out.grad.size(), values.out_grad.data(), inst.out.grad.data());
}

void ForwardBackward(Instance& inst) {
  LayerInputs in;
  LayerGrads grads;
  for (size_t i = 0; i < inst.inputs.size(); ++i) {
    in.push_back(&inst.inputs[i]);
    grads.push_back(inst.in_grads[i].empty() ? nullptr : &inst.in_grads[i]);
  }
  const StepContext ctx{.training = true, .step = 3, .seed = 5};
  inst.layer->Forward(in, inst.out, ctx);
  inst.layer->Backward(in, inst.out, grads, ctx);
}

#endif  // TANDEM_HAVE_CUDA

struct ParityCase {
  std::string type;
  bool bf16;
};

class GpuParityTest : public ::testing::TestWithParam<ParityCase> {};

TEST_P(GpuParityTest, ForwardAndBackwardMatchTheCpu) {
#ifndef TANDEM_HAVE_CUDA
  GTEST_SKIP() << "built without the CUDA backend (TANDEM_CUDA=OFF or no nvcc)";
#else
  const ParityCase& c = GetParam();
  auto gpu = CreateCudaDevice({.precision = c.bf16 ? Precision::kBf16 : Precision::kFp32});
  if (!gpu.ok()) GTEST_SKIP() << "no usable GPU: " << gpu.status().message();
  std::unique_ptr<Device> cpu = CreateCpuDevice({.threads = 1});
  const double bound = c.bf16 ? 1e-3 : 1e-8;
  for (int64_t batch : {LayerRegistry::Builtin().Example(c.type).batch, int64_t{64}}) {
    SCOPED_TRACE(absl::StrCat(c.type, " batch ", batch, c.bf16 ? " bf16" : " fp32"));
    Values values;
    Instance on_cpu, on_gpu;
    Build(c.type, batch, *cpu, values, on_cpu);
    Build(c.type, batch, **gpu, values, on_gpu);
    if (HasFatalFailure()) return;
    ForwardBackward(on_cpu);
    ForwardBackward(on_gpu);
    auto expect_close = [&](const std::string& what, const Tensor& ref, const Tensor& got) {
      const std::vector<float> r = on_cpu.Read(ref), g = on_gpu.Read(got);
      for (float x : g) ASSERT_TRUE(std::isfinite(x)) << what;
      EXPECT_LE(Nmse(r, g), bound) << what;
    };
    expect_close("output", on_cpu.out.value, on_gpu.out.value);
    for (size_t i = 0; i < on_cpu.in_grads.size(); ++i)
      if (!on_cpu.in_grads[i].empty())
        expect_close(absl::StrCat("d input ", i), on_cpu.in_grads[i], on_gpu.in_grads[i]);
    for (size_t k = 0; k < on_cpu.params.size(); ++k)
      expect_close(absl::StrCat("d ", on_cpu.params[k].desc.name), on_cpu.params[k].grad,
                   on_gpu.params[k].grad);
  }
#endif
}

std::vector<ParityCase> Cases() {
  std::vector<ParityCase> cases;
  for (const std::string& t : GpuLayerTypes()) {
    cases.push_back({t, false});
    cases.push_back({t, true});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(EveryGpuLayer, GpuParityTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<ParityCase>& info) {
                           return info.param.type + (info.param.bf16 ? "_bf16" : "_fp32");
                         });

// The registry must mark at least the seed CNN's layers as GPU layers, or the parity test above
// would silently test nothing.
TEST(GpuParityRegistryTest, TheSeedCnnLayersAreGpuLayers) {
  const std::vector<std::string> types = GpuLayerTypes();
  for (const char* t : {"conv2d", "max_pool", "relu", "fc", "softmax"})
    EXPECT_NE(std::find(types.begin(), types.end(), t), types.end()) << t;
}

}  // namespace
}  // namespace tandem::trainer
