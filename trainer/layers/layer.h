// The narrow layer interface (Caffe's shape): Setup validates the configuration and infers shapes
// without touching any device; Init creates the device kernels; Forward and Backward only compute.
//
//   class ScaleLayer : public Layer {
//     BlobDesc Setup(LayerSetup& s) override {
//       factor_ = s.attrs().Float("factor", 1.0);
//       return s.inputs()[0];
//     }
//     void Forward(const LayerInputs& in, Blob& out, const StepContext&) override {...}
//     void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad) override {...}
//   };
//
// Layers get their device in Init and never name a backend: the CPU (oneDNN) and a future CUDA
// backend provide the kernels behind trainer/core/device.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "trainer/core/device.h"
#include "trainer/core/tensor.h"
#include "trainer/layers/attr_reader.h"

namespace tandem::trainer {

// One layer of a model, as the declarative `spec.model.layers[i]` entry or the fluent builder
// writes it. `attrs` holds the layer-specific fields with their camelCase names.
struct LayerConfig {
  std::string name;
  std::string type;
  std::vector<std::string> inputs;
  nlohmann::json attrs = nlohmann::json::object();
  bool operator==(const LayerConfig& o) const = default;
};

// What one example of a blob looks like (the batch dimension is implicit).
enum class BlobKind {
  kDense,        // Blob::value [N, shape...]
  kLabel,        // one integer per example in Blob::ids (shape [1]); value unused
  kIds,          // multi-hot: shape [fields]; Blob::offsets (N*fields+1) index Blob::ids
  kSequenceIds,  // token ids: shape [T]; Blob::ids is N*T (padded), Blob::lengths per example
  kSequence,     // Blob::value [N, T, C] padded, Blob::lengths per example; shape [T, C]
};
const char* BlobKindName(BlobKind kind);

struct BlobDesc {
  BlobKind kind = BlobKind::kDense;
  Shape shape;
  bool operator==(const BlobDesc& o) const = default;
  std::string ToString() const;  // "dense [1, 28, 28]"
};

enum class ParamInit {
  kZero,
  kOne,
  kXavier,  // uniform in +-sqrt(6 / (fan_in + fan_out))
  kHe,      // normal with stddev sqrt(2 / fan_in): for layers followed by ReLU
  kSmall,   // normal with stddev 0.01 (embeddings)
};

struct ParamDesc {
  std::string name;  // "weights", "bias"
  Shape shape;
  ParamInit init = ParamInit::kXavier;
  int64_t fan_in = 1, fan_out = 1;
  bool sparse = false;  // rows updated only where a batch touched them (embedding tables)
  bool trainable = true;  // false: state the layer updates itself (batch-norm running stats)
};

// A trainable parameter. `grad` is a view into the network's gradient arena (dense parameters).
// A sparse parameter's gradient is compact: row k of `grad` is the gradient of table row
// touched_rows[k], so a step's gradient takes (rows the batch touched) x columns, never the
// table's size; grad's first dimension is its capacity in rows (only touched_rows.size() rows
// are meaningful). The optimizer (or the sparse path) consumes the rows and clears the list.
struct Param {
  ParamDesc desc;
  Tensor value;
  Tensor grad;
  // Sparse parameters: the rows with a gradient this step, in the order backward first touched
  // them (the same order for any thread count).
  std::vector<int32_t> touched_rows;
  // Sparse parameters: row_slot[r] = r's index in touched_rows, or -1 (one entry per table row).
  std::vector<int32_t> row_slot;
  // Held by the parameter server (trainer/engine/sparse_path.h): the local optimizer leaves it
  // alone. A remote sparse table holds only the current batch's rows, indexed by slot.
  bool remote = false;
};

struct StepContext {
  bool training = true;
  uint64_t step = 0;  // for layers with randomness (dropout): same step, same mask
  uint64_t seed = 1;
};

using LayerInputs = std::vector<const Blob*>;
// Gradient slots for each input; null where no gradient is wanted. Layers overwrite them.
using LayerGrads = std::vector<Tensor*>;

// What Setup sees and reports through.
class LayerSetup {
 public:
  LayerSetup(const LayerConfig& config, std::vector<BlobDesc> inputs)
      : config_(config), attrs_(config.attrs), inputs_(std::move(inputs)) {}
  const LayerConfig& config() const { return config_; }
  AttrReader& attrs() { return attrs_; }
  const std::vector<BlobDesc>& inputs() const { return inputs_; }
  // Records an error against `field` ("numFilters", "inputs", "inputs[1]").
  void Error(const std::string& field, const std::string& message) { attrs_.Error(field, message); }
  // Checks the input count and that each input has one of the allowed kinds; records errors.
  bool ExpectInputs(size_t min_count, size_t max_count, std::vector<std::vector<BlobKind>> kinds);
  // Declares a parameter; returns its index in Layer::params().
  int AddParam(ParamDesc desc) {
    params_.push_back(std::move(desc));
    return static_cast<int>(params_.size()) - 1;
  }
  const std::vector<ParamDesc>& params() const { return params_; }
  bool ok() const { return attrs_.errors().empty(); }

