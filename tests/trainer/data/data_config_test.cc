#include "trainer/data/data_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_join.h"

namespace tandem::trainer::data {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TempFile(const std::string& name) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << "x";
  return path;
}

TEST(DataConfigTest, EmptyMeansFashionMnistDefaults) {
  auto c = ParseDataConfig(json(nullptr), {.check_files = false});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train.format, DataFormat::kIdx);
  EXPECT_EQ(c->train.images, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
  EXPECT_EQ(c->train.labels, "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
  ASSERT_TRUE(c->test.has_value());
  EXPECT_EQ(c->test->images, "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(c->test->labels, "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(c->batch_size, 64);
  EXPECT_TRUE(c->shuffle);
  EXPECT_EQ(c->seed, 1u);
  EXPECT_EQ(c->prefetch, 2);
  EXPECT_FALSE(c->skip_malformed);
}

TEST(DataConfigTest, FullIdxConfig) {
  const std::string img = TempFile("img.gz"), lab = TempFile("lab.gz");
  json j = {{"train", {{"format", "idx"}, {"images", img}, {"labels", lab}, {"limit", 100}}},
            {"test", {{"images", img}, {"labels", lab}}},
            {"batchSize", 128},
            {"shuffle", false},
            {"seed", 42},
            {"prefetch", 0},
            {"skipMalformed", true}};
  auto c = ParseDataConfig(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train.images, img);
  EXPECT_EQ(c->train.limit, 100);
  ASSERT_TRUE(c->test.has_value());
  EXPECT_EQ(c->test->labels, lab);
  EXPECT_EQ(c->batch_size, 128);
  EXPECT_FALSE(c->shuffle);
  EXPECT_EQ(c->seed, 42u);
  EXPECT_EQ(c->prefetch, 0);
  EXPECT_TRUE(c->skip_malformed);
}

TEST(DataConfigTest, LibsvmAndTokens) {
  const std::string a = TempFile("a.svm"), b = TempFile("b.svm");
  auto c = ParseDataConfig(
      json{{"train", {{"format", "libsvm"}, {"path", {a, b}}, {"numFields", 26}}},
           {"test", {{"format", "libsvm"}, {"path", a}, {"numFields", 26}}}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train.format, DataFormat::kLibsvm);
  EXPECT_THAT(c->train.paths, ElementsAre(a, b));
  EXPECT_EQ(c->train.num_fields, 26);
  auto t = ParseDataConfig(json{
      {"train",
       {{"format", "tokens"}, {"path", a}, {"sequenceLength", 35}, {"vocabSize", 10000},
        {"mode", "lines"}}}});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->train.format, DataFormat::kTokens);
  EXPECT_EQ(t->train.sequence_length, 35);
  EXPECT_EQ(t->train.vocab_size, 10000);
  EXPECT_EQ(t->train.token_mode, TokenMode::kLines);
  EXPECT_FALSE(t->test.has_value());  // no implicit test set outside the Fashion-MNIST default
}

struct ErrorCase {
  const char* name;
  const char* json_text;
  std::vector<std::string> errors;  // exact, in order
};

class DataConfigErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(DataConfigErrorTest, ReportsEveryProblemWithItsPath) {
  const ErrorCase& c = GetParam();
  DataConfig config;
  std::vector<std::string> errors =
      ParseDataConfig(json::parse(c.json_text), {.check_files = true}, &config);
  EXPECT_EQ(errors, c.errors) << absl::StrJoin(errors, "\n");
  auto status = ParseDataConfig(json::parse(c.json_text));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.status().message()), absl::StrJoin(c.errors, "\n"));
}

