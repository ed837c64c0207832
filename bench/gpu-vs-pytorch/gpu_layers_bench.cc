// Times forward + backward of a chain of GPU layers (built through the layer registry on the CUDA
// device, exactly as the network builds them) at a GPU-sized batch, and prints one JSON record:
//   gpu_layers_bench --model seed_cnn --batch 512 --precision bf16
// What is timed: every layer's Forward then every layer's Backward (input and parameter
// gradients), synchronised at the end of each step. NOT timed, because Tandem's engine does not
// run them on the GPU yet (docs/gpu.md): the cost layer, the optimizer update, the data feed.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "trainer/backend/cuda/cuda_device.h"
#include "trainer/backend/layer_chain.h"

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
  auto chain = LayerChain::Create(d, model.input, model.layers, batch);
  if (!chain.ok()) {
    std::fprintf(stderr, "gpu_layers_bench: %s\n", std::string(chain.status().message()).c_str());
    return 2;
  }
  LayerChain& c = **chain;
  c.InitParameters(1);
  d.Fill(c.input().value.size(), 0.5f, c.input().value.data());
  d.Fill(c.output().grad.size(), 1e-3f, c.output().grad.data());
  const double flops_forward = c.ForwardFlopsPerExample();
  const StepContext ctx{.training = true};
  auto step = [&] {
    c.Forward(ctx);
    c.Backward(ctx);
  };
  for (int s = 0; s < warmup; ++s) step();
  d.Synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) step();
  d.Synchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  // Forward per example x batch; backward = 2 x forward (data and weight gradients).
  const double flops_step = 3.0 * flops_forward * static_cast<double>(batch);
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
