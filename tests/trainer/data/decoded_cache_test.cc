#include "trainer/data/decoded_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "trainer/data/idx_dataset.h"

namespace tandem::trainer::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A fresh folder per test: the sources and the cache.
class DecodedCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           (std::string("decoded-cache-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    cache_ = (dir_ / "cache").string();
  }

  std::string WriteGzip(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
    return path;
  }

  static std::string ReadRaw(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static void WriteRaw(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }

  // Every size kept, for small test files.
  DecodedCacheOptions Options() const { return {.dir = cache_, .min_bytes = 0}; }

  fs::path dir_;
  std::string cache_;
};

std::string Pattern(size_t n, int salt) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + static_cast<size_t>(salt)) % 251);
  return s;
}

TEST_F(DecodedCacheTest, MissWritesTheEntryAndTheNextReadMapsIt) {
  const std::string contents = Pattern(100000, 1);
  const std::string src = WriteGzip("a.gz", contents);
  auto first = ReadThroughDecodedCache(src, Options());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->hit);
  EXPECT_EQ(first->note, "");
  EXPECT_EQ(first->bytes->view(), contents);
  EXPECT_EQ(first->bytes_on_disk, static_cast<int64_t>(fs::file_size(src)));
  const std::string entry = DecodedCacheEntryPath(src, cache_);
  EXPECT_TRUE(fs::exists(entry));
  EXPECT_THAT(entry, HasSubstr("/a.gz."));
  for (const auto& e : fs::directory_iterator(cache_))  // no temporary left behind
    EXPECT_EQ(e.path().string(), entry);

  auto second = ReadThroughDecodedCache(src, Options());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->hit);
  EXPECT_EQ(second->note, "");
  EXPECT_EQ(second->bytes->view(), contents);
  EXPECT_EQ(second->bytes_on_disk, first->bytes_on_disk);
}

TEST_F(DecodedCacheTest, ChangedSourceIsStaleAndReDecoded) {
  const std::string src = WriteGzip("b.gz", Pattern(5000, 1));
  ASSERT_TRUE(ReadThroughDecodedCache(src, Options()).ok());
  // Same length and different bytes, then the old modification time restored one second later:
  // only the size and time could tell; the time differs.
  const std::string changed = Pattern(5000, 2);
  WriteGzip("b.gz", changed);
  struct stat st;
  ASSERT_EQ(::stat(src.c_str(), &st), 0);
  struct timeval tv[2] = {{st.st_atim.tv_sec, 0}, {st.st_mtim.tv_sec + 1, 0}};
  ASSERT_EQ(::utimes(src.c_str(), tv), 0);
  auto r = ReadThroughDecodedCache(src, Options());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->hit);
  EXPECT_THAT(r->note, HasSubstr("stale: the source changed"));
  EXPECT_THAT(r->note, HasSubstr(DecodedCacheEntryPath(src, cache_)));
  EXPECT_EQ(r->bytes->view(), changed);
  auto again = ReadThroughDecodedCache(src, Options());  // rewritten for the new source
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->hit);
  EXPECT_EQ(again->bytes->view(), changed);
}

TEST_F(DecodedCacheTest, CorruptEntriesAreRefusedWithTheReasonAndRewritten) {
  const std::string contents = Pattern(20000, 3);
  const std::string src = WriteGzip("c.gz", contents);
  ASSERT_TRUE(ReadThroughDecodedCache(src, Options()).ok());
  const std::string entry = DecodedCacheEntryPath(src, cache_);
  const std::string good = ReadRaw(entry);
  ASSERT_GT(good.size(), 4096u + contents.size() - 1);

  struct Case {
    const char* name;
    std::string bytes;
    const char* expected;
  };
  std::string flipped_data = good;
  flipped_data[good.size() - 100] ^= 0x01;  // one bit of the data
  std::string flipped_header = good;
  flipped_header[24] ^= 0x01;  // a bit of the recorded modification time
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  const Case cases[] = {
      {"data bit", flipped_data, "corrupt: data checksum mismatch"},
      {"header bit", flipped_header, "corrupt: header checksum mismatch"},
      {"magic", bad_magic, "corrupt: bad magic number or version"},
      {"truncated", good.substr(0, good.size() - 10), "corrupt: "},
      {"torn header", good.substr(0, 20), "shorter than its header"},
      {"empty", "", "shorter than its header"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WriteRaw(entry, c.bytes);
    auto r = ReadThroughDecodedCache(src, Options());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->hit);
    EXPECT_THAT(r->note, HasSubstr(c.expected));
    EXPECT_THAT(r->note, HasSubstr("refused " + entry));
    EXPECT_THAT(r->note, HasSubstr("decoded " + src + " again"));
    EXPECT_EQ(r->bytes->view(), contents);
    EXPECT_EQ(ReadRaw(entry), good);  // rewritten
    auto again = ReadThroughDecodedCache(src, Options());
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(again->hit);
  }
}

TEST_F(DecodedCacheTest, UnwritableCacheStillReadsAndSaysWhy) {
  const std::string src = WriteGzip("d.gz", Pattern(3000, 4));
  WriteRaw(cache_, "a file where the folder should be");
  auto r = ReadThroughDecodedCache(src, Options());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->hit);
  EXPECT_EQ(r->bytes->view(), Pattern(3000, 4));
  EXPECT_THAT(r->note, HasSubstr("decoded cache: not kept"));
}

