// How much memory a trainer needs at least for a model: parameters, optimizer state, dense
// gradients and one batch's activations with their gradients, from the checked graph alone (no
// device touched), so that validation can refuse a model that cannot fit the trainer's memory
// request before any pod starts.
//
//   MemoryEstimate m = EstimateTrainerMemory(graph, optimizer.type, /*batch_size=*/64);
//   if (m.total_bytes() > request_bytes) errors.push_back({"spec.trainer.resources...", m.Explain()});
//
// A LOWER BOUND by construction: it counts only buffers the engine must hold at once (each
// parameter's values; for trainable dense parameters their gradient and the optimizer's slots;
// every layer's output and its gradient for `batch_size` examples; the input batch). It leaves out
// what depends on the data or the kernels (touched embedding rows' gradients, oneDNN scratch
// space, data-loader prefetch, the process's own code and heap), so refusing a model whose
// estimate exceeds the request never refuses one that would fit. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "trainer/model/model_graph.h"
#include "trainer/optim/optimizer_config.h"

namespace tandem::trainer {

struct MemoryEstimate {
  int64_t parameter_bytes = 0;        // every parameter's values (float32)
  int64_t gradient_bytes = 0;         // trainable dense parameters' gradients
  int64_t optimizer_state_bytes = 0;  // slots per trainable parameter (momentum 1, Adam 2, ...)
  int64_t activation_bytes = 0;       // inputs, layer outputs and their gradients for one batch
  int64_t total_bytes() const {
    return parameter_bytes + gradient_bytes + optimizer_state_bytes + activation_bytes;
  }
  // "at least 3.2 GiB: parameters 1.1 GiB, gradients 1.1 GiB, optimizer state 0 B (sgd),
  //  activations 12.5 MiB (batch 64)"
  std::string Explain() const;
  std::string optimizer_name;
  int batch_size = 0;
  bool remote_sparse = false;            // embedding tables left out: the pservers hold them
  bool remote_dense_optimizer = false;   // dense optimizer state left out: the pservers hold it
};

// What the job's pservers hold instead of the trainer (docs/sparse.md): in a job, embedding
// tables always live on the pservers; with spec.sync.dense: pserver so does the dense
// parameters' optimizer state.
struct MemoryEstimateOptions {
  bool remote_sparse = false;
  bool remote_dense_optimizer = false;
};

// Optimizer state floats per parameter float: sgd 0, momentum 1, adagrad 1, adam 2.
int OptimizerSlots(OptimizerType type);

// REQUIRES: `graph` was built without errors; batch_size > 0.
MemoryEstimate EstimateTrainerMemory(const ModelGraph& graph, OptimizerType optimizer,
                                     int batch_size, const MemoryEstimateOptions& options = {});

// 1536 -> "1.5 KiB", 3221225472 -> "3 GiB".
std::string FormatBytes(int64_t bytes);

}  // namespace tandem::trainer
