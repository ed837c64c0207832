// StreamDriver: the checkpointed position is the committed one (a batch read but not applied is
// read again after a restore), the ledger is cut back to the restored step, the rolling
// evaluation merges every rank's window, the stop rules, and the tandem_trainer_stream_* metrics
// pass `promtool check metrics`.
#include "trainer/engine/stream_driver.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <cmath>
#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/metrics.h"
#include "tests/common/test_util.h"

namespace tandem::trainer {
namespace {

namespace fs = std::filesystem;

class StreamDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            absl::StrCat("stream_driver_test_", ::getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "in");
  }
  void TearDown() override { fs::remove_all(root_); }

  data::SourceConfig Source() const {
    data::SourceConfig s;
    s.format = data::DataFormat::kLibsvm;
    s.num_fields = 1;
    s.stream.emplace();
    s.stream->dir = (root_ / "in").string();
    s.stream->poll_seconds = 0.01;
    s.stream->end_marker = "_END";
    s.stream->ledger = true;
    s.stream->eval_window = 6;
    s.stream->eval_interval_steps = 2;
    return s;
  }
  StreamDriverOptions Options(int rank = 0, int world = 1) const {
    return {.job = "stream-driver-test", .rank = rank, .world_size = world, .batch_size = 4,
            .checkpoint_dir = (root_ / absl::StrCat("ckpt-", rank)).string()};
  }
  void WriteRecords(const std::string& name, int first, int count) {
    std::ofstream out(root_ / "in" / name, std::ios::app);
    for (int i = first; i < first + count; ++i) out << (i % 2) << " qid:" << i << " 0:" << i << ":1\n";
  }
  static std::vector<int64_t> Qids(const data::Batch& b) {
    return std::vector<int64_t>(b.query_ids.begin(), b.query_ids.begin() + b.size);
  }

  fs::path root_;
};

TEST_F(StreamDriverTest, CheckpointHoldsTheCommittedPositionAndTheLedgerIsCutBack) {
  WriteRecords("a.svm", 0, 10);
  nlohmann::json meta;
  {
    StreamDriver d(Source(), Options());
    ASSERT_TRUE(d.Restore(std::nullopt, 0).ok());
    auto b = d.NextBatch(nullptr);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(Qids(**b), (std::vector<int64_t>{0, 1, 2, 3}));
    ASSERT_TRUE(d.BeforeUpdate(1).ok());
    d.Commit();  // step 1 applied
    b = d.NextBatch(nullptr);
    EXPECT_EQ(Qids(**b), (std::vector<int64_t>{4, 5, 6, 7}));
    ASSERT_TRUE(d.BeforeUpdate(2).ok());  // step 2 logged, then the process dies before its update
    meta = d.CheckpointMetadata();        // what a checkpoint taken now would hold
    EXPECT_EQ(meta["stream"]["records"], 4);
  }
  std::ifstream ledger_in(root_ / "ckpt-0" / "stream-ledger-rank0.tsv");
  std::stringstream before;
  before << ledger_in.rdbuf();
  EXPECT_NE(before.str().find("2\ta.svm\t7\t7\n"), std::string::npos) << before.str();

  StreamDriver d(Source(), Options());
  ASSERT_TRUE(d.Restore(meta, 1).ok());
  std::ifstream in(root_ / "ckpt-0" / "stream-ledger-rank0.tsv");
  std::stringstream after;
  after << in.rdbuf();
  EXPECT_EQ(after.str(), "1\ta.svm\t0\t0\n1\ta.svm\t1\t1\n1\ta.svm\t2\t2\n1\ta.svm\t3\t3\n");
  auto b = d.NextBatch(nullptr);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Qids(**b), (std::vector<int64_t>{4, 5, 6, 7}));  // the step lost is trained again

  // A checkpoint of a job that was not a stream cannot be resumed as one.
  StreamDriver other(Source(), Options());
  auto refused = other.Restore(nlohmann::json{{"step", 3}}, 3);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("no stream position"), std::string::npos) << refused;
}

