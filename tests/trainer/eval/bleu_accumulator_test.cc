// Corpus BLEU and exact match against hand-computed values.
#include "trainer/eval/bleu_accumulator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace tandem::trainer::eval {
namespace {

TEST(BleuAccumulatorTest, IdenticalIsOneEmptyIsZero) {
  BleuAccumulator b;
  EXPECT_EQ(b.Bleu(), 0);
  EXPECT_TRUE(std::isnan(b.ExactMatch()));
  b.Add(std::vector<int32_t>{1, 2, 3, 4, 5}, std::vector<int32_t>{1, 2, 3, 4, 5});
  EXPECT_DOUBLE_EQ(b.Bleu(), 1.0);
  EXPECT_DOUBLE_EQ(b.ExactMatch(), 1.0);
}

TEST(BleuAccumulatorTest, ClippedCountsAndBrevityPenalty) {
  BleuAccumulator b;
  // Hypothesis 1 2 3 4 1 2 against 1 2 3 4 5 6 7 (longer: brevity penalty exp(1 - 7/6)).
  // 1-grams: 1 and 2 occur twice but once in the reference (clipped): 4 of 6.
  // 2-grams: 12 23 34 41 12 -> 12 (clipped to 1), 23, 34 match: 3 of 5.
  // 3-grams: 123 234 341 412 -> 2 of 4. 4-grams: 1234 2341 3412 -> 1 of 3.
  b.Add(std::vector<int32_t>{1, 2, 3, 4, 1, 2}, std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7});
  const double p = std::pow((4.0 / 6) * (3.0 / 5) * (2.0 / 4) * (1.0 / 3), 0.25);
  EXPECT_NEAR(b.Bleu(), std::exp(1 - 7.0 / 6) * p, 1e-12);
  EXPECT_DOUBLE_EQ(b.ExactMatch(), 0.0);
}

TEST(BleuAccumulatorTest, CorpusSumsBeforeTheMeanAndMergesAcrossRanks) {
  BleuAccumulator a, b, all;
  const std::vector<int32_t> r1{1, 2, 3, 4}, h1{1, 2, 3, 4}, r2{5, 6, 7, 8, 9}, h2{5, 6, 7, 9, 9};
  a.Add(h1, r1);
  b.Add(h2, r2);
  all.Add(h1, r1);
  all.Add(h2, r2);
  // Corpus: 1-grams 4+4 of 9, 2-grams 3+2 of 7, 3-grams 2+1 of 5, 4-grams 1+0 of 3.
  const double p = std::pow((8.0 / 9) * (5.0 / 7) * (3.0 / 5) * (1.0 / 3), 0.25);
  EXPECT_NEAR(all.Bleu(), p, 1e-12);
  EXPECT_DOUBLE_EQ(all.ExactMatch(), 0.5);
  // A sentence with no 4-gram match alone scores 0 (no smoothing).
  EXPECT_EQ(b.Bleu(), 0);
  std::vector<double> sa, sb;
  a.AppendState(&sa);
  b.AppendState(&sb);
  ASSERT_EQ(sa.size(), BleuAccumulator::kStateSize);
  for (size_t i = 0; i < sa.size(); ++i) sa[i] += sb[i];
  BleuAccumulator merged;
  merged.SetState(sa);
  EXPECT_DOUBLE_EQ(merged.Bleu(), all.Bleu());
  EXPECT_EQ(merged.sentences(), 2);
}

}  // namespace
}  // namespace tandem::trainer::eval
