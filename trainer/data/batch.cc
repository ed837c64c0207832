#include "trainer/data/batch.h"

namespace tandem::trainer::data {

int64_t BatchLayout::FeatureSize() const {
  if (feature_shape.empty()) return 0;
  int64_t n = 1;
  for (int64_t d : feature_shape) n *= d;
  return n;
}

void Batch::Allocate(const BatchLayout& layout, int new_capacity) {
  capacity = new_capacity;
  const size_t cap = static_cast<size_t>(new_capacity);
  feature_shape = layout.feature_shape;
  features.assign(cap * static_cast<size_t>(layout.FeatureSize()), 0.0f);
  labels.assign(layout.has_labels ? cap : 0, 0);
  targets.assign(layout.has_targets ? cap : 0, 0.0f);
  query_ids.assign(layout.num_fields > 0 ? cap : 0, 0);
  fields.assign(static_cast<size_t>(layout.num_fields), SparseField{});
  for (SparseField& f : fields) {
    f.offsets.reserve(cap + 1);
    f.ids.reserve(cap);
    f.values.reserve(cap);
  }
  sequence_length = layout.sequence_length;
  const size_t tokens_size = cap * static_cast<size_t>(layout.sequence_length);
  tokens.assign(tokens_size, 0);
  token_targets.assign(tokens_size, 0);
  lengths.assign(layout.sequence_length > 0 ? cap : 0, 0);
  source_length = layout.source_length;
  source_tokens.assign(cap * static_cast<size_t>(layout.source_length), 0);
  source_lengths.assign(layout.source_length > 0 ? cap : 0, 0);
  example_ids.assign(cap, 0);
  Clear();
}

void Batch::Clear() {
  size = 0;
  for (SparseField& f : fields) {
    f.ids.clear();
    f.values.clear();
    f.offsets.assign(1, 0);
  }
}

}  // namespace tandem::trainer::data