TEST_F(DecodedCacheTest, PlainFilesAndNoCacheReadDirectly) {
  const std::string plain = (dir_ / "plain.idx").string();
  WriteRaw(plain, Pattern(1000, 5));
  auto r = ReadThroughDecodedCache(plain, Options());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->hit);
  EXPECT_EQ(r->bytes->view(), Pattern(1000, 5));
  EXPECT_FALSE(fs::exists(cache_));  // nothing to save for a plain file

  const std::string gz = WriteGzip("e.gz", Pattern(1000, 6));
  auto none = ReadThroughDecodedCache(gz, {});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->bytes->view(), Pattern(1000, 6));
  EXPECT_FALSE(fs::exists(cache_));
}

TEST_F(DecodedCacheTest, SmallFilesAreNotKept) {
  const std::string src = WriteGzip("small.gz", Pattern(4000, 8));
  auto r = ReadThroughDecodedCache(src, {.dir = cache_, .min_bytes = 4001});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes->view(), Pattern(4000, 8));
  EXPECT_FALSE(fs::exists(DecodedCacheEntryPath(src, cache_)));
  ASSERT_TRUE(ReadThroughDecodedCache(src, {.dir = cache_, .min_bytes = 4000}).ok());
  EXPECT_TRUE(fs::exists(DecodedCacheEntryPath(src, cache_)));
}

TEST_F(DecodedCacheTest, WritingAnEntryRemovesThoseOfVanishedSources) {
  const std::string gone = WriteGzip("gone.gz", Pattern(3000, 9));
  const std::string kept = WriteGzip("kept.gz", Pattern(3000, 10));
  ASSERT_TRUE(ReadThroughDecodedCache(gone, Options()).ok());
  ASSERT_TRUE(ReadThroughDecodedCache(kept, Options()).ok());
  fs::remove(gone);
  // A crashed writer's temporary file two hours old, and a live writer's.
  const std::string crashed = DecodedCacheEntryPath(kept, cache_) + ".tmp.999999";
  const std::string live = DecodedCacheEntryPath(gone, cache_) + ".tmp.999998";
  WriteRaw(crashed, "partial");
  WriteRaw(live, "partial");
  fs::last_write_time(crashed, fs::file_time_type::clock::now() - std::chrono::hours(2));
  const std::string other = WriteGzip("other.gz", Pattern(3000, 11));
  ASSERT_TRUE(ReadThroughDecodedCache(other, Options()).ok());
  EXPECT_FALSE(fs::exists(DecodedCacheEntryPath(gone, cache_)));
  EXPECT_TRUE(fs::exists(DecodedCacheEntryPath(kept, cache_)));
  EXPECT_TRUE(fs::exists(DecodedCacheEntryPath(other, cache_)));
  EXPECT_FALSE(fs::exists(crashed));
  EXPECT_TRUE(fs::exists(live));
}

TEST_F(DecodedCacheTest, SourceErrorsAreTheReadersErrors) {
  auto missing = ReadThroughDecodedCache((dir_ / "missing.gz").string(), Options());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("missing.gz"));
  // A truncated gzip source is DataLoss and leaves no entry behind.
  const std::string src = WriteGzip("f.gz", Pattern(50000, 7));
  const std::string gz = ReadRaw(src);
  WriteRaw(src, gz.substr(0, gz.size() / 2));
  auto cut = ReadThroughDecodedCache(src, Options());
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(fs::exists(DecodedCacheEntryPath(src, cache_)));
}

// The dataset through the cache is the dataset without it, byte for byte, on a hit and a miss.
TEST_F(DecodedCacheTest, FashionMnistThroughTheCacheIsUnchanged) {
  const std::string kDir = "/usr/share/datasets/fashion-mnist";
  const std::string img = kDir + "/t10k-images-idx3-ubyte.gz", lab = kDir + "/t10k-labels-idx1-ubyte.gz";
  auto plain = IdxDataset::Load(img, lab, 2000);
  ASSERT_TRUE(plain.ok()) << plain.status();
  for (int round = 0; round < 2; ++round) {
    std::vector<std::string> notes;
    auto cached = IdxDataset::Load(img, lab, 2000, cache_, &notes);
    ASSERT_TRUE(cached.ok()) << cached.status();
    EXPECT_TRUE(notes.empty()) << notes[0];
    ASSERT_EQ((*cached)->size(), 2000);
    EXPECT_EQ((*cached)->layout().num_classes, (*plain)->layout().num_classes);
    EXPECT_EQ((*cached)->bytes_read(), (*plain)->bytes_read());
    for (int64_t i = 0; i < 2000; ++i) {
      ASSERT_EQ((*cached)->label(i), (*plain)->label(i)) << i;
      ASSERT_EQ(std::string_view(reinterpret_cast<const char*>((*cached)->pixels(i)), 784),
                std::string_view(reinterpret_cast<const char*>((*plain)->pixels(i)), 784))
          << i;
    }
  }
  EXPECT_TRUE(fs::exists(DecodedCacheEntryPath(img, cache_)));
}

}  // namespace
}  // namespace tandem::trainer::data
