#include "trainer/layers/sequence_packing.h"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace tandem::trainer {

void SequencePacking::Build(const std::vector<int32_t>& lengths, int64_t steps) {
  const int64_t n = static_cast<int64_t>(lengths.size());
  lengths_ = lengths;
  steps_ = steps;
  order_.resize(n);
  std::iota(order_.begin(), order_.end(), 0);
  std::stable_sort(order_.begin(), order_.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  active_.assign(steps, 0);
  offset_.assign(steps, 0);
  total_ = 0;
  for (int64_t t = 0; t < steps; ++t) {
    offset_[t] = total_;
    int64_t a = 0;
    while (a < n && lengths[order_[a]] > t) ++a;
    active_[t] = a;
    total_ += a;
  }
}

void SequencePacking::Gather(const float* padded, int64_t c, float* packed) const {
  for (int64_t t = 0; t < steps_; ++t)
    for (int64_t k = 0; k < active_[t]; ++k)
      std::memcpy(packed + (offset_[t] + k) * c, padded + (order_[k] * steps_ + t) * c,
                  sizeof(float) * c);
}

void SequencePacking::PaddedRows(std::vector<int64_t>* rows) const {
  rows->resize(total_);
  for (int64_t t = 0; t < steps_; ++t)
    for (int64_t k = 0; k < active_[t]; ++k) (*rows)[offset_[t] + k] = order_[k] * steps_ + t;
}

void SequencePacking::Scatter(const float* packed, int64_t c, float* padded) const {
  const int64_t n = static_cast<int64_t>(order_.size());
  std::memset(padded, 0, sizeof(float) * n * steps_ * c);
  for (int64_t t = 0; t < steps_; ++t)
    for (int64_t k = 0; k < active_[t]; ++k)
      std::memcpy(padded + (order_[k] * steps_ + t) * c, packed + (offset_[t] + k) * c,
                  sizeof(float) * c);
}

}  // namespace tandem::trainer
