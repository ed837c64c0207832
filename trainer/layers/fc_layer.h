// fc: a fully connected layer, y = x W + b, over the flattened per-example input (dense) or per
// time step (sequences). Attributes: size (required, > 0), bias (default true).
// Parameters: weights [in, size] (Xavier), bias [size] (zero).
// Over a concat that only it reads, the layer takes the concat's inputs directly
// (ReadConcatInputs): x W = sum_k x_k W_k over the row blocks W_k of W, and the gradients go
// straight to each input, without the concat's copies either way.
#pragma once

#include <vector>

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {

class FcLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  bool ReadConcatInputs(const std::vector<int64_t>& widths) override;
  static LayerExample GradCheckExample();

 private:
  int64_t Rows(const Blob& b) const;
  int64_t in_features_ = 0, size_ = 0;
  std::vector<int64_t> widths_;  // features per input: {in_features_}, or a fused concat's
  bool bias_ = true, sequence_ = false;
};

}  // namespace tandem::trainer