INSTANTIATE_TEST_SUITE_P(
    Table, DataConfigErrorTest,
    ::testing::Values(
        ErrorCase{"NotObject", R"([1,2])", {"spec.data: must be an object, got array [1,2]"}},
        ErrorCase{"MissingFile",
                  R"({"train": {"images": "/x.gz", "labels": "/y.gz"}, "test": null})",
                  {"spec.data.train.images: file not found: /x.gz",
                   "spec.data.train.labels: file not found: /y.gz"}},
        ErrorCase{"BadScalars",
                  R"({"batchSize": -3, "prefetch": "two", "seed": 1.5, "shuffle": 1,
                      "skipMalformed": "yes", "train": {"format": "tokens", "path": "/t",
                      "sequenceLength": 0}})",
                  {"spec.data.train.path: file not found: /t",
                   "spec.data.train.sequenceLength: must be > 0, got 0",
                   "spec.data.batchSize: must be > 0, got -3",
                   "spec.data.prefetch: must be an integer, got string \"two\"",
                   "spec.data.seed: must be an integer, got number 1.5",
                   "spec.data.shuffle: must be true or false, got integer 1",
                   "spec.data.skipMalformed: must be true or false, got string \"yes\""}},
        ErrorCase{"UnknownFieldsAndFormat",
                  R"({"batchsize": 3, "train": {"format": "csv"}})",
                  {"spec.data.batchsize: unknown field (known: train, test, batchSize, shuffle, "
                   "seed, prefetch, skipMalformed, bucketByLength, batchTokens)",
                   "spec.data.train.format: unknown format \"csv\" (known: idx, libsvm, tokens, synthetic-ctr, parallel-text)"}},
        ErrorCase{"LibsvmFields",
                  R"({"train": {"format": "libsvm", "numFields": 0, "path": [], "images": "a"}})",
                  {"spec.data.train.images: unknown field (known: format, path, limit, numFields, stream)",
                   "spec.data.train.path: must list at least one file",
                   "spec.data.train.numFields: must be > 0, got 0"}},
        ErrorCase{"TokensNeedsLength",
                  R"({"train": {"format": "tokens", "path": ["/a", 3], "mode": "words",
                                "vocabSize": -1, "limit": -2}})",
                  {"spec.data.train.path[0]: file not found: /a",
                   "spec.data.train.path[1]: must be a non-empty string, got integer 3",
                   "spec.data.train.sequenceLength: required for format tokens",
                   "spec.data.train.vocabSize: must be > 0, got -1",
                   "spec.data.train.mode: unknown mode \"words\" (known: stream, lines)",
                   "spec.data.train.limit: must be >= 0, got -2"}},
        ErrorCase{"FormatMismatch",
                  R"({"train": {"format": "libsvm", "path": "/a"},
                      "test": {"format": "idx", "images": "/i", "labels": "/l"}})",
                  {"spec.data.train.path: file not found: /a",
                   "spec.data.test.images: file not found: /i",
                   "spec.data.test.labels: file not found: /l",
                   "spec.data.test.format: must match spec.data.train.format (libsvm), got idx"}},
        ErrorCase{"StreamFields",
                  R"({"train": {"format": "libsvm", "stream": {"dir": "/no/such/dir",
                      "pollSeconds": 0, "closeIdleSeconds": -1, "split": "hash",
                      "endMarker": "a/b", "maxSteps": -5, "maxHours": "1", "ledger": 1,
                      "rollingEval": {"windowRecords": -1, "intervalSteps": 0, "every": 3},
                      "follow": true}}})",
                  {"spec.data.train.stream.follow: unknown field (known: dir, pattern, pollSeconds, "
                   "closeIdleSeconds, endMarker, split, maxSteps, maxHours, rollingEval, ledger)",
                   "spec.data.train.stream.dir: not a directory: /no/such/dir",
                   "spec.data.train.stream.endMarker: must be a file name in dir, without '/', "
                   "got \"a/b\"",
                   "spec.data.train.stream.pollSeconds: must be in (0, 3600], got 0",
                   "spec.data.train.stream.closeIdleSeconds: must be in [0, 604800], got -1",
                   "spec.data.train.stream.maxHours: must be a number, got string \"1\"",
                   "spec.data.train.stream.maxSteps: must be >= 0, got -5",
                   "spec.data.train.stream.split: unknown split \"hash\" (known: record, file)",
                   "spec.data.train.stream.ledger: must be true or false, got integer 1",
                   "spec.data.train.stream.rollingEval.every: unknown field (known: windowRecords, "
                   "intervalSteps)",
                   "spec.data.train.stream.rollingEval.windowRecords: must be >= 0, got -1",
                   "spec.data.train.stream.rollingEval.intervalSteps: must be > 0, got 0"}},
        ErrorCase{"StreamConflicts",
                  R"({"train": {"format": "libsvm", "path": "/a", "stream": {"dir": "/tmp"}},
                      "test": {"format": "libsvm", "stream": {"dir": "/tmp"}}})",
                  {"spec.data.train.path: a stream source takes stream.dir, not path",
                   "spec.data.test.stream: only the training source can be a stream (the rolling "
                   "evaluation scores the stream itself: stream.rollingEval)"}},
        ErrorCase{"StreamWithTestAndLimit",
                  R"({"train": {"format": "libsvm", "limit": 5, "stream": {}},
                      "test": {"format": "libsvm", "path": "/a"}})",
                  {"spec.data.train.limit: not supported for a stream (use stream.maxSteps)",
                   "spec.data.test.path: file not found: /a"}},
        ErrorCase{"StreamNeedsDir",
                  R"({"train": {"format": "libsvm", "stream": {"pattern": "*.svm"}},
                      "test": {"format": "libsvm", "path": "/a"}})",
                  {"spec.data.train.stream.dir: required for a stream",
                   "spec.data.test.path: file not found: /a",
                   "spec.data.test: a stream has no passes to evaluate after: leave test out and "
                   "use train.stream.rollingEval (scores every record before it is trained on)"}},
        ErrorCase{"WrongTypes",
                  R"({"train": "mnist", "test": {"images": 5, "labels": ""}})",
                  {"spec.data.train: must be an object, got string \"mnist\"",
                   "spec.data.test.images: must be a string, got integer 5",
                   "spec.data.test.labels: must not be empty"}}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

