// Classification accuracy over a pass (top-1, or top-k). Mergeable like LossAccumulator.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tandem::trainer::eval {

class AccuracyAccumulator {
 public:
  // Scores the rows of `scores` ([n, num_classes] row-major, logits or probabilities) against
  // `labels` [n]. An example counts as correct when its label is among the k highest scores;
  // equal scores rank the lower class index first, as argmax does (PyTorch, NumPy), so top-1
  // agrees with argmax(scores) == label. A row with a NaN score, or a label outside
  // [0, num_classes), counts as wrong.
  // REQUIRES: scores.size() == labels.size() * num_classes; 1 <= top_k <= num_classes.
  void Add(std::span<const float> scores, int num_classes, std::span<const int32_t> labels,
           int top_k = 1);
  // Adds counts computed elsewhere.
  void AddCounts(int64_t correct, int64_t total);

  // correct / total, or NaN when nothing was added.
  double Accuracy() const;
  int64_t correct() const { return static_cast<int64_t>(correct_); }
  int64_t total() const { return static_cast<int64_t>(total_); }
  void Reset();
  void Merge(const AccuracyAccumulator& other);

  static constexpr size_t kStateSize = 2;
  void AppendState(std::vector<double>* state) const;
  void SetState(std::span<const double> state);

 private:
  double correct_ = 0;
  double total_ = 0;
};

}  // namespace tandem::trainer::eval