 private:
  const LayerConfig& config_;
  AttrReader attrs_;
  std::vector<BlobDesc> inputs_;
  std::vector<ParamDesc> params_;
};

class Layer {
 public:
  virtual ~Layer() = default;

  // Reads and validates attributes through s.attrs() (which also records the resolved values with
  // defaults), checks the inputs, declares parameters, and returns the output's description.
  // Errors go to s.Error(); the return value is ignored when there are any.
  virtual BlobDesc Setup(LayerSetup& s) = 0;
  // Creates device kernels. Called once after a successful Setup.
  virtual absl::Status Init(Device& device) {
    device_ = &device;
    return absl::OkStatus();
  }
  // Computes out.value (already sized [N, output shape] by the caller) from the inputs; sets
  // out.lengths for sequences.
  virtual void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) = 0;
  // From out.grad, writes each non-null in_grad[i] (sized like in[i]->value) and every
  // parameter's gradient (overwriting them).
  virtual void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                        const StepContext& ctx) = 0;
  // Whether input `i` can carry a gradient (false for labels and ids).
  virtual bool Differentiable(int i) const { return true; }

  // Activation layouts (ActivationLayout in device.h). kAny: the layer reads its input and writes
  // its output in either layout, independently (conv2d, pooling); kSame: in either, but the output
  // in the input's (element-wise layers); kPlainOnly: NCHW only (the default).
  enum class LayoutSupport { kPlainOnly, kSame, kAny };
  virtual LayoutSupport BlockedLayoutSupport() const { return LayoutSupport::kPlainOnly; }
  // Called by the network before Init when it keeps the input and/or the output blocked.
  // REQUIRES: BlockedLayoutSupport() allows the combination.
  virtual void SetActivationLayouts(ActivationLayout input, ActivationLayout output) {}
  // Fusion of a following relu into this layer's forward pass (Device::FusesConvRelu): returns
  // true when the layer will write relu(its output) from then on. Called before Init.
  virtual bool FuseRelu() { return false; }
  // Fusion of a preceding concat that only this layer reads (and that is this layer's only
  // input): returns true when the layer will from then on receive the concat's inputs, of the
  // given widths (features per row, summing to this layer's input width), as separate inputs in
  // Forward and Backward, and the concat is skipped (no copies). Called before Init.
  virtual bool ReadConcatInputs(const std::vector<int64_t>& widths) { return false; }

  // Producers of repeated rows (an embedding over token sequences: rows of one id; a
  // sequence_expand: rows of one example). HasRowClasses: whether the layer has them.
  // RowClasses: after Forward, per output row (example * steps + step) the number of its class
  // (rows of one class are copies of one vector; -1: padding, zero), and returns the number of
  // classes. BackwardFromClassSums: the backward pass from the output gradient summed per class
  // (n rows: class classes[i] gets grads[i, :]; absent classes none), which is all it needs;
  // in_grad as for Backward.
  virtual bool HasRowClasses() const { return false; }
  virtual int64_t RowClasses(const LayerInputs& in, std::vector<int32_t>* row_class) {
    return -1;
  }
  virtual void BackwardFromClassSums(const LayerInputs& in, const LayerGrads& in_grad, int64_t n,
                                     const int32_t* classes, const float* grads,
                                     const StepContext& ctx) {}
  // A producer of repeated rows that only this layer reads, as its input `input`.
  struct RowClassSource {
    Layer* layer = nullptr;
    const LayerInputs* inputs = nullptr;
    const LayerGrads* grads = nullptr;
  };
  // Returns true when the layer will from then on hand the gradient of input `input` to
  // source.layer->BackwardFromClassSums (summed per class) instead of writing in_grad[input];
  // the network then skips that layer's Backward. Called before Init.
  virtual bool ReadRowClasses(int input, const RowClassSource& source) { return false; }

  // Set by the network after Setup: params()[k] matches the k-th AddParam.
  std::vector<Param*>& params() { return params_; }

 protected:
  Device* device_ = nullptr;
  std::vector<Param*> params_;
};

}  // namespace tandem::trainer
