#include "common/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

namespace tandem {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// The test's scratch folders, removed when the test program exits (they were left in /tmp).
struct ScratchDirs {
  ~ScratchDirs() {
    std::error_code ec;
    for (const std::string& d : dirs) fs::remove_all(d, ec);
  }
  std::vector<std::string> dirs;
};

std::string TestDir(const std::string& name) {
  static ScratchDirs scratch;
  const std::string dir = ::testing::TempDir() + "/ckpt-" + name + "-" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  scratch.dirs.push_back(dir);
  return dir;
}

std::string ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteRaw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A checkpoint with a few arrays of every kind; returns its path.
std::string WriteSample(const std::string& dir) {
  const std::string path = dir + "/sample.ckpt";
  auto w = CheckpointWriter::Open(path, {{"step", 500}, {"pass", 2}, {"model", "mlp"}});
  EXPECT_TRUE(w.ok()) << w.status();
  std::vector<float> weights(784 * 256);
  std::iota(weights.begin(), weights.end(), 0.0f);
  std::vector<float> bias(256, -0.5f);
  std::vector<uint64_t> keys = {1, 1ull << 63, 42};
  EXPECT_TRUE((*w)->Add("fc1.weight", {784, 256}, weights).ok());
  EXPECT_TRUE((*w)->Add("fc1.bias", {256}, bias).ok());
  EXPECT_TRUE((*w)->Add("emb.keys", {3}, keys).ok());
  EXPECT_TRUE((*w)->Add("empty", {0, 4}, std::vector<float>{}).ok());
  EXPECT_TRUE((*w)->Add("scalar", {}, std::vector<int64_t>{7}).ok());
  EXPECT_FALSE(fs::exists(path)) << "visible before Commit";
  EXPECT_TRUE((*w)->Commit().ok());
  return path;
}

TEST(CheckpointTest, RoundTrip) {
  const std::string dir = TestDir("roundtrip");
  const std::string path = WriteSample(dir);
  auto c = ReadCheckpoint(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metadata["step"], 500);
  EXPECT_EQ(c->metadata["model"], "mlp");
  ASSERT_EQ(c->arrays.size(), 5u);
  const CheckpointArray* w = c->Find("fc1.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{784, 256}));
  ASSERT_EQ(w->Floats().size(), 784u * 256u);
  for (size_t i = 0; i < w->Floats().size(); i += 997) EXPECT_EQ(w->Floats()[i], float(i));
  EXPECT_EQ(c->Find("fc1.bias")->Floats()[255], -0.5f);
  auto keys = c->Find("emb.keys")->As<uint64_t>();
  EXPECT_EQ(std::vector<uint64_t>(keys.begin(), keys.end()),
            (std::vector<uint64_t>{1, 1ull << 63, 42}));
  EXPECT_EQ(c->Find("empty")->num_elements, 0);
  EXPECT_EQ(c->Find("scalar")->As<int64_t>()[0], 7);
  EXPECT_EQ(c->Find("missing"), nullptr);
  // No temporary file is left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(CheckpointTest, EveryFlippedByteIsDetected) {
  const std::string dir = TestDir("flip");
  const std::string path = dir + "/small.ckpt";
  ASSERT_TRUE(WriteCheckpoint(path, {{"step", 1}},
                              std::vector<NamedFloats>{{"a", {3}, std::vector<float>{1, 2, 3}},
                                                       {"b", {2, 2}, std::vector<float>(4, 9)}})
                  .ok());
  const std::string good = ReadRaw(path);
  ASSERT_TRUE(ReadCheckpoint(path).ok());
  const std::string bad = dir + "/bad.ckpt";
  for (size_t i = 0; i < good.size(); ++i) {
    std::string copy = good;
    copy[i] = static_cast<char>(copy[i] ^ 0x01);
    WriteRaw(bad, copy);
    auto c = ReadCheckpoint(bad);
    ASSERT_FALSE(c.ok()) << "flipped byte " << i << " of " << good.size() << " was not detected";
    EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << c.status();
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(bad));
  }
}

TEST(CheckpointTest, EveryTruncationIsDetected) {
  const std::string dir = TestDir("cut");
  const std::string path = WriteSample(dir);
  const std::string good = ReadRaw(path);
  const std::string bad = dir + "/cut.ckpt";
  std::vector<size_t> cuts = {0, 1, 15, 16, 17, 40, good.size() / 2, good.size() - 33,
                              good.size() - 32, good.size() - 1};
  for (size_t cut : cuts) {
    WriteRaw(bad, good.substr(0, cut));
    auto c = ReadCheckpoint(bad);
    ASSERT_FALSE(c.ok()) << "cut at " << cut;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << c.status();
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(bad));
  }
  // Extra bytes appended are refused too.
  WriteRaw(bad, good + "x");
  EXPECT_EQ(ReadCheckpoint(bad).status().code(), absl::StatusCode::kDataLoss);
}

