// Server-side optimizers, applied per sparse row or per dense block. A parameter slice of n
// floats carries StateSlots() * n floats of optimizer state and an update count (for Adam's bias
// correction), all owned by the table that stores the slice.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "proto/pserver.pb.h"

namespace tandem::pserver {

// An OptimizerConfig with defaults resolved and values validated.
struct Optimizer {
  OptimizerConfig::Kind kind = OptimizerConfig::SGD;
  float learning_rate = 0.01f;
  float momentum = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  float weight_decay = 0.0f;
  float initial_accumulator = 0.0f;

  // Resolves defaults (beta1 0.9, beta2 0.999, epsilon 1e-8 for Adam and 1e-10 for Adagrad);
  // INVALID_ARGUMENT naming the field when a value is out of range.
  static absl::StatusOr<Optimizer> FromConfig(const OptimizerConfig& config);

  // State floats per parameter float: SGD 0, momentum 1, Adagrad 1, Adam 2.
  int StateSlots() const;

  // Sets a fresh slice's state (n * StateSlots() floats).
  void InitState(float* state, size_t n) const;

  // Applies `scale * grad` to `w` (n floats) with `state`. `count` is the slice's update count
  // before this update; the caller stores count + 1 afterwards.
  void Apply(float* w, float* state, const float* grad, size_t n, float scale,
             uint64_t count) const;
};

}  // namespace tandem::pserver
