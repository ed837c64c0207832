// Parallel text (source<TAB>target pairs), its vocabularies, and bucketing by length.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "trainer/data/batch_reader.h"
#include "trainer/data/data_config.h"
#include "trainer/data/dataset.h"
#include "trainer/data/length_buckets.h"
#include "trainer/data/parallel_text_dataset.h"

namespace tandem::trainer::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int32_t kPad = Vocabulary::kPad, kUnk = Vocabulary::kUnk, kBos = Vocabulary::kBos,
                  kEos = Vocabulary::kEos;

ParallelTextDataset::Options Chars(int s, int t) {
  return {.source_length = s, .target_length = t};
}

TEST(ParallelTextDatasetTest, CharsWithSpecialsAndTeacherForcingLayout) {
  // Source counts: a 3, b 2, c 1 -> a=4, b=5, c=6. Target: x 2, y 1 -> x=4, y=5.
  auto ds = ParallelTextDataset::Parse("# comment\nab\tx\n\naac\txy\r\n", "", "p.tsv", Chars(4, 4));
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ((*ds)->size(), 2);
  EXPECT_EQ((*ds)->source_vocab().size(), 7);
  EXPECT_EQ((*ds)->source_vocab().Token(4), "a");
  EXPECT_EQ((*ds)->target_vocab().Token(5), "y");
  EXPECT_THAT((*ds)->Source(1), ElementsAre(4, 4, 6));
  Batch b;
  b.Allocate((*ds)->layout(), 2);
  (*ds)->Append(1, &b);
  (*ds)->Append(0, &b);
  EXPECT_EQ(b.source_length, 4);
  EXPECT_THAT(b.source_tokens, ElementsAre(4, 4, 6, kPad, 4, 5, kPad, kPad));
  EXPECT_THAT(b.source_lengths, ElementsAre(3, 2));
  EXPECT_THAT(b.tokens, ElementsAre(kBos, 4, 5, kPad, kBos, 4, kPad, kPad));
  EXPECT_THAT(b.token_targets, ElementsAre(4, 5, kEos, kPad, 4, kEos, kPad, kPad));
  EXPECT_THAT(b.lengths, ElementsAre(3, 2));
  EXPECT_EQ((*ds)->ExampleTokens(1), 3 + 2 + 1);
}

TEST(ParallelTextDatasetTest, WordsAndUtf8Chars) {
  EXPECT_THAT(ParallelTextDataset::Split(" der  Hund bellt", Tokenize::kWords),
              ElementsAre("der", "Hund", "bellt"));
  EXPECT_THAT(ParallelTextDataset::Split("a\xc3\xa9z", Tokenize::kChars),
              ElementsAre("a", "\xc3\xa9", "z"));
}

TEST(ParallelTextDatasetTest, VocabularyCapAndUnknownTokens) {
  // Vocabulary from the "training" text; "q" never appears there and "c" is cut by the cap.
  auto ds = ParallelTextDataset::Parse("qa\tb\n", "aab\tb\nac\tb\n",
                                       "test.tsv",
                                       {.source_length = 4, .target_length = 4,
                                        .source_vocab_size = 6});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->source_vocab().size(), 6);  // 4 specials + a + b
  EXPECT_THAT((*ds)->Source(0), ElementsAre(kUnk, 4));
  // The specials' spellings in text are ordinary (unknown) tokens.
  EXPECT_EQ((*ds)->source_vocab().Id("<s>"), kUnk);
}

TEST(ParallelTextDatasetTest, DropsOverlongPairsAndNamesMalformedLines) {
  auto ds = ParallelTextDataset::Parse("abc\tx\nabcde\tx\nab\txyzw\n", "", "p.tsv", Chars(4, 4));
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->size(), 1);  // source of 5 > 4; target of 4 > 4 - 1
  EXPECT_EQ((*ds)->dropped_too_long(), 2);
  EXPECT_THAT((*ds)->Describe(), HasSubstr("2 longer than the lengths dropped"));

  auto bad = ParallelTextDataset::Parse("ab\tx\nno tab here\n", "", "p.tsv", Chars(4, 4));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("p.tsv:2"));
  auto empty_side = ParallelTextDataset::Parse("ab\t\n", "", "p.tsv", Chars(4, 4));
  EXPECT_THAT(empty_side.status().message(), HasSubstr("p.tsv:1"));
  auto skipped = ParallelTextDataset::Parse("ab\tx\nno tab\n", "", "p.tsv",
                                            {.source_length = 4, .target_length = 4,
                                             .skip_malformed = true});
  ASSERT_TRUE(skipped.ok());
  EXPECT_EQ((*skipped)->size(), 1);
  EXPECT_EQ((*skipped)->malformed_skipped(), 1);
}

