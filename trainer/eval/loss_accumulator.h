// Mean loss over a pass. Mergeable: the state is two sums, so ranks combine by adding states
// (an all-reduce SUM of AppendState's doubles), with the same result as one process.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tandem::trainer::eval {

class LossAccumulator {
 public:
  // Adds `count` examples whose losses sum to `loss_sum`. REQUIRES: count >= 0.
  void AddSum(double loss_sum, int64_t count);
  // Adds `count` examples whose mean loss is `mean_loss`.
  void AddMean(double mean_loss, int64_t count) { AddSum(mean_loss * count, count); }
  // The mean loss, or NaN when nothing was added.
  double Mean() const;
  int64_t count() const { return static_cast<int64_t>(count_); }
  void Reset();
  void Merge(const LossAccumulator& other);

  static constexpr size_t kStateSize = 2;
  // Appends the kStateSize doubles of the state; states merge by element-wise addition.
  void AppendState(std::vector<double>* state) const;
  // Replaces the state. REQUIRES: state.size() == kStateSize.
  void SetState(std::span<const double> state);

 private:
  double sum_ = 0;
  double count_ = 0;
};

}  // namespace tandem::trainer::eval
