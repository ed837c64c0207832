// Area under the ROC curve for binary scores, over a pass.
//
// Two forms, kept side by side:
// - Exact (one process): every (score, label) is kept; AUC is the Mann-Whitney statistic
//   P(score+ > score-) + 0.5 * P(score+ == score-), so ties count one half.
// - Histogram (mergeable): positives and negatives are counted in `bins` equal-width bins of the
//   score over [0, 1] (scores outside are clamped; Options::logits applies a sigmoid first, which
//   does not change the exact AUC). Pairs in different bins are ordered exactly; a pair within one
//   bin counts one half. Hence
//       |HistogramAuc() - exact AUC| <= HistogramErrorBound() = 0.5 * sum_b pos_b * neg_b / (P*N),
//   a bound computed from the counts themselves (0 when no bin holds both classes). With the
//   default 2^14 bins and scores spread over [0, 1] it is typically below 1e-4.
// Ranks merge by adding histogram states (an all-reduce SUM of AppendState's doubles); the exact
// form is per process and is dropped by SetState (a merged state has only the histogram).
//
// NaN scores are treated as the lowest possible score. Labels > 0.5 are positive.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tandem::trainer::eval {

class AucAccumulator {
 public:
  struct Options {
    int bins = 1 << 14;  // REQUIRES: >= 1
    bool exact = true;   // keep every score for the exact AUC (8 bytes per example)
    bool logits = false; // scores are logits: histogram sigmoid(score)
  };
  AucAccumulator() : AucAccumulator(Options{}) {}
  explicit AucAccumulator(const Options& options);

  // REQUIRES: scores.size() == labels.size().
  void Add(std::span<const float> scores, std::span<const float> labels);
  void Add(std::span<const float> scores, std::span<const int32_t> labels);

  // The exact AUC when available (exact option, nothing merged in by state), else the histogram
  // AUC. NaN when there are no positives or no negatives.
  double Auc() const;
  bool IsExact() const { return exact_valid_; }
  double ExactAuc() const;  // REQUIRES: IsExact()
  double HistogramAuc() const;
  double HistogramErrorBound() const;
  int64_t positives() const;
  int64_t negatives() const;

  void Reset();
  // Adds `other`'s examples: histograms add; the exact form survives when both have it.
  // REQUIRES: same number of bins and the same logits setting.
  void Merge(const AucAccumulator& other);

  // 2 * bins doubles: positive counts then negative counts per bin.
  size_t StateSize() const { return 2 * static_cast<size_t>(options_.bins); }
  void AppendState(std::vector<double>* state) const;
  // Replaces the state with a (merged) histogram; the exact form is cleared.
  void SetState(std::span<const double> state);

 private:
  int Bin(float score) const;

  Options options_;
  std::vector<double> pos_;  // per bin
  std::vector<double> neg_;
  bool exact_valid_;
  std::vector<std::pair<float, bool>> examples_;  // (score, positive), exact form
};

}  // namespace tandem::trainer::eval
