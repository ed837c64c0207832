// The synthetic click-log generator: deterministic, Zipf-distributed ids, clicks drawn from the
// known probabilities, a held-out stream of the same model, and its best achievable AUC.
#include "trainer/data/synthetic_ctr_dataset.h"

#include <cmath>
#include <map>

#include "gtest/gtest.h"
#include "trainer/data/data_config.h"
#include "trainer/data/dataset.h"

namespace tandem::trainer::data {
namespace {

TEST(SyntheticCtrTest, DeterministicAndTestStreamDiffers) {
  auto a = SyntheticCtrDataset::Generate({.examples = 2000, .num_fields = 5, .seed = 9});
  auto b = SyntheticCtrDataset::Generate({.examples = 2000, .num_fields = 5, .seed = 9});
  auto t = SyntheticCtrDataset::Generate({.examples = 2000, .num_fields = 5, .seed = 9, .test = true});
  ASSERT_TRUE(a.ok() && b.ok() && t.ok());
  EXPECT_EQ((*a)->ids(), (*b)->ids());
  EXPECT_EQ((*a)->labels(), (*b)->labels());
  EXPECT_NE((*a)->ids(), (*t)->ids());
  // Same model: the most frequent id of field 0 is the same in both streams.
  SyntheticCtrGenerator g({.num_fields = 5, .seed = 9});
  int top_a = 0, top_t = 0;
  for (int64_t i = 0; i < 2000; ++i) {
    top_a += (*a)->ids()[i * 5] == g.IdOf(0, 1);
    top_t += (*t)->ids()[i * 5] == g.IdOf(0, 1);
  }
  EXPECT_GT(top_a, 200);
  EXPECT_GT(top_t, 200);
}

TEST(SyntheticCtrTest, ZipfFrequenciesAndClickRatesMatchTheModel) {
  const int64_t n = 200000;
  auto ds = SyntheticCtrDataset::Generate({.examples = n, .num_fields = 2, .zipf = 1.2, .seed = 4});
  ASSERT_TRUE(ds.ok());
  SyntheticCtrGenerator g({.num_fields = 2, .zipf = 1.2, .seed = 4});
  // P(rank r) = r^-1.2 / H, H = sum over 1..kRanks.
  double h = 0;
  for (int64_t r = 1; r <= SyntheticCtrGenerator::kRanks; ++r) h += std::pow(r, -1.2);
  std::map<uint64_t, int64_t> count;
  for (int64_t i = 0; i < n; ++i) ++count[(*ds)->ids()[i * 2 + 1]];
  for (int64_t r : {1, 2, 5, 20}) {
    const double p = std::pow(r, -1.2) / h;
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(count[g.IdOf(1, r)]), n * p, 5 * sd) << "rank " << r;
  }
  // Clicks are Bernoulli(p): mean click within 5 sd of mean p; probabilities follow the weights.
  double sum_p = 0, sum_c = 0, var = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double p = (*ds)->probabilities()[i];
    sum_p += p;
    sum_c += (*ds)->labels()[i];
    var += p * (1 - p);
  }
  EXPECT_NEAR(sum_c, sum_p, 5 * std::sqrt(var));
  // Two fields carry little signal; 26 (the CTR examples) make a learnable problem with room
  // between chance and certainty.
  EXPECT_GT((*ds)->BestAuc(), 0.55);
  auto wide = SyntheticCtrDataset::Generate({.examples = 20000, .num_fields = 26, .seed = 4});
  ASSERT_TRUE(wide.ok());
  EXPECT_GT((*wide)->BestAuc(), 0.72);
  EXPECT_LT((*wide)->BestAuc(), 0.95);
  // Pairs: two bags of 26 ids per record, preference drawn from the difference of the logits.
  auto pairs = SyntheticCtrDataset::Generate({.examples = 5000, .num_fields = 26, .seed = 4,
                                              .pairs = true});
  ASSERT_TRUE(pairs.ok());
  EXPECT_EQ((*pairs)->layout().num_fields, 2);
  EXPECT_GT((*pairs)->BestAuc(), 0.72);
  // The AUC of a useless score is 0.5; of the labels themselves 1.
  std::vector<float> constant(n, 0.5f);
  EXPECT_NEAR(ExactAuc(constant, (*ds)->labels()), 0.5, 1e-9);
  EXPECT_NEAR(ExactAuc((*ds)->labels(), (*ds)->labels()), 1.0, 1e-9);
}

TEST(SyntheticCtrTest, ParsedFromSpecDataAndLoaded) {
  auto cfg = ParseDataConfig(nlohmann::json::parse(R"({
      "train": {"format": "synthetic-ctr", "examples": 100, "numFields": 3, "seed": 2},
      "test": {"format": "synthetic-ctr", "examples": 50, "numFields": 3, "seed": 2}})"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_FALSE(cfg->train.synthetic_test);
  EXPECT_TRUE(cfg->test->synthetic_test);
  auto ds = LoadDataset(*cfg->test);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->size(), 50);
  EXPECT_EQ((*ds)->layout().num_fields, 3);
  auto bad = ParseDataConfig(nlohmann::json::parse(
      R"({"train": {"format": "synthetic-ctr", "zipf": 0.5, "numfields": 3}})"));
  ASSERT_FALSE(bad.ok());
  const std::string msg(bad.status().message());
  EXPECT_NE(msg.find("spec.data.train.examples: required"), std::string::npos) << msg;
  EXPECT_NE(msg.find("spec.data.train.zipf: must be a number in (1, 4]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("spec.data.train.numfields: unknown field"), std::string::npos) << msg;
}

}  // namespace
}  // namespace tandem::trainer::data
