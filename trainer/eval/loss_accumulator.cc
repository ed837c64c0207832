#include "trainer/eval/loss_accumulator.h"

#include <limits>

#include "common/check.h"

namespace tandem::trainer::eval {

void LossAccumulator::AddSum(double loss_sum, int64_t count) {
  TANDEM_CHECK_GE(count, 0);
  sum_ += loss_sum;
  count_ += static_cast<double>(count);
}

double LossAccumulator::Mean() const {
  return count_ > 0 ? sum_ / count_ : std::numeric_limits<double>::quiet_NaN();
}

void LossAccumulator::Reset() { sum_ = count_ = 0; }

void LossAccumulator::Merge(const LossAccumulator& other) {
  sum_ += other.sum_;
  count_ += other.count_;
}

void LossAccumulator::AppendState(std::vector<double>* state) const {
  state->push_back(sum_);
  state->push_back(count_);
}

void LossAccumulator::SetState(std::span<const double> state) {
  TANDEM_CHECK_EQ(state.size(), kStateSize);
  sum_ = state[0];
  count_ = state[1];
}

}  // namespace tandem::trainer::eval
