#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "trainer/eval/accuracy_accumulator.h"
#include "trainer/eval/auc_accumulator.h"
#include "trainer/eval/loss_accumulator.h"

namespace tandem::trainer::eval {
namespace {

TEST(LossAccumulatorTest, MeanMergeAndState) {
  LossAccumulator a;
  EXPECT_TRUE(std::isnan(a.Mean()));
  a.AddMean(2.0, 10);   // sum 20
  a.AddSum(10.0, 10);   // sum 10
  EXPECT_DOUBLE_EQ(a.Mean(), 1.5);
  LossAccumulator b;
  b.AddSum(30.0, 20);
  std::vector<double> sa, sb;
  a.AppendState(&sa);
  b.AppendState(&sb);
  for (size_t i = 0; i < sa.size(); ++i) sa[i] += sb[i];  // an all-reduce SUM
  LossAccumulator merged;
  merged.SetState(sa);
  a.Merge(b);
  EXPECT_DOUBLE_EQ(merged.Mean(), 60.0 / 40.0);
  EXPECT_DOUBLE_EQ(a.Mean(), merged.Mean());
  EXPECT_EQ(a.count(), 40);
  a.Reset();
  EXPECT_EQ(a.count(), 0);
}

struct AccuracyCase {
  const char* name;
  std::vector<float> scores;
  int num_classes;
  std::vector<int32_t> labels;
  int top_k;
  int64_t correct;
};

class AccuracyTest : public ::testing::TestWithParam<AccuracyCase> {};

TEST_P(AccuracyTest, Counts) {
  const AccuracyCase& c = GetParam();
  AccuracyAccumulator acc;
  acc.Add(c.scores, c.num_classes, c.labels, c.top_k);
  EXPECT_EQ(acc.correct(), c.correct);
  EXPECT_EQ(acc.total(), static_cast<int64_t>(c.labels.size()));
}

const float kNaNf = std::nanf("");

INSTANTIATE_TEST_SUITE_P(
    Table, AccuracyTest,
    ::testing::Values(
        AccuracyCase{"Top1", {0.1f, 0.7f, 0.2f, /**/ 0.5f, 0.3f, 0.2f}, 3, {1, 2}, 1, 1},
        AccuracyCase{"Top2", {0.1f, 0.7f, 0.2f, /**/ 0.5f, 0.3f, 0.2f}, 3, {0, 1}, 2, 1},
        AccuracyCase{"TiesGoToLowerIndexLikeArgmax", {1, 1, 1, /**/ 1, 1, 1}, 3, {0, 2}, 1, 1},
        AccuracyCase{"TieTop2", {1, 1, 1}, 3, {1}, 2, 1},
        AccuracyCase{"NaNIsWrong", {kNaNf, 0.1f, 0.0f}, 3, {1}, 1, 0},
        AccuracyCase{"LabelOutOfRange", {0.1f, 0.9f}, 2, {5}, 1, 0},
        AccuracyCase{"Logits", {-3.0f, 2.0f, -1.0f, 4.0f}, 2, {1, 1}, 1, 2}),
    [](const ::testing::TestParamInfo<AccuracyCase>& info) { return info.param.name; });

TEST(AccuracyAccumulatorTest, MergeAndState) {
  AccuracyAccumulator a, b;
  EXPECT_TRUE(std::isnan(a.Accuracy()));
  a.AddCounts(3, 4);
  b.AddCounts(1, 4);
  std::vector<double> s;
  a.AppendState(&s);
  AccuracyAccumulator c;
  c.SetState(s);
  c.Merge(b);
  EXPECT_DOUBLE_EQ(c.Accuracy(), 0.5);
}

struct AucCase {
  const char* name;
  std::vector<float> scores;
  std::vector<float> labels;
  double auc;  // by hand
};

class AucTest : public ::testing::TestWithParam<AucCase> {};

TEST_P(AucTest, ExactMatchesHandComputed) {
  const AucCase& c = GetParam();
  AucAccumulator auc;
  auc.Add(c.scores, c.labels);
  if (std::isnan(c.auc)) {
    EXPECT_TRUE(std::isnan(auc.Auc()));
    return;
  }
  ASSERT_TRUE(auc.IsExact());
  EXPECT_DOUBLE_EQ(auc.Auc(), c.auc);
  // The histogram agrees within its own bound.
  EXPECT_LE(std::abs(auc.HistogramAuc() - c.auc), auc.HistogramErrorBound() + 1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Table, AucTest,
    ::testing::Values(
        // 3 of 4 (positive, negative) pairs ordered correctly.
        AucCase{"Classic", {0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1}, 0.75},
        AucCase{"Perfect", {0.1f, 0.2f, 0.8f, 0.9f}, {0, 0, 1, 1}, 1.0},
        AucCase{"Inverted", {0.9f, 0.8f, 0.2f, 0.1f}, {0, 0, 1, 1}, 0.0},
        AucCase{"AllTied", {0.5f, 0.5f, 0.5f}, {1, 0, 0}, 0.5},
        // pos {0.5, 0.9} vs neg {0.2, 0.5}: 1 + 0.5 + 1 + 1 = 3.5 of 4.
        AucCase{"PartialTie", {0.2f, 0.5f, 0.5f, 0.9f}, {0, 1, 0, 1}, 0.875},
        // pos {3} vs neg {1, NaN->lowest, 3}: 1 + 1 + 0.5 = 2.5 of 3.
        AucCase{"NaNIsLowest", {1.0f, std::nanf(""), 3.0f, 3.0f}, {0, 0, 0, 1}, 2.5 / 3},
        AucCase{"NoNegatives", {0.1f, 0.2f}, {1, 1}, std::nan("")},
        AucCase{"Empty", {}, {}, std::nan("")}),
    [](const ::testing::TestParamInfo<AucCase>& info) { return info.param.name; });

TEST(AucAccumulatorTest, HistogramMergeAcrossRanksWithinBound) {
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0, 1);
  const int ranks = 3;
  std::vector<AucAccumulator> per_rank(ranks);
  AucAccumulator all;
  for (int i = 0; i < 30000; ++i) {
    const float label = (i % 3 == 0) ? 1.0f : 0.0f;
    const float logit = noise(rng) + 1.2f * label;
    const float p = 1.0f / (1.0f + std::exp(-logit));
    per_rank[i % ranks].Add(std::vector<float>{p}, std::vector<float>{label});
    all.Add(std::vector<float>{p}, std::vector<float>{label});
  }
  // Ranks all-reduce their states by summing.
  std::vector<double> sum(all.StateSize(), 0.0);
  for (const auto& r : per_rank) {
    std::vector<double> s;
    r.AppendState(&s);
    for (size_t k = 0; k < s.size(); ++k) sum[k] += s[k];
  }
  AucAccumulator merged;
  merged.SetState(sum);
  EXPECT_FALSE(merged.IsExact());
  EXPECT_EQ(merged.positives(), 10000);
  EXPECT_EQ(merged.negatives(), 20000);
  EXPECT_DOUBLE_EQ(merged.HistogramAuc(), all.HistogramAuc());
  const double exact = all.ExactAuc();
  EXPECT_GT(exact, 0.7);
  EXPECT_LT(exact, 0.85);
  EXPECT_LE(std::abs(merged.Auc() - exact), merged.HistogramErrorBound());
  EXPECT_LT(merged.HistogramErrorBound(), 1e-3);
  // Merging accumulators in-process keeps the exact form.
  AucAccumulator combined;
  for (const auto& r : per_rank) combined.Merge(r);
  ASSERT_TRUE(combined.IsExact());
  EXPECT_NEAR(combined.Auc(), exact, 1e-12);
}

TEST(AucAccumulatorTest, OneBinIsAHalfWithBoundAHalf) {
  AucAccumulator auc({.bins = 1, .exact = false});
  auc.Add(std::vector<float>{0.1f, 0.9f}, std::vector<float>{0, 1});
  EXPECT_DOUBLE_EQ(auc.Auc(), 0.5);
  EXPECT_DOUBLE_EQ(auc.HistogramErrorBound(), 0.5);  // the exact AUC (1.0) is within it
}

TEST(AucAccumulatorTest, LogitsAndIntLabelsAndReset) {
  AucAccumulator auc({.logits = true});
  auc.Add(std::vector<float>{-2.0f, 0.5f, -0.1f, 3.0f}, std::vector<int32_t>{0, 0, 1, 1});
  EXPECT_DOUBLE_EQ(auc.Auc(), 0.75);
  EXPECT_NEAR(auc.HistogramAuc(), 0.75, auc.HistogramErrorBound() + 1e-12);
  EXPECT_DOUBLE_EQ(auc.HistogramErrorBound(), 0.0);
  auc.Reset();
  EXPECT_EQ(auc.positives(), 0);
  EXPECT_TRUE(auc.IsExact());
  EXPECT_TRUE(std::isnan(auc.Auc()));
}

}  // namespace
}  // namespace tandem::trainer::eval
