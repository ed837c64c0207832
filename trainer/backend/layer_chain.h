// A linear chain of registry layers on one device (layer i reads layer i-1's output), built the
// way the network builds layers: Setup, parameters, Init. Used to compare backends on the same
// model (the whole-model CPU/GPU test) and to time a backend (bench/gpu-vs-pytorch), without the
// engine, whose data feed, cost and optimizer still work on host memory (docs/gpu.md).
//
//   auto chain = LayerChain::Create(*gpu, Shape({1, 28, 28}), SeedCnnLayers(), /*batch=*/64);
//   chain->InitParameters(/*seed=*/1);                 // identical values on every device
//   device.Upload(n, host_images, chain->input().value.data());
//   chain->Forward(ctx); ... write chain->output().grad ...; chain->Backward(ctx);
//
// Dense inputs and outputs only (no ids). Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/core/device.h"
#include "trainer/layers/layer.h"

namespace tandem::trainer {

class LayerChain {
 public:
  // Fails (InvalidArgument naming the layer) when a layer's configuration is invalid, and when a
  // layer does not run on `device` (LayerRegistry::CheckRunsOn).
  static absl::StatusOr<std::unique_ptr<LayerChain>> Create(Device& device, const Shape& input,
                                                            std::vector<LayerConfig> layers,
                                                            int64_t batch);

  // Draws every parameter on the host from `seed` (He-style normal, stddev sqrt(2 / fan_in);
  // zero biases) and uploads it, so two chains on two devices start from the same values.
  void InitParameters(uint64_t seed);
  void Forward(const StepContext& ctx);
  // From output().grad: every parameter gradient and every inner blob's gradient.
  void Backward(const StepContext& ctx);
  // w -= lr * dw for every parameter, on the device.
  void SgdUpdate(float learning_rate);

  Blob& input() { return blobs_.front(); }
  Blob& output() { return blobs_.back(); }
  std::vector<Param>& params() { return params_; }
  int64_t batch() const { return batch_; }
  // 2 x multiply-adds of one example's forward pass through conv2d and fc layers.
  double ForwardFlopsPerExample() const { return flops_per_example_; }

 private:
  LayerChain(Device& device, int64_t batch) : device_(device), batch_(batch) {}
  Device& device_;
  int64_t batch_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Blob> blobs_;  // blobs_[0] the input, blobs_[i + 1] layer i's output
  std::vector<Param> params_;
  double flops_per_example_ = 0;
};

}  // namespace tandem::trainer
