#include "trainer/layers/distinct_rows.h"

#include <algorithm>
#include <cstring>

namespace tandem::trainer {
namespace {

// Four independent multiply-xor chains (one per word position mod 4) so the multiplies overlap.
uint64_t HashRow(const float* row, int64_t cols) {
  uint64_t h[4] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full, 0x165667b19e3779f9ull,
                   0xd6e8feb86659fd93ull};
  int64_t k = 0;
  for (; k + 4 <= cols; k += 4) {
    for (int j = 0; j < 4; ++j) {
      uint32_t bits;
      std::memcpy(&bits, row + k + j, sizeof bits);
      h[j] = (h[j] ^ bits) * 0xff51afd7ed558ccdull;
      h[j] ^= h[j] >> 29;
    }
  }
  for (; k < cols; ++k) {
    uint32_t bits;
    std::memcpy(&bits, row + k, sizeof bits);
    h[0] = (h[0] ^ bits) * 0xff51afd7ed558ccdull;
    h[0] ^= h[0] >> 29;
  }
  uint64_t out = static_cast<uint64_t>(cols);
  for (int j = 0; j < 4; ++j) {
    out = (out ^ h[j]) * 0xc4ceb9fe1a85ec53ull;
    out ^= out >> 31;
  }
  return out;
}

}  // namespace

void DistinctRows::FromClasses(int64_t rows, const int32_t* class_of_row, int64_t classes) {
  index_.resize(rows);
  first_.clear();
  source_class_.clear();
  slot_.assign(classes, -1);
  for (int64_t r = 0; r < rows; ++r) {
    int32_t& d = slot_[class_of_row[r]];
    if (d < 0) {
      d = static_cast<int32_t>(first_.size());
      first_.push_back(r);
      source_class_.push_back(class_of_row[r]);
    }
    index_[r] = d;
  }
}

// probe_rows: rows scanned before giving up when none of them repeats (a hidden state or any
// dense input: the caller's plain path without scanning up to max_distinct rows).
bool DistinctRows::Find(int64_t rows, int64_t cols, const float* x, int64_t max_distinct,
                        int64_t probe_rows) {
  index_.resize(rows);
  first_.clear();
  hashes_.clear();
  max_distinct = std::max<int64_t>(0, std::min(max_distinct, rows));
  int64_t size = 16;
  while (size < 2 * max_distinct + 2) size *= 2;
  slot_.assign(size, -1);
  const uint64_t mask = static_cast<uint64_t>(size - 1);
  const size_t bytes = static_cast<size_t>(cols) * sizeof(float);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    const uint64_t h = HashRow(row, cols);
    for (uint64_t s = h & mask;; s = (s + 1) & mask) {
      const int32_t d = slot_[s];
      if (d < 0) {
        if (count() == max_distinct || (r + 1 == probe_rows && count() == r)) return false;
        slot_[s] = static_cast<int32_t>(first_.size());
        index_[r] = slot_[s];
        first_.push_back(r);
        hashes_.push_back(h);
        break;
      }
      if (hashes_[d] == h && std::memcmp(x + first_[d] * cols, row, bytes) == 0) {
        index_[r] = d;
        break;
      }
    }
  }
  return true;
}

}  // namespace tandem::trainer
