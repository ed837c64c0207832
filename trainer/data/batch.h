// A batch of examples in the layout the engine consumes directly. One Batch object is allocated
// with room for `capacity` examples and refilled step after step: no allocation per step.
//
// Which members are used depends on the dataset (BatchLayout says which):
//   IDX images      features [size, 1, rows, cols] scaled to [0,1], labels (class ids)
//   libsvm records  fields (CSR per field), targets (the record's label), query_ids
//   token sequences tokens and token_targets [size, sequence_length], lengths
// Only the first `size` examples are valid; the last batch of a pass may be short.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::trainer::data {

// The per-example layout a dataset produces; fixed for the dataset's lifetime.
struct BatchLayout {
  // Dense per-example feature shape (IDX: {1, rows, cols}); empty when there are no dense features.
  std::vector<int64_t> feature_shape;
  bool has_labels = false;       // int32 class labels
  int num_classes = 0;           // labels are in [0, num_classes) (0 = unknown)
  bool has_targets = false;      // float targets
  int num_fields = 0;            // sparse fields (0 = none)
  int sequence_length = 0;       // token sequences (0 = none)
  int source_length = 0;         // source side of parallel text (0 = none)
  int64_t FeatureSize() const;   // product of feature_shape (0 when empty)
};

// One field of a sparse batch in CSR form: example i's entries are
// ids[offsets[i] .. offsets[i+1]) with the same range of values. offsets has size+1 entries.
struct SparseField {
  std::vector<uint64_t> ids;
  std::vector<float> values;
  std::vector<int64_t> offsets;
  int64_t Nnz() const { return offsets.empty() ? 0 : offsets.back(); }
};

struct Batch {
  // Examples in this batch (<= capacity); 0 only for an empty shard.
  int size = 0;
  int capacity = 0;
  int64_t pass = 0;   // which pass over the data this batch belongs to
  int64_t index = 0;  // batch number within the pass, from 0

  // Dense features, row-major [capacity, feature_shape...]; the first size rows are valid.
  std::vector<int64_t> feature_shape;
  std::vector<float> features;
  // Class labels [capacity].
  std::vector<int32_t> labels;
  // Float targets [capacity] (click / no click, regression values).
  std::vector<float> targets;
  // Query/group ids [capacity] for pairwise ranking (libsvm `qid:`; 0 when absent).
  std::vector<int64_t> query_ids;
  // Sparse fields.
  std::vector<SparseField> fields;
  // Token sequences, row-major [capacity, sequence_length], padded with 0 after `lengths[i]`
  // tokens; token_targets holds the next token for each input position.
  int sequence_length = 0;
  std::vector<int32_t> tokens;
  std::vector<int32_t> token_targets;
  std::vector<int32_t> lengths;
  // Parallel text (parallel_text_dataset.h): the source side, row-major [capacity,
  // source_length] padded with 0 after source_lengths[i]; tokens / token_targets / lengths hold
  // the target side (decoder input <s> y and output y </s>).
  int source_length = 0;
  std::vector<int32_t> source_tokens;
  std::vector<int32_t> source_lengths;
  // Dataset positions of the examples (for tests and debugging), [capacity].
  std::vector<int64_t> example_ids;

  // Sizes every array for `capacity` examples of `layout` (sparse arrays keep their capacity and
  // grow when a batch has more entries than any before).
  void Allocate(const BatchLayout& layout, int capacity);
  // Starts a new batch: size 0, sparse offsets reset to {0}.
  void Clear();
};

}  // namespace tandem::trainer::data