TEST(CheckpointTest, ClearMessages) {
  const std::string dir = TestDir("messages");
  const std::string path = WriteSample(dir);
  std::string bytes = ReadRaw(path);
  // Flip a byte inside fc1.weight's data.
  bytes[bytes.size() / 2] ^= 0x40;
  WriteRaw(path, bytes);
  auto c = ReadCheckpoint(path);
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("checkpoint " + path + ": array 'fc1.weight': data checksum mismatch"));
  WriteRaw(path, "hello, this is not a checkpoint at all, but long enough");
  EXPECT_THAT(std::string(ReadCheckpoint(path).status().message()),
              HasSubstr("not a Tandem checkpoint"));
  EXPECT_EQ(ReadCheckpoint(dir + "/absent.ckpt").status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, ReadIntoExistingBuffers) {
  const std::string dir = TestDir("readinto");
  const std::string path = WriteSample(dir);
  auto file = CheckpointFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata()["pass"], 2);
  ASSERT_EQ((*file)->arrays().size(), 5u);
  EXPECT_EQ((*file)->arrays()[0].name, "fc1.weight");
  std::vector<float> w(784 * 256, -1.0f);
  ASSERT_TRUE((*file)->ReadInto<float>("fc1.weight", w).ok());
  EXPECT_EQ(w[1000], 1000.0f);
  std::vector<uint64_t> keys(3);
  ASSERT_TRUE((*file)->ReadInto<uint64_t>("emb.keys", keys).ok());
  EXPECT_EQ(keys[1], 1ull << 63);
  std::vector<float> small(10);
  EXPECT_EQ((*file)->ReadInto<float>("fc1.weight", small).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*file)->ReadInto<float>("emb.keys", std::span<float>(small.data(), 3)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*file)->ReadInto<float>("nope", small).code(), absl::StatusCode::kNotFound);

  // Damaged data: Open checks the structure only, ReadInto catches the data.
  std::string bytes = ReadRaw(path);
  bytes[bytes.size() / 2] ^= 0x10;
  WriteRaw(path, bytes);
  auto damaged = CheckpointFile::Open(path);
  ASSERT_TRUE(damaged.ok()) << damaged.status();
  auto s = (*damaged)->ReadInto<float>("fc1.weight", w);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()), HasSubstr("array 'fc1.weight': data checksum mismatch"));
  EXPECT_TRUE((*damaged)->ReadInto<float>("fc1.bias", std::span<float>(w.data(), 256)).ok());
}

TEST(CheckpointTest, StreamingWriteAndChunkedRead) {
  const std::string dir = TestDir("stream");
  const std::string path = dir + "/shard.ckpt";
  // A pserver shard: 1000 rows of dim 8 written one row at a time, keys in one piece.
  std::vector<uint64_t> keys(1000);
  std::vector<float> rows(1000 * 8);
  for (size_t r = 0; r < 1000; ++r) {
    keys[r] = r * 7919;
    for (int k = 0; k < 8; ++k) rows[r * 8 + k] = static_cast<float>(r) + k * 0.125f;
  }
  {
    auto w = CheckpointWriter::Open(path, {{"shard", 3}});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Add("keys", {1000}, keys).ok());
    const int64_t shape[] = {1000, 8};
    ASSERT_TRUE((*w)->BeginArray("rows", DType::kFloat32, shape).ok());
    EXPECT_EQ((*w)->Commit().code(), absl::StatusCode::kFailedPrecondition);  // still open
    EXPECT_EQ((*w)->BeginArray("other", DType::kFloat32, shape).code(),
              absl::StatusCode::kFailedPrecondition);
    for (size_t r = 0; r < 1000; ++r) ASSERT_TRUE((*w)->AppendData(&rows[r * 8], 32).ok());
    EXPECT_EQ((*w)->AppendData(rows.data(), 4).code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE((*w)->EndArray().ok());
    ASSERT_TRUE((*w)->Commit().ok());
  }
  auto c = ReadCheckpoint(path);
  ASSERT_TRUE(c.ok()) << c.status();
  auto got = c->Find("rows")->Floats();
  EXPECT_EQ(std::vector<float>(got.begin(), got.end()), rows);

  auto file = CheckpointFile::Open(path);
  ASSERT_TRUE(file.ok());
  std::vector<float> streamed;
  int pieces = 0;
  auto collect = [&](const void* data, size_t bytes) {
    EXPECT_EQ(bytes % 4, 0u);
    const float* f = static_cast<const float*>(data);
    streamed.insert(streamed.end(), f, f + bytes / 4);
    ++pieces;
    return absl::OkStatus();
  };
  ASSERT_TRUE((*file)->ReadChunks(*(*file)->Find("rows"), 1000, collect).ok());
  EXPECT_EQ(streamed, rows);
  EXPECT_EQ(pieces, 32);  // 32000 bytes in pieces of 1000
  // A callback's error stops the read.
  EXPECT_EQ((*file)->ReadChunks(*(*file)->Find("rows"), 4096,
                                [](const void*, size_t) { return absl::CancelledError("stop"); })
                .code(),
            absl::StatusCode::kCancelled);
  // Corruption is reported after the pieces.
  std::string bytes = ReadRaw(path);
  bytes[bytes.size() - 1000] ^= 0x01;
  WriteRaw(path, bytes);
  auto damaged = CheckpointFile::Open(path);
  ASSERT_TRUE(damaged.ok());
  streamed.clear();
  EXPECT_EQ((*damaged)->ReadChunks(*(*damaged)->Find("rows"), 1 << 20, collect).code(),
            absl::StatusCode::kDataLoss);
}

