#include "trainer/eval/accuracy_accumulator.h"

#include <cmath>
#include <limits>

#include "common/check.h"

namespace tandem::trainer::eval {

void AccuracyAccumulator::Add(std::span<const float> scores, int num_classes,
                              std::span<const int32_t> labels, int top_k) {
  TANDEM_CHECK_GT(num_classes, 0);
  TANDEM_CHECK(top_k >= 1 && top_k <= num_classes) << "top_k " << top_k;
  TANDEM_CHECK_EQ(scores.size(), labels.size() * static_cast<size_t>(num_classes));
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* row = scores.data() + i * static_cast<size_t>(num_classes);
    const int32_t label = labels[i];
    if (label < 0 || label >= num_classes || std::isnan(row[label])) continue;
    const float s = row[label];
    // Rank of the label: classes strictly above it, plus equal ones with a lower index.
    int above = 0;
    bool nan = false;
    for (int c = 0; c < num_classes; ++c) {
      nan = nan || std::isnan(row[c]);
      above += row[c] > s || (row[c] == s && c < label);
    }
    correct += !nan && above < top_k;
  }
  AddCounts(correct, static_cast<int64_t>(labels.size()));
}

void AccuracyAccumulator::AddCounts(int64_t correct, int64_t total) {
  TANDEM_CHECK(correct >= 0 && correct <= total) << correct << " of " << total;
  correct_ += static_cast<double>(correct);
  total_ += static_cast<double>(total);
}

double AccuracyAccumulator::Accuracy() const {
  return total_ > 0 ? correct_ / total_ : std::numeric_limits<double>::quiet_NaN();
}

void AccuracyAccumulator::Reset() { correct_ = total_ = 0; }

void AccuracyAccumulator::Merge(const AccuracyAccumulator& other) {
  correct_ += other.correct_;
  total_ += other.total_;
}

void AccuracyAccumulator::AppendState(std::vector<double>* state) const {
  state->push_back(correct_);
  state->push_back(total_);
}

void AccuracyAccumulator::SetState(std::span<const double> state) {
  TANDEM_CHECK_EQ(state.size(), kStateSize);
  correct_ = state[0];
  total_ = state[1];
}

}  // namespace tandem::trainer::eval