TEST(DataConfigTest, StreamSourceWithDefaults) {
  auto config = ParseDataConfig(json::parse(R"({"train": {"format": "libsvm", "numFields": 26,
      "stream": {"dir": "/tmp", "split": "file", "maxSteps": 1000, "maxHours": 1.5,
                 "rollingEval": {"windowRecords": 500}}}})"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->train.stream.has_value());
  const StreamConfig& s = *config->train.stream;
  EXPECT_EQ(s.dir, "/tmp");
  EXPECT_EQ(s.pattern, "*");
  EXPECT_EQ(s.poll_seconds, 1);
  EXPECT_EQ(s.close_idle_seconds, 0);
  EXPECT_EQ(s.end_marker, "");
  EXPECT_EQ(s.split, StreamSplit::kFile);
  EXPECT_EQ(s.max_steps, 1000);
  EXPECT_EQ(s.max_hours, 1.5);
  EXPECT_EQ(s.eval_window, 500);
  EXPECT_EQ(s.eval_interval_steps, 100);
  EXPECT_FALSE(s.ledger);
  EXPECT_TRUE(config->train.paths.empty());
  EXPECT_FALSE(config->test.has_value());
  // The operator cannot see the pods' directories: no check without check_files.
  auto remote = ParseDataConfig(
      json::parse(R"({"train": {"format": "libsvm", "stream": {"dir": "/mnt/clicks"}}})"),
      {.check_files = false});
  EXPECT_TRUE(remote.ok()) << remote.status();
}

TEST(DataConfigTest, CustomPathPrefixAndNoFileCheck) {
  DataConfig config;
  auto errors = ParseDataConfig(json{{"batchSize", 0}, {"train", {{"images", "/nope"}}}},
                                {.path = "data", .check_files = false}, &config);
  EXPECT_THAT(errors, ElementsAre("data.batchSize: must be > 0, got 0"));
}

}  // namespace
}  // namespace tandem::trainer::data
