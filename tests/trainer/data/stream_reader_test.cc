// StreamReader: following a directory whose files appear and grow (partial last lines never
// parsed), the closing rules (a later file, the end marker, idle time), the disjoint record and
// file splits, restoring a saved position (nothing read twice, nothing skipped), and the errors
// and counted skips (a file that shrinks, one that disappears, malformed records), the lag.
#include "trainer/data/stream_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tandem::trainer::data {
namespace {

namespace fs = std::filesystem;

// "label qid:<id> 0:<id>:1": a record whose qid is its id.
std::string Rec(int64_t id) { return absl::StrCat(id % 2, " qid:", id, " 0:", id * 7 + 1, ":1\n"); }

class StreamReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("stream_reader_test_", ::getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Append(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::app | std::ios::binary) << text;
  }
  StreamReaderOptions Options(int rank = 0, int world = 1) {
    StreamReaderOptions o;
    o.config.dir = dir_.string();
    o.config.pattern = "*.svm";
    o.config.end_marker = "_END";
    o.num_fields = 1;
    o.rank = rank;
    o.world_size = world;
    o.now = [this] { return now_; };
    return o;
  }
  // Reads everything available now, in batches of `cap`; returns the qids.
  std::vector<int64_t> Drain(StreamReader& r, int cap = 3) {
    std::vector<int64_t> out;
    Batch b;
    b.Allocate(r.layout(), cap);
    while (true) {
      b.Clear();
      auto n = r.Read(&b);
      EXPECT_TRUE(n.ok()) << n.status();
      if (!n.ok() || *n == 0) break;
      EXPECT_EQ(*n, b.size);
      for (int i = 0; i < b.size; ++i) out.push_back(b.query_ids[i]);
    }
    return out;
  }

  fs::path dir_;
  double now_ = 1000;
};

TEST_F(StreamReaderTest, FollowsGrowingFilesAndNeverParsesAPartialLine) {
  StreamReader r(Options());
  EXPECT_TRUE(Drain(r).empty());  // nothing yet
  Append("a.svm", Rec(0) + Rec(1) + "0 qid:2 0:1");  // record 2 half written
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(r.position().file, "a.svm");
  EXPECT_EQ(r.position().offset, static_cast<int64_t>((Rec(0) + Rec(1)).size()));
  Append("a.svm", "5:1\n");  // the rest of record 2: "0 qid:2 0:15:1"
  Append("a.svm", Rec(3));
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{2, 3}));
  // Files that appear later, and comments and blank lines, which are not records.
  Append("b.svm", "# header\n\n" + Rec(4));
  Append("ignored.txt", Rec(99));
  Append(".c.svm.tmp", Rec(98));
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{4}));
  EXPECT_EQ(r.position().file, "b.svm");
  EXPECT_EQ(r.position().files, 1);  // a.svm closed by b.svm
  EXPECT_EQ(r.position().records, 5);
  EXPECT_FALSE(r.finished());
}

TEST_F(StreamReaderTest, ClosedFileGivesItsUnterminatedLastRecord) {
  Append("a.svm", Rec(0) + "1 qid:1 0:3:1");  // no newline at the end
  StreamReader r(Options());
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{0}));  // open: the tail may still grow
  Append("b.svm", Rec(2));                          // a later file closes a.svm
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{1, 2}));
  fs::path marker = dir_ / "_END";
  std::ofstream(marker).close();
  EXPECT_TRUE(Drain(r).empty());
  EXPECT_TRUE(r.finished());
  EXPECT_EQ(r.position().files, 2);
}

TEST_F(StreamReaderTest, IdleTimeClosesTheLastFile) {
  StreamReaderOptions o = Options();
  o.config.close_idle_seconds = 30;
  Append("a.svm", Rec(0) + "1 qid:1 0:3:1");
  StreamReader r(o);
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{0}));
  now_ += 29;
  EXPECT_TRUE(Drain(r).empty());
  now_ += 2;  // 31 s without growth
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{1}));
  EXPECT_TRUE(r.position().closed);
  Append("a.svm", Rec(5));  // appended after it closed: never read (documented)
  Append("b.svm", Rec(2));
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{2}));
}

// Every split gives each record to exactly one of W readers, and all of them together read all.
TEST_F(StreamReaderTest, SplitsAreDisjointAndComplete) {
  int64_t id = 0;
  for (int f = 0; f < 7; ++f) {
    std::string text;
    for (int k = 0; k < 5 + f; ++k) text += Rec(id++);
    Append(absl::StrCat("part-", f, ".svm"), text);
  }
  std::ofstream(dir_ / "_END").close();
  for (StreamSplit split : {StreamSplit::kRecord, StreamSplit::kFile}) {
    std::multiset<int64_t> all;
    std::vector<size_t> sizes;
    for (int rank = 0; rank < 3; ++rank) {
      StreamReaderOptions o = Options(rank, 3);
      o.config.split = split;
      StreamReader r(o);
      auto got = Drain(r, 4);
      EXPECT_TRUE(r.finished());
      sizes.push_back(got.size());
      all.insert(got.begin(), got.end());
    }
    ASSERT_EQ(all.size(), static_cast<size_t>(id));
    for (int64_t i = 0; i < id; ++i) EXPECT_EQ(all.count(i), 1u) << i;
    if (split == StreamSplit::kRecord) {
      // Record split: each file deals its records round-robin, so the parts differ by little.
      for (size_t s : sizes) EXPECT_NEAR(static_cast<double>(s), id / 3.0, 7);
    }
  }
}

