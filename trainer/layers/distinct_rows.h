// The distinct rows of a [rows, cols] float matrix, by bitwise equality: for a recurrent layer
// whose input is an embedding over a small vocabulary (characters: 32 ids for 768-1,024 tokens a
// batch), the input projection x W of every token is one of a few distinct rows, so the layer
// projects each distinct row once and gathers. Bitwise-equal rows have bitwise-equal products,
// so this is the same arithmetic (the backward pass's dW sums the same terms in another order).
#pragma once

#include <cstdint>
#include <vector>

namespace tandem::trainer {

class DistinctRows {
 public:
  // Finds the distinct rows of x (row-major, `cols` floats a row). Returns false as soon as more
  // than `max_distinct` are found, or when the first `probe_rows` rows are all distinct (then
  // the contents are unspecified): the caller's plain path is cheaper than gathering that many.
  // A sequence layer's packed rows come step by step, so a value repeated per sequence (an
  // encoder's summary at every decoder step) first repeats one step's rows later: it probes a
  // step's rows plus 64. Cost: one hash of each row scanned, and one comparison with each row it
  // collides with.
  bool Find(int64_t rows, int64_t cols, const float* x, int64_t max_distinct,
            int64_t probe_rows = 64);
  // The same from known classes (class_of_row[r] >= 0, rows of one class equal), numbered by
  // first occurrence; source_class() gives each one's class number.
  void FromClasses(int64_t rows, const int32_t* class_of_row, int64_t classes);
  const std::vector<int32_t>& source_class() const { return source_class_; }
  int64_t count() const { return static_cast<int64_t>(first_.size()); }
  // Per row: the number of its distinct row, in [0, count()).
  const std::vector<int32_t>& index() const { return index_; }
  // Per distinct row: the first row of x equal to it.
  const std::vector<int64_t>& first() const { return first_; }

 private:
  std::vector<int32_t> index_;
  std::vector<int64_t> first_;
  std::vector<int32_t> slot_;     // open-addressing table: distinct row number or -1
  std::vector<uint64_t> hashes_;  // per distinct row
  std::vector<int32_t> source_class_;  // FromClasses: per distinct row
};

}  // namespace tandem::trainer