TEST_F(StreamDriverTest, ShortBatchesAfterThePollAndFinishedAtTheEndMarker) {
  WriteRecords("a.svm", 0, 6);
  StreamDriver d(Source(), Options());
  ASSERT_TRUE(d.Restore(std::nullopt, 0).ok());
  EXPECT_EQ((*d.NextBatch(nullptr))->size, 4);
  EXPECT_EQ((*d.NextBatch(nullptr))->size, 2);  // waited pollSeconds, then the 2 there are
  EXPECT_EQ((*d.NextBatch(nullptr))->size, 0);
  EXPECT_FALSE(d.finished());
  std::ofstream(root_ / "in" / "_END").close();
  EXPECT_EQ((*d.NextBatch(nullptr))->size, 0);
  EXPECT_TRUE(d.finished());
}

TEST_F(StreamDriverTest, RollingEvaluationMergesTheRanksWindows) {
  // Rank 0 scores positives high, rank 1 negatives low: together the ranking is perfect.
  WriteRecords("a.svm", 0, 8);
  StreamDriver r0(Source(), Options(0, 2)), r1(Source(), Options(1, 2));
  ASSERT_TRUE(r0.Restore(std::nullopt, 0).ok());
  ASSERT_TRUE(r1.Restore(std::nullopt, 0).ok());
  const data::Batch* b0 = *r0.NextBatch(nullptr);  // records 0, 2, 4, 6: labels 0
  const data::Batch* b1 = *r1.NextBatch(nullptr);  // records 1, 3, 5, 7: labels 1
  ASSERT_EQ(b0->size, 4);
  ASSERT_EQ(b1->size, 4);
  r0.Score(std::vector<float>{-2, -3, -1, -4});
  r1.Score(std::vector<float>{2, 3, 1, 4});
  std::vector<double> s0, s1;
  r0.AppendEvalState(&s0);
  r1.AppendEvalState(&s1);
  ASSERT_EQ(s0.size(), s1.size());
  for (size_t i = 0; i < s0.size(); ++i) s0[i] += s1[i];
  const StreamDriver::Eval e = r0.Evaluate(s0);
  EXPECT_EQ(e.records, 8);
  ASSERT_TRUE(e.has_auc);
  EXPECT_DOUBLE_EQ(e.auc, 1.0);
  double loss = 0;
  for (double z : {2.0, 3.0, 1.0, 4.0}) loss += 2 * std::log1p(std::exp(-z));
  EXPECT_NEAR(e.loss, loss / 8, 1e-6);
  // The window keeps the newest eval_window (6) records only.
  r0.Score(std::vector<float>{5, 5, 5, 5});
  std::vector<double> s;
  r0.AppendEvalState(&s);
  EXPECT_EQ(s[1], 6);
  EXPECT_TRUE(r0.EvalDue(4));
  EXPECT_FALSE(r0.EvalDue(3));
}

TEST_F(StreamDriverTest, StopRulesAndMetricsArePromtoolClean) {
  data::SourceConfig src = Source();
  src.stream->max_steps = 5;
  src.stream->max_hours = 1;
  WriteRecords("a.svm", 0, 3);
  StreamDriverOptions o = Options();
  o.job = "stream-metrics-test";  // counters of its own (the other tests share the registry)
  StreamDriver d(src, o);
  ASSERT_TRUE(d.Restore(nlohmann::json{{"stream", data::StreamPosition{}.ToJson()},
                                       {"streamSeconds", 3599.0}},
                        0)
                  .ok());
  EXPECT_FALSE(d.StepLimitReached(4));
  EXPECT_TRUE(d.StepLimitReached(5));
  // maxHours counts the training time of earlier processes (from the checkpoint).
  for (int i = 0; i < 300 && !d.TimeLimitReached(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(d.TimeLimitReached());
  ASSERT_TRUE(d.NextBatch(nullptr).ok());
  auto lag = d.UpdateLag();
  ASSERT_TRUE(lag.ok());
  EXPECT_EQ(lag->bytes, 0);
  const std::string text = metrics::Registry::Default().Serialize();
  EXPECT_NE(text.find("tandem_trainer_stream_records_total{job=\"stream-metrics-test\"} 3"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tandem_trainer_stream_lag_bytes"), std::string::npos);
  const std::string path = (root_ / "scrape.prom").string();
  std::ofstream(path) << text;
  auto which = testing::RunCommand("command -v promtool");
  if (which.exit_code != 0) GTEST_FAIL() << "promtool is not installed (package prometheus)";
  auto check = testing::RunCommand("promtool check metrics < " + path);
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << text;
}

}  // namespace
}  // namespace tandem::trainer
