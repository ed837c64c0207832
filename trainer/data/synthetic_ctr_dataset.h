// format: synthetic-ctr: a click log drawn from a known model, generated deterministically in
// memory when the job starts (no files to fetch; the same spec gives the same examples anywhere).
//
//   train: {format: synthetic-ctr, examples: 200000, numFields: 26, zipf: 1.2, seed: 7}
//   test:  {format: synthetic-ctr, examples: 20000,  numFields: 26, zipf: 1.2, seed: 7}
//
// Model (fixed by seed, numFields, zipf): field f of an example holds one id, the hash of
// (seed, f, r) where the rank r is drawn from Zipf(zipf) over 1..kRanks (rejection-inversion
// sampling). The click probability is sigmoid(kBias + sum_f w(f, r_f)) with w(f, r) =
// kSignal * N(0, 1) (hashed from (seed, f, r)) for the kSignalRanks most frequent ranks of each
// field and 0 for the long tail: a learnable signal, hidden among ids that carry none. The label
// is a Bernoulli draw from that probability. The train and test sources use the same model and
// different example streams (the test source is `part` test), so BestAuc() of the test set (the
// AUC of the true probabilities against the drawn clicks) is the best any model can score.
// Layout: like libsvm with numFields fields (one id per field, value 1), targets = clicks.
// With `pairs: true`: two fields, each the bag of one item's numFields ids (see the options).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/data/dataset.h"

namespace tandem::trainer::data {

struct SyntheticCtrOptions {
  int64_t examples = 100000;
  int num_fields = 26;
  double zipf = 1.2;
  uint64_t seed = 1;
  bool test = false;  // the held-out stream (same model, other examples)
  // Pairs for a pairwise rank cost: each record is two items of the model (left, right), each a
  // bag of num_fields ids; the layout has 2 fields (field 0: left's ids, field 1: right's), and
  // the target is 1 when left is preferred, drawn with P = sigmoid(logit_left - logit_right).
  bool pairs = false;
};

class SyntheticCtrGenerator {
 public:
  static constexpr int64_t kRanks = 1000000;   // distinct ids per field
  static constexpr int64_t kSignalRanks = 100;  // ranks with a weight
  static constexpr double kSignal = 0.35;       // stddev of a signal weight
  static constexpr double kBias = -1.0;

  explicit SyntheticCtrGenerator(const SyntheticCtrOptions& options);
  // Example i: num_fields ids, its click probability and its click (0 or 1).
  void Example(int64_t i, uint64_t* ids, float* probability, float* click) const;
  uint64_t IdOf(int field, int64_t rank) const;
  double WeightOf(int field, int64_t rank) const;

 private:
  int64_t DrawRank(uint64_t* state) const;
  SyntheticCtrOptions o_;
  double h_x1_ = 0, h_n_ = 0, s_ = 0;  // rejection-inversion constants
};

// Exact AUC (ties count one half) of `scores` against 0/1 `labels`; NaN without both classes.
double ExactAuc(const std::vector<float>& scores, const std::vector<float>& labels);

class SyntheticCtrDataset final : public Dataset {
 public:
  static absl::StatusOr<std::shared_ptr<const SyntheticCtrDataset>> Generate(
      const SyntheticCtrOptions& options);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  const BatchLayout& layout() const override { return layout_; }
  void Append(int64_t i, Batch* batch) const override;
  std::string Describe() const override;

  // AUC of the true click probabilities on this set: the bound a trained model approaches.
  double BestAuc() const { return best_auc_; }
  double ClickRate() const;
  const std::vector<uint64_t>& ids() const { return ids_; }  // size() x num_fields
  const std::vector<float>& labels() const { return labels_; }
  const std::vector<float>& probabilities() const { return probs_; }

 private:
  SyntheticCtrOptions o_;
  BatchLayout layout_;
  std::vector<uint64_t> ids_;
  std::vector<float> labels_, probs_;
  double best_auc_ = 0;
};

}  // namespace tandem::trainer::data
