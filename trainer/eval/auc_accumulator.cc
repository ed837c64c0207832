#include "trainer/eval/auc_accumulator.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.h"

namespace tandem::trainer::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

float Sanitize(float s) { return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s; }

}  // namespace

AucAccumulator::AucAccumulator(const Options& options)
    : options_(options),
      pos_(static_cast<size_t>(options.bins), 0.0),
      neg_(static_cast<size_t>(options.bins), 0.0),
      exact_valid_(options.exact) {
  TANDEM_CHECK_GE(options.bins, 1);
}

int AucAccumulator::Bin(float score) const {
  double p = score;
  if (options_.logits) p = 1.0 / (1.0 + std::exp(-static_cast<double>(score)));
  if (!(p > 0)) return 0;  // also NaN
  if (p >= 1) return options_.bins - 1;
  return std::min(options_.bins - 1, static_cast<int>(p * options_.bins));
}

void AucAccumulator::Add(std::span<const float> scores, std::span<const float> labels) {
  TANDEM_CHECK_EQ(scores.size(), labels.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    const float s = Sanitize(scores[i]);
    const bool positive = labels[i] > 0.5f;
    (positive ? pos_ : neg_)[static_cast<size_t>(Bin(s))] += 1;
    if (exact_valid_) examples_.emplace_back(s, positive);
  }
}

void AucAccumulator::Add(std::span<const float> scores, std::span<const int32_t> labels) {
  TANDEM_CHECK_EQ(scores.size(), labels.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    const float s = Sanitize(scores[i]);
    const bool positive = labels[i] > 0;
    (positive ? pos_ : neg_)[static_cast<size_t>(Bin(s))] += 1;
    if (exact_valid_) examples_.emplace_back(s, positive);
  }
}

int64_t AucAccumulator::positives() const {
  double n = 0;
  for (double c : pos_) n += c;
  return static_cast<int64_t>(n);
}

int64_t AucAccumulator::negatives() const {
  double n = 0;
  for (double c : neg_) n += c;
  return static_cast<int64_t>(n);
}

double AucAccumulator::Auc() const { return exact_valid_ ? ExactAuc() : HistogramAuc(); }

double AucAccumulator::ExactAuc() const {
  TANDEM_CHECK(exact_valid_) << "the exact AUC is not available (merged state or exact=false)";
  std::vector<std::pair<float, bool>> sorted = examples_;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  // Walk groups of equal scores from the lowest: each positive beats every negative below its
  // group and ties half of the negatives in it.
  double negatives_below = 0, wins = 0, positives = 0;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    double p = 0, n = 0;
    while (j < sorted.size() && sorted[j].first == sorted[i].first) {
      (sorted[j].second ? p : n) += 1;
      ++j;
    }
    wins += p * negatives_below + 0.5 * p * n;
    negatives_below += n;
    positives += p;
    i = j;
  }
  if (positives == 0 || negatives_below == 0) return kNaN;
  return wins / (positives * negatives_below);
}

double AucAccumulator::HistogramAuc() const {
  double negatives_below = 0, wins = 0, positives = 0;
  for (size_t b = 0; b < pos_.size(); ++b) {
    wins += pos_[b] * negatives_below + 0.5 * pos_[b] * neg_[b];
    negatives_below += neg_[b];
    positives += pos_[b];
  }
  if (positives == 0 || negatives_below == 0) return kNaN;
  return wins / (positives * negatives_below);
}

double AucAccumulator::HistogramErrorBound() const {
  double same_bin = 0, positives = 0, negatives = 0;
  for (size_t b = 0; b < pos_.size(); ++b) {
    same_bin += pos_[b] * neg_[b];
    positives += pos_[b];
    negatives += neg_[b];
  }
  if (positives == 0 || negatives == 0) return kNaN;
  return 0.5 * same_bin / (positives * negatives);
}

void AucAccumulator::Reset() {
  std::fill(pos_.begin(), pos_.end(), 0.0);
  std::fill(neg_.begin(), neg_.end(), 0.0);
  examples_.clear();
  exact_valid_ = options_.exact;
}

void AucAccumulator::Merge(const AucAccumulator& other) {
  TANDEM_CHECK_EQ(options_.bins, other.options_.bins);
  TANDEM_CHECK_EQ(options_.logits, other.options_.logits);
  for (size_t b = 0; b < pos_.size(); ++b) {
    pos_[b] += other.pos_[b];
    neg_[b] += other.neg_[b];
  }
  if (exact_valid_ && other.exact_valid_) {
    examples_.insert(examples_.end(), other.examples_.begin(), other.examples_.end());
  } else {
    exact_valid_ = false;
    examples_.clear();
  }
}

void AucAccumulator::AppendState(std::vector<double>* state) const {
  state->insert(state->end(), pos_.begin(), pos_.end());
  state->insert(state->end(), neg_.begin(), neg_.end());
}

void AucAccumulator::SetState(std::span<const double> state) {
  TANDEM_CHECK_EQ(state.size(), StateSize());
  const size_t bins = pos_.size();
  std::copy(state.begin(), state.begin() + bins, pos_.begin());
  std::copy(state.begin() + bins, state.end(), neg_.begin());
  exact_valid_ = false;
  examples_.clear();
}

}  // namespace tandem::trainer::eval
