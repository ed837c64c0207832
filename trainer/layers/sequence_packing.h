// Packing of variable-length sequences for recurrent layers, so no work is spent on padding.
// Examples are ordered by length, longest first (stable); at step t the `active(t)` longest
// examples are still running, and their rows form the packed block [offset(t), offset(t) +
// active(t)) of a time-major [S, C] matrix (S = sum of lengths). Since the active set at t+1 is a
// prefix of the one at t, row k of block t+1 continues row k of block t.
#pragma once

#include <cstdint>
#include <vector>

namespace tandem::trainer {

class SequencePacking {
 public:
  // Rebuilds the packing for `lengths` (each in [0, steps]).
  void Build(const std::vector<int32_t>& lengths, int64_t steps);
  int64_t total() const { return total_; }
  int64_t active(int64_t t) const { return active_[t]; }
  int64_t offset(int64_t t) const { return offset_[t]; }
  int64_t steps() const { return steps_; }
  // Padded [N, T, C] -> packed [S, C].
  void Gather(const float* padded, int64_t c, float* packed) const;
  // Per packed row, its padded row (example * steps + step).
  void PaddedRows(std::vector<int64_t>* rows) const;
  // Packed [S, C] -> padded [N, T, C], zero at padded positions.
  void Scatter(const float* packed, int64_t c, float* padded) const;

 private:
  std::vector<int64_t> order_;   // examples, longest first
  std::vector<int64_t> active_, offset_;
  std::vector<int32_t> lengths_;
  int64_t total_ = 0, steps_ = 0;
};

}  // namespace tandem::trainer
