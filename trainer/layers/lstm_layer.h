// lstm: a long short-term memory layer over variable-length sequences in one batch; padding is
// never computed (see sequence_packing.h). Gates i, f, g, o (PyTorch's order); h0 = c0 = 0.
// Input: sequence [T, C]. Output: sequence [T, size] (hidden state at each step, zero on padding).
// Attribute: size (required). Parameters: input_weights [C, 4*size], recurrent_weights
// [size, 4*size] (Xavier), bias [4*size] (zero).
// Each step costs one GEMM over only the still-running sequences; the input projection of all
// steps is a single GEMM, and so are the backward pass's weight gradients (dWx, and dWh over the
// stacked gate gradients of every step). When at most half of the input rows are distinct (an
// embedding over a small vocabulary: a character model's 32 ids over ~1,000 tokens a batch), the
// input projection and dWx run over the distinct rows only (distinct_rows.h): x Wx once per
// distinct row, and dWx = X_distinct^T (the gate gradients summed per distinct row). The bias is
// added in the gate cell. Backward overwrites the saved gate activations with their gradients:
// one Backward per Forward.
// Over a concat that only it reads, the layer takes the concat's inputs directly
// (ReadConcatInputs): x Wx = sum_k x_k Wx_k over the row blocks of Wx, each input projected on
// its own, so an input with few distinct rows (the encoder's summary repeated at every decoder
// step, sequence_expand) takes the distinct-row path while the others take the plain one.
// When an input comes from a producer of repeated rows that only this layer reads (an embedding
// over token sequences, a sequence_expand: ReadRowClasses), its rows are grouped by the
// producer's classes (ids, examples) and its gradient goes back summed per class: the gate
// gradients are summed per class and multiplied by Wx^T once per class, not once per token.
#pragma once

#include <vector>

#include "trainer/layers/distinct_rows.h"
#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/layers/sequence_packing.h"

namespace tandem::trainer {

class LstmLayer final : public Layer {
 public:
  BlobDesc Setup(LayerSetup& s) override;
  void Forward(const LayerInputs& in, Blob& out, const StepContext& ctx) override;
  void Backward(const LayerInputs& in, const Blob& out, const LayerGrads& in_grad,
                const StepContext& ctx) override;
  bool ReadConcatInputs(const std::vector<int64_t>& widths) override;
  bool ReadRowClasses(int input, const RowClassSource& source) override;
  static LayerExample GradCheckExample();
  // Tests: false runs the plain path (every row projected) whatever the input.
  void set_project_distinct_rows(bool on) { project_distinct_ = on; }
  // Whether the last Forward projected distinct rows only (of some input).
  bool projected_distinct_rows() const;

 private:
  // One input (one, unless a concat is read in place), its rows Wx[offset, offset + width).
  struct Part {
    int64_t width = 0, offset = 0;
    DistinctRows rows;
    bool distinct = false;
    Tensor x, dx, wxt;       // packed input, its packed gradient, Wx's block transposed
    Tensor xu, xwu, dgu;     // distinct rows, their projections, summed gate gradients
    RowClassSource source;   // the producer of repeated rows it reads (layer null: none)
    std::vector<int32_t> row_class, packed_class;
    int64_t source_classes = 0;
    Tensor gu;  // the input's gradient summed per distinct row
  };
  int64_t steps_ = 0, in_ = 0, h_ = 0;
  SequencePacking pack_;
  std::vector<Part> parts_;
  bool project_distinct_ = true;
  int cell_part_ = -1;  // the distinct input whose projection the cell adds (-1: none)
  Tensor gates_, c_, hs_, dh_, dc_, hprev_, wht_;
  std::vector<int64_t> padded_rows_;  // per packed row, its padded row
  std::vector<int32_t> send_classes_;
};

}  // namespace tandem::trainer
