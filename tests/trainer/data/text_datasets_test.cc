// The text formats: libsvm-style sparse records and token sequences.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "trainer/data/batch_reader.h"
#include "trainer/data/data_metrics.h"
#include "trainer/data/dataset.h"
#include "trainer/data/libsvm_dataset.h"
#include "trainer/data/token_dataset.h"

namespace tandem::trainer::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string WriteGz(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
  gzclose(f);
  return path;
}

Batch FillAll(const Dataset& ds) {
  Batch b;
  b.Allocate(ds.layout(), static_cast<int>(ds.size()));
  for (int64_t i = 0; i < ds.size(); ++i) ds.Append(i, &b);
  return b;
}

TEST(LibsvmDatasetTest, ParsesFieldsIntoCsr) {
  const std::string text =
      "# clicks\n"
      "1 qid:7 0:123456:1 2:5:0.25 0:99:1\n"
      "\n"
      "0 1:18446744073709551615:-2.5e-1   # trailing comment\n"
      "0.5 3:0.5 17:1\r\n"  // plain libsvm id:value -> field 0
      "0\n";                // no entries at all
  auto ds = LibsvmDataset::Parse(text, "clicks.txt", 3, false);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ((*ds)->size(), 4);
  EXPECT_EQ((*ds)->layout().num_fields, 3);
  Batch b = FillAll(**ds);
  EXPECT_THAT(b.targets, ElementsAre(1.0f, 0.0f, 0.5f, 0.0f));
  EXPECT_THAT(b.query_ids, ElementsAre(7, 0, 0, 0));
  ASSERT_EQ(b.fields.size(), 3u);
  EXPECT_THAT(b.fields[0].ids, ElementsAre(123456u, 99u, 3u, 17u));
  EXPECT_THAT(b.fields[0].values, ElementsAre(1.0f, 1.0f, 0.5f, 1.0f));
  EXPECT_THAT(b.fields[0].offsets, ElementsAre(0, 2, 2, 4, 4));
  EXPECT_THAT(b.fields[1].ids, ElementsAre(18446744073709551615ull));
  EXPECT_THAT(b.fields[1].values, ElementsAre(-0.25f));
  EXPECT_THAT(b.fields[1].offsets, ElementsAre(0, 0, 1, 1, 1));
  EXPECT_THAT(b.fields[2].ids, ElementsAre(5u));
  EXPECT_THAT(b.fields[2].offsets, ElementsAre(0, 1, 1, 1, 1));
  // A reused batch starts clean.
  b.Clear();
  (*ds)->Append(1, &b);
  EXPECT_THAT(b.fields[0].offsets, ElementsAre(0, 0));
  EXPECT_THAT(b.fields[1].ids, ElementsAre(18446744073709551615ull));
}

struct MalformedCase {
  const char* name;
  const char* line;
  const char* error;
};

class LibsvmMalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(LibsvmMalformedTest, ErrorWithFileAndLineOrSkipped) {
  const MalformedCase& c = GetParam();
  const std::string text = std::string("1 0:1:1\n0 1:2:1\n") + c.line + "\n1 0:3:1\n";
  auto ds = LibsvmDataset::Parse(text, "log.svm", 2, false);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(ds.status().message()), std::string("log.svm:3: ") + c.error);
  auto skipped = LibsvmDataset::Parse(text, "log.svm", 2, true);
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_EQ((*skipped)->size(), 3);
  EXPECT_EQ((*skipped)->malformed_skipped(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Table, LibsvmMalformedTest,
    ::testing::Values(
        MalformedCase{"Label", "yes 0:1:1", "bad label 'yes' (expected a finite number)"},
        MalformedCase{"NaNLabel", "nan 0:1:1", "bad label 'nan' (expected a finite number)"},
        MalformedCase{"FieldRange", "1 2:1:1",
                      "bad field in '2:1:1' (fields are 0 to 1, numFields is 2)"},
        MalformedCase{"NegativeId", "1 0:-4:1",
                      "bad id in '0:-4:1' (expected an unsigned 64-bit integer)"},
        MalformedCase{"IdOverflow", "1 0:18446744073709551616:1",
                      "bad id in '0:18446744073709551616:1' (expected an unsigned 64-bit "
                      "integer)"},
        MalformedCase{"Value", "1 0:4:x", "bad value in '0:4:x' (expected a finite number)"},
        MalformedCase{"InfValue", "1 0:4:inf", "bad value in '0:4:inf' (expected a finite number)"},
        MalformedCase{"NoColon", "1 17", "bad entry '17' (expected field:id:value or id:value)"},
        MalformedCase{"FourParts", "1 0:1:2:3",
                      "bad entry '0:1:2:3' (expected field:id:value or id:value)"},
        MalformedCase{"Qid", "1 qid:abc 0:1:1", "bad query id 'qid:abc'"}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

TEST(LibsvmDatasetTest, LoadFromGzipFilesWithLimitAndMetrics) {
  const std::string a = WriteGz("a.svm.gz", "1 0:1:1\nbad\n0 0:2:1\n");
  const std::string b = WriteGz("b.svm.gz", "1 0:3:1\n0 0:4:1\n");
  SourceConfig src;
  src.format = DataFormat::kLibsvm;
  src.paths = {a, b};
  src.num_fields = 1;
  const DataMetrics& m = DataMetrics::For("libsvm-test");
  const double skipped_before = m.malformed_skipped->Value();
  const double bytes_before = m.bytes_read->Value();
  auto ds = LoadDataset(src, {.skip_malformed = true, .name = "libsvm-test"});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->size(), 4);
  EXPECT_EQ(m.malformed_skipped->Value() - skipped_before, 1);
  EXPECT_GT(m.bytes_read->Value() - bytes_before, 0);
  auto strict = LoadDataset(src, {.skip_malformed = false});
  ASSERT_FALSE(strict.ok());
  EXPECT_THAT(std::string(strict.status().message()), HasSubstr(a + ":2: bad label 'bad'"));
  src.limit = 3;
  auto limited = LoadDataset(src, {.skip_malformed = true});
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ((*limited)->size(), 3);
  src.paths = {a, "/nonexistent.svm"};
  src.limit = 0;
  EXPECT_EQ(LoadDataset(src, {.skip_malformed = true}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(LibsvmDatasetTest, ThroughTheReaderWithSharding) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += std::to_string(i % 2) + " 0:" + std::to_string(i) + ":1\n";
  auto ds = LibsvmDataset::Parse(text, "gen", 1, false);
  ASSERT_TRUE(ds.ok());
  std::vector<int> seen(50, 0);
  for (int rank = 0; rank < 2; ++rank) {
    BatchReader reader(*ds, {.batch_size = 8, .rank = rank, .world_size = 2, .seed = 3});
    reader.StartPass(0);
    while (const Batch* b = reader.Next()) {
      ASSERT_EQ(b->fields[0].offsets.size(), static_cast<size_t>(b->size) + 1);
      for (int i = 0; i < b->size; ++i) {
        ASSERT_EQ(b->fields[0].offsets[i + 1] - b->fields[0].offsets[i], 1);
        const uint64_t id = b->fields[0].ids[b->fields[0].offsets[i]];
        EXPECT_EQ(static_cast<int64_t>(id), b->example_ids[i]);
        EXPECT_EQ(b->targets[i], static_cast<float>(id % 2));
        ++seen[id];
      }
    }
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 50);
}

TEST(LoadDatasetTest, EmptySourcesAreRefused) {
  SourceConfig src;
  src.format = DataFormat::kLibsvm;
  src.paths = {WriteGz("empty.svm.gz", "# nothing but a comment\n\n")};
  auto ds = LoadDataset(src, {});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(src.paths[0]));
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("no examples"));
  src.paths = {WriteGz("allbad.svm.gz", "x\ny\n")};
  ds = LoadDataset(src, {.skip_malformed = true});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr("no examples (every record was malformed: 2 skipped)"));
  src.format = DataFormat::kTokens;
  src.sequence_length = 4;
  src.paths = {WriteGz("one-token.txt.gz", "7\n")};  // no (input, target) pair
  EXPECT_EQ(LoadDataset(src, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TokenDatasetTest, StreamWindowsOverlapByOne) {
  // 11 tokens -> 10 (input, target) pairs -> windows of 4: 4, 4, 2.
  auto ds = TokenDataset::Parse("0 1 2 3\n4 5 6\n# comment\n7 8 9 10\n", "ptb.txt",
                                {.sequence_length = 4, .vocab_size = 11});
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ((*ds)->size(), 3);
  EXPECT_EQ((*ds)->layout().sequence_length, 4);
  Batch b = FillAll(**ds);
  EXPECT_THAT(b.tokens, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0));
  EXPECT_THAT(b.token_targets, ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0));
  EXPECT_THAT(b.lengths, ElementsAre(4, 4, 2));
}

TEST(TokenDatasetTest, LinesTruncatedAndPadded) {
  auto ds = TokenDataset::Parse("5 6 7\n\n1 2 3 4 5 6\n9 8\n", "lines.txt",
                                {.sequence_length = 3, .mode = TokenMode::kLines});
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ((*ds)->size(), 3);
  Batch b = FillAll(**ds);
  EXPECT_THAT(b.tokens, ElementsAre(5, 6, 0, 1, 2, 3, 9, 0, 0));
  EXPECT_THAT(b.token_targets, ElementsAre(6, 7, 0, 2, 3, 4, 8, 0, 0));
  EXPECT_THAT(b.lengths, ElementsAre(2, 3, 1));
}

TEST(TokenDatasetTest, MalformedLines) {
  struct Case {
    TokenMode mode;
    const char* text;
    const char* error;
    int64_t kept;  // examples with skip_malformed
  } cases[] = {
      {TokenMode::kStream, "1 2 3\n4 x 5\n6 7\n",
       "f.txt:2: bad token 'x' (expected an integer in [0, 10), vocabSize is 10)", 2},
      {TokenMode::kStream, "1 2 3\n4 10 5\n6 7\n",
       "f.txt:2: bad token '10' (expected an integer in [0, 10), vocabSize is 10)", 2},
      {TokenMode::kLines, "1 2 3\n-1 2\n6 7\n",
       "f.txt:2: bad token '-1' (expected an integer in [0, 10), vocabSize is 10)", 2},
      {TokenMode::kLines, "1 2 3\n4\n6 7\n", "f.txt:2: a sequence needs at least 2 tokens, found 1",
       2},
  };
  for (const Case& c : cases) {
    TokenDataset::Options o{.sequence_length = 2, .vocab_size = 10, .mode = c.mode};
    auto ds = TokenDataset::Parse(c.text, "f.txt", o);
    ASSERT_FALSE(ds.ok()) << c.text;
    EXPECT_EQ(std::string(ds.status().message()), c.error);
    o.skip_malformed = true;
    ds = TokenDataset::Parse(c.text, "f.txt", o);
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ((*ds)->malformed_skipped(), 1);
    EXPECT_EQ((*ds)->size(), c.kept) << c.text;  // stream: 1 2 3 6 7 -> 4 pairs -> 2 windows
  }
}

TEST(TokenDatasetTest, LoadDatasetFromConfig) {
  const std::string path = WriteGz("tokens.txt.gz", "1 2 3 4 5 6 7 8 9\n");
  SourceConfig src;
  src.format = DataFormat::kTokens;
  src.paths = {path};
  src.sequence_length = 3;
  src.vocab_size = 100;
  auto ds = LoadDataset(src, {});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->size(), 3);  // 8 pairs in windows of 3: 3, 3, 2
  src.limit = 2;
  EXPECT_EQ((*LoadDataset(src, {}))->size(), 2);
}

}  // namespace
}  // namespace tandem::trainer::data
