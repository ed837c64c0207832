// Corpus BLEU (Papineni et al. 2002) over token ids, with exact-match counts: the evaluation of
// decoded sequences against one reference each. Mergeable across ranks like LossAccumulator.
//
//   BleuAccumulator bleu;
//   bleu.Add(hypothesis_ids, reference_ids);   // per decoded example
//   bleu.Bleu();        // in [0, 1]: BLEU-4, uniform weights, brevity penalty, no smoothing
//   bleu.ExactMatch();  // fraction of hypotheses identical to their reference
//
// Sums clipped n-gram matches and n-gram counts over the corpus before taking the geometric
// mean (corpus BLEU, as sacreBLEU and multi-bleu.perl report), so it is not a mean of sentence
// BLEUs. With character tokens it is character BLEU. Empty corpus or zero matches of some order
// give 0.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace tandem::trainer::eval {

class BleuAccumulator {
 public:
  static constexpr int kMaxOrder = 4;
  void Add(std::span<const int32_t> hypothesis, std::span<const int32_t> reference);
  double Bleu() const;
  double ExactMatch() const;  // NaN when nothing was added
  int64_t sentences() const { return static_cast<int64_t>(sentences_); }

  static constexpr size_t kStateSize = 2 * kMaxOrder + 4;
  void AppendState(std::vector<double>* state) const;
  void SetState(std::span<const double> state);

 private:
  std::array<double, kMaxOrder> matches_{}, totals_{};
  double hyp_length_ = 0, ref_length_ = 0, sentences_ = 0, exact_ = 0;
};

}  // namespace tandem::trainer::eval
