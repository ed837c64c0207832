// Times forward + backward of a chain of GPU layers (built through the layer registry on the CUDA
// device, exactly as the network builds them) at a GPU-sized batch, and prints one JSON record:
//   gpu_layers_bench --model seed_cnn --batch 512 --precision bf16
// What is timed: every layer's Forward then every layer's Backward (input and parameter
// gradients), synchronised at the end of each step. NOT timed, because Tandem's engine does not
// run them on the GPU yet (docs/gpu.md): the cost layer, the optimizer update, the data feed.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "trainer/backend/cuda/cuda_device.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {
namespace {

struct Model {
  Shape input;
  std::vector<LayerConfig> layers;  // a chain: each layer reads the previous one's output
};

LayerConfig L(const std::string& name, const std::string& type, nlohmann::json attrs = {}) {
  return {.name = name, .type = type, .attrs = attrs.is_null() ? nlohmann::json::object() : attrs};
}

Model SeedCnn() {  // examples/fashion-mnist-cnn.yaml without its cost layer
  return {Shape({1, 28, 28}),
          {L("conv1", "conv2d", {{"numFilters", 32}, {"filterSize", 5}, {"padding", 2}}),
           L("relu1", "relu"), L("pool1", "max_pool", {{"poolSize", 2}}),
           L("conv2", "conv2d", {{"numFilters", 64}, {"filterSize", 5}, {"padding", 2}}),
           L("relu2", "relu"), L("pool2", "max_pool", {{"poolSize", 2}}),
           L("fc1", "fc", {{"size", 1024}}), L("relu3", "relu"), L("fc2", "fc", {{"size", 10}})}};
}

// A wider CNN on 3x32x32: 3x3 convolutions of 64/128/256 channels, two per stage. Tandem has no
// residual-add layer yet, so this is the ResNet-style stack without its skip connections.
Model WideCnn() {
  Model m{Shape({3, 32, 32}), {}};
  int i = 0;
  for (int c : {64, 128, 256}) {
    for (int k = 0; k < 2; ++k) {
      const std::string n = absl::StrCat(++i);
      m.layers.push_back(
          L("conv" + n, "conv2d", {{"numFilters", c}, {"filterSize", 3}, {"padding", 1}}));
      m.layers.push_back(L("relu" + n, "relu"));
    }
    m.layers.push_back(L(absl::StrCat("pool", c), "max_pool", {{"poolSize", 2}}));
  }
  m.layers.push_back(L("fc1", "fc", {{"size", 10}}));
  return m;
}

int Main(int argc, char** argv) {
  CLI::App app("forward+backward of a GPU layer chain on Tandem's CUDA device");
  std::string model_name = "seed_cnn", precision = "bf16";
  int64_t batch = 512;
  int steps = 50, warmup = 5;
  app.add_option("--model", model_name, "seed_cnn | wide_cnn");
  app.add_option("--batch", batch);
  app.add_option("--steps", steps);
  app.add_option("--warmup", warmup);
  app.add_option("--precision", precision, "fp32 | bf16");
  CLI11_PARSE(app, argc, argv);
  const Model model = model_name == "wide_cnn" ? WideCnn() : SeedCnn();

  auto dev = CreateCudaDevice({.precision = precision == "fp32" ? Precision::kFp32 : Precision::kBf16});
  if (!dev.ok()) {
    std::fprintf(stderr, "gpu_layers_bench: %s\n", std::string(dev.status().message()).c_str());
    return 2;
  }
  Device& d = **dev;
  const LayerRegistry& reg = LayerRegistry::Builtin();
  if (absl::Status s = reg.CheckRunsOn(DeviceKind::kCuda, model.layers); !s.ok()) {
    std::fprintf(stderr, "gpu_layers_bench: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  const size_t n = model.layers.size();
  std::vector<std::unique_ptr<Layer>> layers;
  std::vector<std::vector<Param>> params(n);
  std::vector<Blob> blobs(n + 1);  // blobs[0] the input, blobs[i+1] layer i's output
  BlobDesc desc{BlobKind::kDense, model.input};
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.f, 0.05f);
  double flops_forward = 0;  // multiply-adds x 2 of the convolutions and fc layers
  blobs[0].value.Resize(d, desc.shape.WithBatch(batch));
  for (size_t i = 0; i < n; ++i) {
    LayerConfig c = model.layers[i];
    c.inputs = {i == 0 ? "input" : model.layers[i - 1].name};
    layers.push_back(*reg.Create(c.type));
    LayerSetup setup(c, {desc});
    const BlobDesc out = layers[i]->Setup(setup);
    if (!setup.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name.c_str(), setup.attrs().errors()[0].ToString().c_str());
      return 2;
    }
    params[i].resize(setup.params().size());
    for (size_t k = 0; k < params[i].size(); ++k) {
      Param& p = params[i][k];
      p.desc = setup.params()[k];
      p.value.Resize(d, p.desc.shape);
      p.grad.Resize(d, p.desc.shape);
      std::vector<float> v(p.value.size());
      for (float& x : v) x = normal(rng);
      d.Upload(v.size(), v.data(), p.value.data());
      layers[i]->params().push_back(&p);
      if (p.desc.name == "weights") flops_forward += 2.0 * p.value.size() * out.shape.NumElements() /
                                                     (c.type == "fc" ? p.desc.shape.dim(1) : p.desc.shape.dim(0));
    }
    if (absl::Status s = layers[i]->Init(d); !s.ok()) return 2;
    blobs[i + 1].value.Resize(d, out.shape.WithBatch(batch));
    blobs[i + 1].grad.Resize(d, blobs[i + 1].value.shape());
    desc = out;
  }
  blobs[0].grad.Resize(d, blobs[0].value.shape());
  d.Fill(blobs[0].value.size(), 0.5f, blobs[0].value.data());
  d.Fill(blobs[n].grad.size(), 1e-3f, blobs[n].grad.data());
  const StepContext ctx{.training = true};
  auto step = [&] {
    for (size_t i = 0; i < n; ++i) layers[i]->Forward({&blobs[i]}, blobs[i + 1], ctx);
    for (size_t i = n; i-- > 0;) {
      Tensor* dx = i == 0 ? nullptr : &blobs[i].grad;
      layers[i]->Backward({&blobs[i]}, blobs[i + 1], {dx}, ctx);
    }
  };
  for (int s = 0; s < warmup; ++s) step();
  d.Synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) step();
  d.Synchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  // forward per example x batch, backward = 2 x forward (data and weight gradients).
  const double flops_step = 3.0 * flops_forward * batch;
  std::printf(
      "{\"system\": \"tandem\", \"model\": \"%s\", \"timed\": \"layers forward+backward\", "
      "\"precision\": \"%s\", \"batch\": %lld, \"steps\": %d, \"examples_per_s\": %.1f, "
      "\"tflops\": %.2f, \"device_mem_used_mib\": %.0f, \"device\": \"%s\"}\n",
      model_name.c_str(), precision.c_str(), static_cast<long long>(batch), steps,
      steps * batch / secs, flops_step * steps / secs / 1e12,
      static_cast<double>(total_b - free_b) / (1 << 20), d.Describe().c_str());
  return 0;
}

}  // namespace
}  // namespace tandem::trainer

int main(int argc, char** argv) { return tandem::trainer::Main(argc, argv); }
