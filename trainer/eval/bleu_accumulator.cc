#include "trainer/eval/bleu_accumulator.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/check.h"

namespace tandem::trainer::eval {
namespace {

std::map<std::vector<int32_t>, int64_t> NGrams(std::span<const int32_t> s, int n) {
  std::map<std::vector<int32_t>, int64_t> counts;
  for (size_t i = 0; i + n <= s.size(); ++i) ++counts[std::vector<int32_t>(s.begin() + i, s.begin() + i + n)];
  return counts;
}

}  // namespace

void BleuAccumulator::Add(std::span<const int32_t> hypothesis, std::span<const int32_t> reference) {
  for (int n = 1; n <= kMaxOrder; ++n) {
    const auto hyp = NGrams(hypothesis, n);
    const auto ref = NGrams(reference, n);
    for (const auto& [gram, count] : hyp) {
      auto it = ref.find(gram);
      if (it != ref.end()) matches_[n - 1] += static_cast<double>(std::min(count, it->second));
    }
    totals_[n - 1] += static_cast<double>(std::max<int64_t>(0, static_cast<int64_t>(hypothesis.size()) - n + 1));
  }
  hyp_length_ += static_cast<double>(hypothesis.size());
  ref_length_ += static_cast<double>(reference.size());
  sentences_ += 1;
  exact_ += std::equal(hypothesis.begin(), hypothesis.end(), reference.begin(), reference.end());
}

double BleuAccumulator::Bleu() const {
  if (hyp_length_ == 0) return 0;
  double log_sum = 0;
  for (int n = 0; n < kMaxOrder; ++n) {
    if (matches_[n] == 0 || totals_[n] == 0) return 0;
    log_sum += std::log(matches_[n] / totals_[n]);
  }
  const double brevity = hyp_length_ < ref_length_ ? std::exp(1 - ref_length_ / hyp_length_) : 1;
  return brevity * std::exp(log_sum / kMaxOrder);
}

double BleuAccumulator::ExactMatch() const {
  return sentences_ > 0 ? exact_ / sentences_ : std::nan("");
}

void BleuAccumulator::AppendState(std::vector<double>* state) const {
  state->insert(state->end(), matches_.begin(), matches_.end());
  state->insert(state->end(), totals_.begin(), totals_.end());
  state->insert(state->end(), {hyp_length_, ref_length_, sentences_, exact_});
}

void BleuAccumulator::SetState(std::span<const double> state) {
  TANDEM_CHECK_GE(state.size(), kStateSize);
  std::copy(state.begin(), state.begin() + kMaxOrder, matches_.begin());
  std::copy(state.begin() + kMaxOrder, state.begin() + 2 * kMaxOrder, totals_.begin());
  hyp_length_ = state[2 * kMaxOrder];
  ref_length_ = state[2 * kMaxOrder + 1];
  sentences_ = state[2 * kMaxOrder + 2];
  exact_ = state[2 * kMaxOrder + 3];
}

}  // namespace tandem::trainer::eval