TEST(CheckpointTest, EndingAnArrayShortFailsTheWriter) {
  const std::string dir = TestDir("short");
  const std::string path = dir + "/short.ckpt";
  auto w = CheckpointWriter::Open(path, {});
  ASSERT_TRUE(w.ok());
  const int64_t shape[] = {4};
  ASSERT_TRUE((*w)->BeginArray("a", DType::kFloat32, shape).ok());
  const float two[] = {1, 2};
  ASSERT_TRUE((*w)->AppendData(two, sizeof(two)).ok());
  EXPECT_EQ((*w)->EndArray().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE((*w)->Commit().ok());
  w->reset();
  EXPECT_FALSE(fs::exists(path));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 0);
}

TEST(CheckpointTest, CommitReplacesAtomicallyAndAbortLeavesOldFile) {
  const std::string dir = TestDir("replace");
  const std::string path = dir + "/x.ckpt";
  ASSERT_TRUE(WriteCheckpoint(path, {{"v", 1}}, {}).ok());
  {
    auto w = CheckpointWriter::Open(path, {{"v", 2}});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Add("a", {2}, std::vector<float>{1, 2}).ok());
    // Destroyed without Commit: the old checkpoint stays, the temporary file goes.
  }
  auto c = ReadCheckpoint(path);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->metadata["v"], 1);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  ASSERT_TRUE(WriteCheckpoint(path, {{"v", 3}}, {}).ok());
  EXPECT_EQ(ReadCheckpoint(path)->metadata["v"], 3);
}

TEST(CheckpointTest, WriterRejectsBadArrays) {
  const std::string dir = TestDir("reject");
  auto w = CheckpointWriter::Open(dir + "/r.ckpt", nullptr);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->Add("a", {2, 2}, std::vector<float>{1, 2, 3}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*w)->Add("", {1}, std::vector<float>{1}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*w)->Add("a", {1}, std::vector<float>{1}).ok());
  EXPECT_EQ((*w)->Add("a", {1}, std::vector<float>{1}).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE((*w)->Commit().ok());
  EXPECT_EQ(ReadCheckpoint(dir + "/r.ckpt")->arrays.size(), 1u);
  EXPECT_EQ(CheckpointWriter::Open("/nonexistent-dir/x.ckpt", {}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, NumberedCheckpointsListAndPrune) {
  const std::string dir = TestDir("numbered");
  for (int64_t step : {500, 1500, 1000, 2000}) {
    ASSERT_TRUE(WriteCheckpoint(NumberedCheckpointPath(dir, "trainer-0", step), {{"step", step}}, {})
                    .ok());
  }
  WriteRaw(dir + "/trainer-0-000000003000.ckpt.tmp-1-0", "partial");  // a crashed writer's file
  WriteRaw(dir + "/trainer-1-000000009000.ckpt", "other rank");
  auto list = ListNumberedCheckpoints(dir, "trainer-0");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ(list->front().step, 500);
  EXPECT_EQ(list->back().step, 2000);
  EXPECT_EQ(list->back().path, dir + "/trainer-0-000000002000.ckpt");
  ASSERT_TRUE(PruneNumberedCheckpoints(dir, "trainer-0", 2).ok());
  list = ListNumberedCheckpoints(dir, "trainer-0");
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ(list->front().step, 1500);
  EXPECT_TRUE(fs::exists(dir + "/trainer-1-000000009000.ckpt"));
  EXPECT_TRUE(ListNumberedCheckpoints(dir + "/absent", "x")->empty());
}

}  // namespace
}  // namespace tandem
