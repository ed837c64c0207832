// Layers by type name. The one list of every built-in layer is RegisterBuiltinLayers() in
// layer_registry.cc (explicit registration: static initialisers can be dropped by the linker).
//
//   const LayerRegistry& r = LayerRegistry::Builtin();
//   absl::StatusOr<std::unique_ptr<Layer>> layer = r.Create("conv2d");
//
// Each entry also carries a small example configuration that the gradient check
// (tests/trainer/layers/gradient_check_test.cc) instantiates, so registering a layer adds its check.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/layers/layer.h"

namespace tandem::trainer {

// A small instance of a layer for the gradient check.
struct LayerExample {
  nlohmann::json attrs = nlohmann::json::object();
  std::vector<BlobDesc> inputs;
  int64_t batch = 3;
  int64_t vocab = 0;  // for id inputs: ids drawn in [0, vocab); labels in [0, vocab)
};

// Where a layer's Forward and Backward can run. kAnyDevice: they touch tensor memory only through
// trainer/core/device.h, so every backend runs them (and the CPU/GPU parity test covers them).
// kHostOnly: they loop over tensor memory on the host, so only the CPU device runs them.
enum class LayerDevices { kHostOnly, kAnyDevice };

class LayerRegistry {
 public:
  using Factory = std::function<std::unique_ptr<Layer>()>;

  // Registers type T under `type`; T provides a default constructor and
  // `static LayerExample GradCheckExample()`.
  template <typename T>
  void Add(const std::string& type, LayerDevices devices = LayerDevices::kHostOnly) {
    Add(type, [] { return std::make_unique<T>(); }, T::GradCheckExample(), devices);
  }
  void Add(const std::string& type, Factory factory, LayerExample example,
           LayerDevices devices = LayerDevices::kHostOnly);

  // Whether layers of `type` run on a device of `kind`. REQUIRES: Has(type).
  bool RunsOn(const std::string& type, DeviceKind kind) const;
  // OK when every layer runs on `kind`; otherwise InvalidArgument naming the first layer that does
  // not: "layer 'bn1' (batch_norm) has no GPU path (GPU layers: ...)". Unknown types are left to
  // Create's error.
  absl::Status CheckRunsOn(DeviceKind kind, const std::vector<LayerConfig>& layers) const;

  // Unknown types: InvalidArgument "unknown layer type "x" (known: a, b, ...)".
  absl::StatusOr<std::unique_ptr<Layer>> Create(const std::string& type) const;
  bool Has(const std::string& type) const { return entries_.count(type) > 0; }
  std::vector<std::string> Types() const;
  const LayerExample& Example(const std::string& type) const;

  // The registry with every built-in layer.
  static const LayerRegistry& Builtin();

 private:
  struct Entry {
    Factory factory;
    LayerExample example;
    LayerDevices devices = LayerDevices::kHostOnly;
  };
  std::map<std::string, Entry> entries_;
};

void RegisterBuiltinLayers(LayerRegistry& r);

}  // namespace tandem::trainer
