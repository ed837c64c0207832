// A model instantiated on a device: blobs, parameters and the forward/backward passes.
//
//   TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Network> net,
//                           Network::Create(std::move(graph), device, /*seed=*/1));
//   net->SetBatchSize(64);                 // then fill net->input(i)
//   double loss = net->Forward(ctx);       // mean loss of the batch
//   net->Backward(ctx);                    // parameter gradients, in one arena
//
// Gradient arena: every dense parameter gradient lives in ONE contiguous buffer laid out in
// reverse layer order (the last layer's gradients first), and the gradients-ready hook runs right
// after each layer's backward with the arena range that layer just finished. Because backward runs
// last layer first, the finished part of the arena is always a prefix, so data-parallel training
// can all-reduce buckets (slices of the arena) while backward continues. Sparse parameters
// (embedding tables) keep their own gradient buffers and touched-row lists; they go to the pserver.
//
// Activations between convolution layers may stay in the device's blocked layout (device.h's
// ActivationLayout; BlockedBlobs decides per blob at creation), so a blob's value is NCHW only
// where a plain-only layer reads it; inputs, parameters and the cost's inputs are always plain.
// A relu that is a convolution's only reader is fused into it (Device::FusesConvRelu): that
// convolution's own output blob then holds no value (only its gradient is used).
//
// Memory: blobs and gradients are sized for the largest batch seen and reused; a step allocates
// nothing once both batch sizes of a pass (full and last) have been seen.
// Not thread-safe: one training thread drives a Network.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/core/device.h"
#include "trainer/model/model_graph.h"

namespace tandem::trainer {

class Network {
 public:
  // (layer index, first float of its gradients in the arena, number of floats).
  using GradientsReadyHook = std::function<void(int layer, int64_t offset, int64_t count)>;

  // remote_sparse: sparse parameters (embedding tables) live on the parameter server; the network
  // keeps no full table (Param::remote is set, value/grad are sized per batch by the sparse path,
  // and they are not part of the parameter arena).
  static absl::StatusOr<std::unique_ptr<Network>> Create(ModelGraph graph, Device& device,
                                                         uint64_t seed, bool remote_sparse = false);

  // Sizes the input blobs for `n` examples (dense values; id vectors are the caller's to fill).
  void SetBatchSize(int64_t n);
  int64_t batch_size() const { return batch_; }
  Blob& input(int i) { return blobs_[i]; }
  int num_inputs() const { return static_cast<int>(graph_.inputs.size()); }

  // Runs every layer; returns the mean of the cost layer's per-example losses.
  double Forward(const StepContext& ctx);
  // Forward for inference (tandem-serve): every layer but the cost layer, so label inputs are
  // not read; the model's output is cost_input(0).
  void ForwardInference(const StepContext& ctx);
  // Runs only the layers that depend (directly or through other layers) on one of `inputs`
  // (input indices), reusing every other blob from the last forward pass at the same batch size:
  // incremental decoding changes only the decoder's input, not the encoder's.
  // REQUIRES: a full Forward ran since the last SetBatchSize.
  double ForwardDependents(const std::vector<int>& inputs, const StepContext& ctx);
  // Backward from the cost layer (seeded with 1/N per example); fills every parameter gradient.
  void Backward(const StepContext& ctx);

  const ModelGraph& graph() const { return graph_; }
  const Blob& blob(int i) const { return blobs_[i]; }
  // Whether blob `i` lives in the device's blocked layout (device.h's ActivationLayout).
  bool blocked(int i) const { return blocked_[i]; }
  // Whether layer `l`'s forward pass is done by another layer (a relu fused into a conv2d, a
  // concat read in place by its only reader).
  bool fused(int l) const { return skip_forward_[l]; }
  // The layer that reads concat layer `l`'s inputs in place (Layer::ReadConcatInputs), or -1.
  int concat_read_by(int l) const { return concat_into_[l]; }
  // The layer that runs layer `l`'s backward pass from class sums (Layer::ReadRowClasses), or -1.
  int row_classes_read_by(int l) const { return row_classes_to_[l]; }
  // Blob index of a layer's output / the cost layer's output / its first input (the logits).
  const Blob& cost_output() const { return blobs_[graph_.layers[graph_.cost_layer].output]; }
  const Blob& cost_input(int k) const {
    return blobs_[graph_.layers[graph_.cost_layer].inputs[k]];
  }

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  float* gradient_arena() { return grad_arena_.data(); }
  int64_t gradient_arena_size() const { return grad_arena_.size(); }
  // Parameter values of dense parameters, contiguous in forward order.
  float* parameter_arena() { return param_arena_.data(); }
  int64_t parameter_arena_size() const { return param_arena_.size(); }
  void SetGradientsReadyHook(GradientsReadyHook hook) { hook_ = std::move(hook); }
  Device& device() { return device_; }

  // Re-initialises every parameter from `seed` (deterministic for a given seed).
  void InitParameters(uint64_t seed);

 private:
  Network(ModelGraph graph, Device& device) : graph_(std::move(graph)), device_(device) {}
  absl::Status Init(uint64_t seed);
  // Per blob: whether it stays in the device's blocked layout (ActivationLayout in device.h).
  std::vector<bool> BlockedBlobs() const;
  bool IsRemote(const ParamDesc& p) const { return remote_sparse_ && p.sparse && p.trainable; }

  ModelGraph graph_;
  Device& device_;
  std::vector<bool> blocked_;  // per blob: BlockedBlobs()
  // Conv -> relu fusion (Device::FusesConvRelu), per layer: the blob a fused convolution writes
  // (its relu's output; -1: its own), and whether the forward pass is skipped (the fused relu).
  std::vector<int> forward_into_;
  std::vector<bool> skip_forward_;
  // Concat -> fc / lstm (Layer::ReadConcatInputs), per layer: the reader of a fused concat (-1:
  // none). The concat runs neither pass; its reader takes the concat's inputs and their gradient
  // slots directly.
  void FuseConcats();
  std::vector<int> concat_into_;
  // Producer of repeated rows -> its reader that sums the gradient per class (-1: none).
  void FuseRowClasses();
  std::vector<int> row_classes_to_;
  int64_t batch_ = 0;
  bool remote_sparse_ = false;
  std::vector<Blob> blobs_;
  std::vector<Param> params_;
  std::vector<std::vector<int>> layer_params_;   // per layer: indices into params_
  std::vector<std::pair<int64_t, int64_t>> layer_grad_range_;  // per layer: arena offset, count
  Tensor param_arena_, grad_arena_;
  std::vector<bool> runs_backward_;              // per layer
  std::vector<bool> wants_grad_;                 // per blob
  // Per layer, per input: where its gradient goes (null: none). Fan-out blobs get one private
  // tensor per consumer, summed into the blob's gradient before its producer's backward.
  std::vector<LayerGrads> grad_slots_;
  std::vector<std::unique_ptr<Tensor>> fanout_grads_;
  std::vector<std::vector<Tensor*>> fanout_of_blob_;
  std::vector<LayerInputs> layer_inputs_;
  GradientsReadyHook hook_;
};

}  // namespace tandem::trainer
