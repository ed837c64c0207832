#include "trainer/model/network.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"

namespace tandem::trainer {

absl::StatusOr<std::unique_ptr<Network>> Network::Create(ModelGraph graph, Device& device,
                                                         uint64_t seed, bool remote_sparse) {
  if (graph.cost_layer < 0) return absl::InvalidArgumentError("model has no cost layer");
  std::unique_ptr<Network> net(new Network(std::move(graph), device));
  net->remote_sparse_ = remote_sparse;
  TANDEM_RETURN_IF_ERROR(net->Init(seed));
  return net;
}

absl::Status Network::Init(uint64_t seed) {
  const int num_layers = static_cast<int>(graph_.layers.size());
  blobs_.resize(graph_.blobs.size());
  wants_grad_.assign(graph_.blobs.size(), false);
  runs_backward_.assign(num_layers, false);
  layer_params_.resize(num_layers);
  layer_grad_range_.assign(num_layers, {0, 0});
  grad_slots_.resize(num_layers);
  layer_inputs_.resize(num_layers);
  fanout_of_blob_.resize(graph_.blobs.size());

  // Which layers lie on a path to the cost.
  std::vector<bool> feeds_cost(graph_.blobs.size(), false);
  feeds_cost[graph_.layers[graph_.cost_layer].output] = true;
  for (int l = graph_.cost_layer; l >= 0; --l) {
    const GraphLayer& gl = graph_.layers[l];
    if (!feeds_cost[gl.output]) continue;
    for (int b : gl.inputs) feeds_cost[b] = true;
  }
  // A blob wants a gradient when its producer has parameters or wants gradients itself.
  for (int l = 0; l < num_layers; ++l) {
    const GraphLayer& gl = graph_.layers[l];
    bool wants = !gl.params.empty();
    for (size_t k = 0; k < gl.inputs.size(); ++k)
      wants |= gl.layer->Differentiable(static_cast<int>(k)) && wants_grad_[gl.inputs[k]];
    wants_grad_[gl.output] = wants && feeds_cost[gl.output];
    runs_backward_[l] = wants_grad_[gl.output] && l <= graph_.cost_layer;
  }

  // Parameters: values in forward order, gradients in reverse layer order.
  int64_t total = 0;
  for (int l = 0; l < num_layers; ++l)
    for (const ParamDesc& p : graph_.layers[l].params)
      if (!IsRemote(p)) total += p.shape.NumElements();
  param_arena_.Resize(device_, Shape({std::max<int64_t>(total, 1)}));
  int64_t dense_grads = 0;
  for (int l = 0; l < num_layers; ++l)
    for (const ParamDesc& p : graph_.layers[l].params)
      if (!p.sparse && p.trainable) dense_grads += p.shape.NumElements();
  grad_arena_.Resize(device_, Shape({std::max<int64_t>(dense_grads, 1)}));
  device_.Fill(grad_arena_.size(), 0.f, grad_arena_.data());
  for (int l = 0; l < num_layers; ++l)
    for (size_t k = 0; k < graph_.layers[l].params.size(); ++k) {
      layer_params_[l].push_back(static_cast<int>(params_.size()));
      params_.emplace_back();
      params_.back().desc = graph_.layers[l].params[k];
      params_.back().remote = IsRemote(params_.back().desc);
    }
  int64_t value_offset = 0;
  for (int l = 0; l < num_layers; ++l)
    for (int pi : layer_params_[l]) {
      Param& p = params_[pi];
      if (p.remote) continue;  // sized per batch by the sparse path
      p.value.View(param_arena_.data() + value_offset, p.desc.shape);
      value_offset += p.desc.shape.NumElements();
    }
  int64_t grad_offset = 0;
  for (int l = num_layers - 1; l >= 0; --l) {
    layer_grad_range_[l].first = grad_offset;
    for (int pi : layer_params_[l]) {
      Param& p = params_[pi];
      if (!p.desc.trainable) continue;  // no gradient
      if (p.remote) continue;           // per batch, like the value
      if (p.desc.sparse) {
        // Compact gradient rows (Param): grown by the first backward to the rows a batch
        // touches, not a second table.
        p.grad = Tensor();
        p.row_slot.assign(p.desc.shape.dim(0), -1);
        continue;
      }
      p.grad.View(grad_arena_.data() + grad_offset, p.desc.shape);
      grad_offset += p.desc.shape.NumElements();
    }
    layer_grad_range_[l].second = grad_offset - layer_grad_range_[l].first;
  }
  InitParameters(seed);

  // Gradient slots.
  std::vector<int> consumers(graph_.blobs.size(), 0);
  for (int l = 0; l < num_layers; ++l) {
    if (!runs_backward_[l]) continue;
    const GraphLayer& gl = graph_.layers[l];
    for (size_t k = 0; k < gl.inputs.size(); ++k)
      if (gl.layer->Differentiable(static_cast<int>(k)) && wants_grad_[gl.inputs[k]])
        ++consumers[gl.inputs[k]];
  }
  for (int l = 0; l < num_layers; ++l) {
    GraphLayer& gl = graph_.layers[l];
    grad_slots_[l].assign(gl.inputs.size(), nullptr);
    for (int b : gl.inputs) layer_inputs_[l].push_back(&blobs_[b]);
    if (!runs_backward_[l]) continue;
    for (size_t k = 0; k < gl.inputs.size(); ++k) {
      const int b = gl.inputs[k];
      if (!gl.layer->Differentiable(static_cast<int>(k)) || !wants_grad_[b]) continue;
      if (consumers[b] == 1) {
        grad_slots_[l][k] = &blobs_[b].grad;
      } else {
        fanout_grads_.push_back(std::make_unique<Tensor>());
        grad_slots_[l][k] = fanout_grads_.back().get();
        fanout_of_blob_[b].push_back(fanout_grads_.back().get());
      }
    }
  }
  blocked_ = BlockedBlobs();
  const std::vector<bool>& blocked = blocked_;
  // conv2d -> relu, the relu being the convolution's only reader: one forward primitive writes
  // the relu's output (the convolution's own output is never read: its backward needs x and the
  // gradient, relu's backward its output), and the relu's forward pass is skipped.
  forward_into_.assign(num_layers, -1);
  skip_forward_.assign(num_layers, false);
  concat_into_.assign(num_layers, -1);
  if (device_.FusesConvRelu()) {
    std::vector<int> producer(graph_.blobs.size(), -1), readers(graph_.blobs.size(), 0);
    for (int l = 0; l < num_layers; ++l) {
      producer[graph_.layers[l].output] = l;
      for (int b : graph_.layers[l].inputs) ++readers[b];
    }
    for (int l = 0; l < num_layers; ++l) {
      const GraphLayer& relu = graph_.layers[l];
      if (relu.config.type != "relu" || relu.inputs.size() != 1) continue;
      const int p = producer[relu.inputs[0]];
      if (p < 0 || readers[relu.inputs[0]] != 1 || forward_into_[p] >= 0) continue;
      if (!graph_.layers[p].layer->FuseRelu()) continue;
      forward_into_[p] = relu.output;
      skip_forward_[l] = true;
    }
  }
  FuseConcats();
  FuseRowClasses();
  for (int l = 0; l < num_layers; ++l) {
    GraphLayer& gl = graph_.layers[l];
    for (int pi : layer_params_[l]) gl.layer->params().push_back(&params_[pi]);
    const bool in_blocked = gl.inputs.size() == 1 && blocked[gl.inputs[0]];
    if (in_blocked || blocked[gl.output]) {
      gl.layer->SetActivationLayouts(
          in_blocked ? ActivationLayout::kBlocked : ActivationLayout::kPlain,
          blocked[gl.output] ? ActivationLayout::kBlocked : ActivationLayout::kPlain);
    }
    TANDEM_RETURN_IF_ERROR(gl.layer->Init(device_), "layer '", gl.config.name, "'");
  }
  for (size_t b = 0; b < blobs_.size(); ++b) blobs_[b].needs_grad = wants_grad_[b];
  return absl::OkStatus();
}

std::vector<bool> Network::BlockedBlobs() const {
  const int64_t block = device_.BlockedChannels();
  std::vector<bool> blocked(graph_.blobs.size(), false);
  if (block <= 0) return blocked;
  using Support = Layer::LayoutSupport;
  std::vector<int> producer(graph_.blobs.size(), -1);
  std::vector<std::vector<int>> consumers(graph_.blobs.size());
  for (int l = 0; l < static_cast<int>(graph_.layers.size()); ++l) {
    producer[graph_.layers[l].output] = l;
    for (int b : graph_.layers[l].inputs) consumers[b].push_back(l);
  }
  auto support = [&](int l) {
    const GraphLayer& gl = graph_.layers[l];
    return gl.inputs.size() == 1 ? gl.layer->BlockedLayoutSupport() : Support::kPlainOnly;
  };
  // A candidate: an image-shaped activation whose channels fill whole blocks, made by a layer
  // that can write it blocked and read only by layers that can read it blocked. Model inputs
  // and the cost's inputs stay plain.
  for (size_t b = 0; b < blocked.size(); ++b) {
    const BlobDesc& d = graph_.blobs[b];
    if (producer[b] < 0 || consumers[b].empty() || d.kind != BlobKind::kDense ||
        d.shape.rank() != 3 || d.shape.dim(0) % block != 0) {
      continue;
    }
    bool ok = support(producer[b]) != Support::kPlainOnly;
    for (int l : consumers[b]) ok = ok && support(l) != Support::kPlainOnly;
    blocked[b] = ok;
  }
  // Element-wise layers write the layout they read: where input and output disagree, both stay
  // plain (which can only remove candidates, so this ends).
  for (bool changed = true; changed;) {
    changed = false;
    for (int l = 0; l < static_cast<int>(graph_.layers.size()); ++l) {
      if (support(l) != Support::kSame) continue;
      const int in = graph_.layers[l].inputs[0], out = graph_.layers[l].output;
      if (blocked[in] != blocked[out]) {
        blocked[in] = blocked[out] = false;
        changed = true;
      }
    }
  }
  return blocked;
}

void Network::InitParameters(uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (Param& p : params_) {
    if (p.remote) continue;  // the pserver initialises its rows
    float* v = p.value.data();
    const int64_t n = p.value.size();
    switch (p.desc.init) {
      case ParamInit::kZero:
        device_.Fill(n, 0.f, v);
        break;
      case ParamInit::kOne:
        device_.Fill(n, 1.f, v);
        break;
      case ParamInit::kXavier: {
        const float limit = std::sqrt(6.f / static_cast<float>(p.desc.fan_in + p.desc.fan_out));
        std::uniform_real_distribution<float> d(-limit, limit);
        for (int64_t i = 0; i < n; ++i) v[i] = d(rng);
        break;
      }
      case ParamInit::kHe: {
        std::normal_distribution<float> d(0.f, std::sqrt(2.f / static_cast<float>(p.desc.fan_in)));
        for (int64_t i = 0; i < n; ++i) v[i] = d(rng);
        break;
      }
      case ParamInit::kSmall: {
        std::normal_distribution<float> d(0.f, 0.01f);
        for (int64_t i = 0; i < n; ++i) v[i] = d(rng);
        break;
      }
    }
  }
}

// A concat whose output only one layer reads, and which is that layer's only input, is skipped
// when the reader takes its inputs directly (Layer::ReadConcatInputs): the reader gets the
// concat's inputs and their gradient slots (a fan-out input keeps its private slot, summed as
// before), and the concat's output is never written. Layouts stay plain.
void Network::FuseConcats() {
  const int num_layers = static_cast<int>(graph_.layers.size());
  std::vector<int> producer(graph_.blobs.size(), -1), readers(graph_.blobs.size(), 0);
  for (int l = 0; l < num_layers; ++l) {
    producer[graph_.layers[l].output] = l;
    for (int b : graph_.layers[l].inputs) ++readers[b];
  }
  for (int l = 0; l < num_layers; ++l) {
    GraphLayer& gl = graph_.layers[l];
    if (gl.inputs.size() != 1 || skip_forward_[l] || forward_into_[l] >= 0) continue;
    const int b = gl.inputs[0];
    const int p = producer[b];
    if (p < 0 || readers[b] != 1 || graph_.layers[p].config.type != "concat") continue;
    if (skip_forward_[p] || forward_into_[p] >= 0 || blocked_[b]) continue;
    const GraphLayer& cat = graph_.layers[p];
    std::vector<int64_t> widths;
    bool plain = true;
    for (int in : cat.inputs) {
      const BlobDesc& d = graph_.blobs[in];
      plain = plain && !blocked_[in];
      widths.push_back(d.kind == BlobKind::kSequence ? d.shape.dim(1) : d.shape.NumElements());
    }
    if (!plain || !gl.layer->ReadConcatInputs(widths)) continue;
    layer_inputs_[l] = layer_inputs_[p];
    grad_slots_[l] = grad_slots_[p];
    skip_forward_[p] = true;
    runs_backward_[p] = false;
    concat_into_[p] = l;
  }
}

// A producer of repeated rows (Layer::HasRowClasses: an embedding over token sequences, a
// sequence_expand) whose output one layer reads, directly or through a concat read in place,
// hands its backward pass to that reader when the reader takes it (Layer::ReadRowClasses): the
// reader sends the output gradient summed per class, and the producer's own Backward is skipped.
// Producers with dense gradients in the arena (the gradients-ready hook) are left alone.
void Network::FuseRowClasses() {
  const int num_layers = static_cast<int>(graph_.layers.size());
  std::vector<int> producer(graph_.blobs.size(), -1), readers(graph_.blobs.size(), 0);
  std::vector<int> concat_of(num_layers, -1);
  for (int l = 0; l < num_layers; ++l) {
    producer[graph_.layers[l].output] = l;
    for (int b : graph_.layers[l].inputs) ++readers[b];
    if (concat_into_[l] >= 0) concat_of[concat_into_[l]] = l;
  }
  row_classes_to_.assign(num_layers, -1);
  for (int l = 0; l < num_layers; ++l) {
    if (!runs_backward_[l]) continue;
    const GraphLayer& gl = graph_.layers[l];
    const std::vector<int>& in = concat_of[l] >= 0 ? graph_.layers[concat_of[l]].inputs : gl.inputs;
    for (size_t k = 0; k < in.size(); ++k) {
      const int b = in[k];
      const int q = producer[b];
      if (q < 0 || readers[b] != 1 || !runs_backward_[q] || skip_forward_[q]) continue;
      if (grad_slots_[l][k] != &blobs_[b].grad || layer_grad_range_[q].second > 0) continue;
      GraphLayer& src = graph_.layers[q];
      if (!src.layer->HasRowClasses()) continue;
      const Layer::RowClassSource source{src.layer.get(), &layer_inputs_[q], &grad_slots_[q]};
      if (!gl.layer->ReadRowClasses(static_cast<int>(k), source)) continue;
      runs_backward_[q] = false;
      row_classes_to_[q] = l;
    }
  }
}

void Network::SetBatchSize(int64_t n) {
  batch_ = n;
  for (size_t i = 0; i < graph_.inputs.size(); ++i) {
    const BlobDesc& d = graph_.blobs[i];
    if (d.kind == BlobKind::kDense) blobs_[i].value.Resize(device_, d.shape.WithBatch(n));
  }
  for (const GraphLayer& gl : graph_.layers) {
    Blob& out = blobs_[gl.output];
    out.value.Resize(device_, graph_.blobs[gl.output].shape.WithBatch(n));
    if (wants_grad_[gl.output]) out.grad.Resize(device_, out.value.shape());
  }
  for (size_t b = 0; b < blobs_.size(); ++b)
    for (Tensor* t : fanout_of_blob_[b]) t->Resize(device_, blobs_[b].value.shape());
}

double Network::Forward(const StepContext& ctx) {
  for (size_t l = 0; l < graph_.layers.size(); ++l) {
    if (skip_forward_[l]) continue;  // fused into the layer before it
    GraphLayer& gl = graph_.layers[l];
    const int out = forward_into_[l] >= 0 ? forward_into_[l] : gl.output;
    gl.layer->Forward(layer_inputs_[l], blobs_[out], ctx);
  }
  const Blob& loss = cost_output();
  double sum = 0;
  for (int64_t i = 0; i < batch_; ++i) sum += loss.value.data()[i];
  return batch_ > 0 ? sum / batch_ : 0.0;
}

void Network::ForwardInference(const StepContext& ctx) {
  for (size_t l = 0; l < graph_.layers.size(); ++l) {
    if (skip_forward_[l] || static_cast<int>(l) == graph_.cost_layer) continue;
    GraphLayer& gl = graph_.layers[l];
    const int out = forward_into_[l] >= 0 ? forward_into_[l] : gl.output;
    gl.layer->Forward(layer_inputs_[l], blobs_[out], ctx);
  }
}

double Network::ForwardDependents(const std::vector<int>& inputs, const StepContext& ctx) {
  std::vector<bool> changed(blobs_.size(), false);
  for (int i : inputs) changed[i] = true;
  for (size_t l = 0; l < graph_.layers.size(); ++l) {
    GraphLayer& gl = graph_.layers[l];
    bool depends = false;
    for (int b : gl.inputs) depends = depends || changed[b];
    if (!depends) continue;
    changed[gl.output] = true;
    if (forward_into_[l] >= 0) changed[forward_into_[l]] = true;
    if (skip_forward_[l]) continue;  // fused into the layer before it, which ran
    const int out = forward_into_[l] >= 0 ? forward_into_[l] : gl.output;
    gl.layer->Forward(layer_inputs_[l], blobs_[out], ctx);
  }
  const Blob& loss = cost_output();
  double sum = 0;
  for (int64_t i = 0; i < batch_; ++i) sum += loss.value.data()[i];
  return batch_ > 0 ? sum / batch_ : 0.0;
}

void Network::Backward(const StepContext& ctx) {
  Blob& cost = blobs_[graph_.layers[graph_.cost_layer].output];
  TANDEM_CHECK(!cost.grad.empty()) << "the cost layer has no trainable inputs";
  device_.Fill(batch_, batch_ > 0 ? 1.f / batch_ : 0.f, cost.grad.data());
  for (int l = graph_.cost_layer; l >= 0; --l) {
    if (!runs_backward_[l]) continue;
    GraphLayer& gl = graph_.layers[l];
    Blob& out = blobs_[gl.output];
    const auto& fan = fanout_of_blob_[gl.output];
    if (!fan.empty()) {
      device_.Copy(out.grad.size(), fan[0]->data(), out.grad.data());
      for (size_t k = 1; k < fan.size(); ++k)
        device_.Axpy(out.grad.size(), 1.f, fan[k]->data(), out.grad.data());
    }
    gl.layer->Backward(layer_inputs_[l], out, grad_slots_[l], ctx);
    if (hook_ && layer_grad_range_[l].second > 0)
      hook_(l, layer_grad_range_[l].first, layer_grad_range_[l].second);
  }
}

}  // namespace tandem::trainer