TEST(ParallelTextDatasetTest, DataConfigSharesTheTrainingVocabulary) {
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/pt_train.tsv") << "ab\tba\nbc\tcb\n";
  std::ofstream(dir + "/pt_test.tsv") << "cz\tzc\n";
  nlohmann::json data = {
      {"train", {{"format", "parallel-text"}, {"path", dir + "/pt_train.tsv"},
                 {"sourceLength", 4}, {"targetLength", 5}}},
      {"test", {{"format", "parallel-text"}, {"path", dir + "/pt_test.tsv"},
                {"sourceLength", 4}, {"targetLength", 5}}},
      {"bucketByLength", true},
      {"batchTokens", 100}};
  auto config = ParseDataConfig(data);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->bucket_by_length);
  EXPECT_EQ(config->batch_tokens, 100);
  auto train = LoadDataset(config->train);
  auto test = LoadDataset(*config->test);
  ASSERT_TRUE(train.ok() && test.ok());
  const auto& t = dynamic_cast<const ParallelTextDataset&>(**test);
  // "c" has the training id; "z" never occurs in training.
  const auto& tr = dynamic_cast<const ParallelTextDataset&>(**train);
  EXPECT_THAT(t.Source(0), ElementsAre(tr.source_vocab().Id("c"), kUnk));

  nlohmann::json bad = data;
  bad["train"].erase("sourceLength");
  bad["test"]["tokenize"] = "bytes";
  auto e = ParseDataConfig(bad);
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("spec.data.train.sourceLength: required"));
  EXPECT_THAT(e.status().message(), HasSubstr("spec.data.test.tokenize: unknown tokenize"));
}

// Lengths 1..40 in a scrambled order; bucketing must keep every example exactly once per rank and
// the batch count, and cut padding.
class LengthDataset : public Dataset {
 public:
  explicit LengthDataset(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  const BatchLayout& layout() const override { return layout_; }
  void Append(int64_t i, Batch* batch) const override { ++batch->size; }
  std::string Describe() const override { return "lengths"; }
  int64_t ExampleTokens(int64_t i) const override { return 1 + (i * 17) % 40; }

 private:
  int64_t n_;
  BatchLayout layout_;
};

int64_t PaddedTokens(const Dataset& ds, const std::vector<int64_t>& order, int batch) {
  int64_t padded = 0;
  for (size_t s = 0; s < order.size(); s += batch) {
    int64_t longest = 0;
    const size_t e = std::min(order.size(), s + batch);
    for (size_t k = s; k < e; ++k) longest = std::max(longest, ds.ExampleTokens(order[k]));
    padded += longest * static_cast<int64_t>(e - s);
  }
  return padded;
}

TEST(LengthBucketsTest, KeepsTheShardCutsPaddingAndShufflesBatches) {
  LengthDataset ds(1000);
  ReaderOptions o{.batch_size = 10, .rank = 1, .world_size = 2, .shuffle = true, .seed = 3};
  const std::vector<int64_t> plain = BatchReader::ShardOrder(ds.size(), o, 0);
  std::vector<int64_t> bucketed = plain;
  BucketByLength(ds, o.batch_size, 7, /*shuffle=*/true, &bucketed);
  EXPECT_EQ(std::multiset<int64_t>(plain.begin(), plain.end()),
            std::multiset<int64_t>(bucketed.begin(), bucketed.end()));
  EXPECT_LT(PaddedTokens(ds, bucketed, 10) * 10, PaddedTokens(ds, plain, 10) * 7);
  // Batches are not in length order (shuffled within the window), and the seed decides.
  std::vector<int64_t> firsts;
  for (size_t s = 0; s < 320; s += 10) firsts.push_back(ds.ExampleTokens(bucketed[s]));
  EXPECT_FALSE(std::is_sorted(firsts.begin(), firsts.end()));
  std::vector<int64_t> again = plain;
  BucketByLength(ds, o.batch_size, 7, true, &again);
  EXPECT_EQ(again, bucketed);
  // Unshuffled (test data): each window sorted.
  std::vector<int64_t> sorted = plain;
  BucketByLength(ds, o.batch_size, 7, false, &sorted);
  EXPECT_TRUE(std::is_sorted(sorted.begin(), sorted.begin() + 320, [&](int64_t a, int64_t b) {
    return ds.ExampleTokens(a) < ds.ExampleTokens(b);
  }));
  // About 400 tokens per batch at a mean of 20.5 tokens per example.
  EXPECT_EQ(BatchSizeForTokens(ds, 400), 19);
}

TEST(LengthBucketsTest, ReaderBatchesInTokens) {
  auto ds = std::make_shared<LengthDataset>(1000);
  BatchReader r(ds, {.batch_size = 64, .shuffle = true, .seed = 1, .prefetch = 0,
                     .bucket_by_length = true, .batch_tokens = 205});
  EXPECT_EQ(r.options().batch_size, 10);
  EXPECT_EQ(r.BatchesPerPass(), 100);
  r.StartPass(0);
  int64_t examples = 0;
  while (const Batch* b = r.Next()) examples += b->size;
  EXPECT_EQ(examples, 1000);
}

}  // namespace
}  // namespace tandem::trainer::data