TEST_F(StreamReaderTest, RestoredPositionContinuesWithTheNextRecord) {
  Append("a.svm", Rec(0) + Rec(1) + Rec(2) + Rec(3));
  Append("b.svm", Rec(4) + Rec(5) + "1 qid:6 0:");
  StreamPosition saved;
  std::vector<int64_t> first;
  {
    StreamReader r(Options());
    Batch b;
    b.Allocate(r.layout(), 3);
    b.Clear();
    ASSERT_EQ(*r.Read(&b), 3);
    for (int i = 0; i < 3; ++i) first.push_back(b.query_ids[i]);
    saved = r.position();
    b.Clear();
    ASSERT_EQ(*r.Read(&b), 3);  // read but never committed: read again after the restore
  }
  // Through JSON, as in a checkpoint.
  auto back = StreamPosition::FromJson(nlohmann::json::parse(saved.ToJson().dump()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, saved);
  StreamReader r(Options());
  r.Restore(*back);
  Append("b.svm", "12:1\n");
  std::vector<int64_t> rest = Drain(r);
  EXPECT_EQ(first, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(rest, (std::vector<int64_t>{3, 4, 5, 6}));
  EXPECT_EQ(r.position().records, 7);

  EXPECT_FALSE(StreamPosition::FromJson(nlohmann::json{{"file", "a"}}).ok());
  auto bad = StreamPosition::FromJson(
      nlohmann::json{{"file", "a"}, {"offset", -1}, {"ordinal", 0}, {"closed", false},
                     {"records", 0}, {"bytes", 0}, {"files", 0}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("offset"), std::string::npos) << bad.status();
}

TEST_F(StreamReaderTest, AFileThatShrinksIsAnErrorNamingIt) {
  Append("a.svm", Rec(0) + Rec(1));
  StreamReader r(Options());
  EXPECT_EQ(Drain(r).size(), 2u);
  fs::resize_file(dir_ / "a.svm", 3);
  Batch b;
  b.Allocate(r.layout(), 3);
  b.Clear();
  auto n = r.Read(&b);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(n.status().message().find("a.svm"), std::string::npos) << n.status();
}

TEST_F(StreamReaderTest, DeletedFilesAreReadThroughTheOpenFileOrCountedAsLost) {
  Append("a.svm", Rec(0) + Rec(1));
  Append("b.svm", Rec(2));
  StreamReaderOptions o = Options();
  StreamPosition saved;
  {
    StreamReader r(o);
    Batch b;
    b.Allocate(r.layout(), 1);
    b.Clear();
    ASSERT_EQ(*r.Read(&b), 1);
    saved = r.position();
    // Deleted while open (rotation): the rest of it is still read.
    fs::remove(dir_ / "a.svm");
    EXPECT_EQ(Drain(r), (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(r.files_lost(), 0);
  }
  // A restart whose saved file is gone before it was read to its end: skipped and counted.
  StreamReader r(o);
  r.Restore(saved);
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{2}));
  EXPECT_EQ(r.files_lost(), 1);
}

TEST_F(StreamReaderTest, MalformedRecordsFailNamingTheFileOrAreSkippedAndCounted) {
  Append("a.svm", Rec(0) + "1 qid:1 0:bad:1\n" + Rec(2));
  {
    StreamReader r(Options());
    Batch b;
    b.Allocate(r.layout(), 8);
    b.Clear();
    auto n = r.Read(&b);
    ASSERT_FALSE(n.ok());
    EXPECT_NE(n.status().message().find("a.svm: record 2"), std::string::npos) << n.status();
    EXPECT_NE(n.status().message().find("bad id"), std::string::npos) << n.status();
  }
  StreamReaderOptions o = Options();
  o.skip_malformed = true;
  StreamReader r(o);
  EXPECT_EQ(Drain(r), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(r.malformed_skipped(), 1);
}

TEST_F(StreamReaderTest, LagCountsUnreadBytesAndTheirAge) {
  Append("a.svm", Rec(0) + Rec(1));
  StreamReader r(Options());
  EXPECT_EQ(Drain(r).size(), 2u);
  auto lag = r.MeasureLag();
  ASSERT_TRUE(lag.ok());
  EXPECT_EQ(lag->bytes, 0);
  EXPECT_EQ(lag->seconds, 0);
  Append("b.svm", Rec(2) + Rec(3));
  lag = r.MeasureLag();  // head first seen now
  EXPECT_EQ(lag->bytes, static_cast<int64_t>((Rec(2) + Rec(3)).size()));
  now_ += 5;
  lag = r.MeasureLag();
  EXPECT_DOUBLE_EQ(lag->seconds, 5);
  EXPECT_EQ(Drain(r).size(), 2u);
  lag = r.MeasureLag();
  EXPECT_EQ(lag->bytes, 0);
  EXPECT_EQ(lag->seconds, 0);
  // Within a growing file the crossing time is interpolated between two observations: b.svm
  // grew by 4 records between t and t+10; a reader 2 records into them is 5 s behind.
  const double t = now_;
  Append("b.svm", Rec(4) + Rec(5) + Rec(6) + Rec(7));
  now_ = t + 10;
  lag = r.MeasureLag();
  Batch b;
  b.Allocate(r.layout(), 2);
  b.Clear();
  ASSERT_EQ(*r.Read(&b), 2);
  lag = r.MeasureLag();
  EXPECT_EQ(lag->bytes, static_cast<int64_t>((Rec(6) + Rec(7)).size()));
  const double expected =
      10 - 10.0 * static_cast<double>((Rec(4) + Rec(5)).size()) / (Rec(4) + Rec(5) + Rec(6) + Rec(7)).size();
  EXPECT_NEAR(lag->seconds, expected, 1e-9);
}

}  // namespace
}  // namespace tandem::trainer::data
