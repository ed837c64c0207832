#include "trainer/data/idx_dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "trainer/data/dataset.h"

namespace tandem::trainer::data {
namespace {

using ::testing::HasSubstr;

constexpr char kDir[] = "/usr/share/datasets/fashion-mnist";

std::string Be32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string IdxBytes(uint32_t magic, const std::vector<uint32_t>& dims, size_t data_bytes) {
  std::string s = Be32(magic);
  for (uint32_t d : dims) s += Be32(d);
  for (size_t i = 0; i < data_bytes; ++i) s.push_back(static_cast<char>(i % 10));
  return s;
}

std::string WriteFile(const std::string& name, const std::string& bytes, bool gzip) {
  const std::string path = ::testing::TempDir() + "/" + name;
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
  return path;
}

std::string ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(IdxDatasetTest, FashionMnistTrainAndTest) {
  auto train = IdxDataset::Load(std::string(kDir) + "/train-images-idx3-ubyte.gz",
                                std::string(kDir) + "/train-labels-idx1-ubyte.gz");
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ((*train)->size(), 60000);
  EXPECT_EQ((*train)->layout().feature_shape, (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ((*train)->layout().num_classes, 10);
  EXPECT_EQ((*train)->label(0), 9);
  EXPECT_EQ((*train)->label(3), 3);
  std::vector<int> per_class(10, 0);
  for (int64_t i = 0; i < (*train)->size(); ++i) ++per_class[(*train)->label(i)];
  EXPECT_EQ(per_class, std::vector<int>(10, 6000));
  EXPECT_GT((*train)->bytes_read(), 26'000'000);

  auto test = IdxDataset::Load(std::string(kDir) + "/t10k-images-idx3-ubyte.gz",
                               std::string(kDir) + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ((*test)->size(), 10000);
  EXPECT_EQ((*test)->label(1), 2);

  // Features are scaled to [0,1]; example 0 has pixel sum 33456 (checked with Python's gzip).
  Batch b;
  b.Allocate((*test)->layout(), 4);
  (*test)->Append(0, &b);
  ASSERT_EQ(b.size, 1);
  double sum = 0, max = 0;
  for (int k = 0; k < 784; ++k) {
    sum += b.features[k];
    max = std::max<double>(max, b.features[k]);
  }
  EXPECT_NEAR(sum, 33456.0 / 255.0, 1e-3);
  EXPECT_FLOAT_EQ(max, 1.0f);
  EXPECT_EQ(b.labels[0], 9);
}

TEST(IdxDatasetTest, LoadDatasetFromConfigHonoursLimit) {
  SourceConfig src;
  src.images = std::string(kDir) + "/t10k-images-idx3-ubyte.gz";
  src.labels = std::string(kDir) + "/t10k-labels-idx1-ubyte.gz";
  src.limit = 100;
  auto ds = LoadDataset(src, {.name = "test"});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->size(), 100);
  EXPECT_EQ((*ds)->layout().num_classes, 10);
}

TEST(IdxDatasetTest, PlainAndGzipGeneratedFiles) {
  for (bool gz : {false, true}) {
    const std::string img = WriteFile("ok-img", IdxBytes(0x803, {5, 2, 3}, 30), gz);
    const std::string lab = WriteFile("ok-lab", IdxBytes(0x801, {5}, 5), gz);
    auto ds = IdxDataset::Load(img, lab);
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ((*ds)->size(), 5);
    EXPECT_EQ((*ds)->layout().feature_shape, (std::vector<int64_t>{1, 2, 3}));
    EXPECT_EQ((*ds)->label(4), 4);
    EXPECT_EQ((*ds)->pixels(1)[0], 6);  // byte 6 of the data
  }
}

struct BadIdxCase {
  const char* name;
  std::string images;  // raw bytes before compression
  std::string labels;
  const char* expected;  // substring; the failing file's name is checked too
  absl::StatusCode code;
  bool images_at_fault;
};

class IdxValidationTest : public ::testing::TestWithParam<BadIdxCase> {};

TEST_P(IdxValidationTest, RefusedWithFileName) {
  const BadIdxCase& c = GetParam();
  const std::string img = WriteFile(std::string(c.name) + "-images.gz", c.images, true);
  const std::string lab = WriteFile(std::string(c.name) + "-labels.gz", c.labels, true);
  auto ds = IdxDataset::Load(img, lab);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), c.code) << ds.status();
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(c.expected));
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(c.images_at_fault ? img : lab));
}

const std::string kGoodImages = IdxBytes(0x803, {4, 2, 2}, 16);
const std::string kGoodLabels = IdxBytes(0x801, {4}, 4);

INSTANTIATE_TEST_SUITE_P(
    Table, IdxValidationTest,
    ::testing::Values(
        BadIdxCase{"BadMagic", IdxBytes(0x12340803, {4, 2, 2}, 16), kGoodLabels,
                   "bad magic number 0x12340803", absl::StatusCode::kInvalidArgument, true},
        BadIdxCase{"LabelsAsImages", kGoodLabels, kGoodLabels, "has 1 dimensions, expected 3",
                   absl::StatusCode::kInvalidArgument, true},
        BadIdxCase{"FloatType", IdxBytes(0x0D03, {4, 2, 2}, 64), kGoodLabels,
                   "unsupported IDX element type 0x0d", absl::StatusCode::kInvalidArgument, true},
        BadIdxCase{"TruncatedData", IdxBytes(0x803, {4, 2, 2}, 15), kGoodLabels,
                   "truncated IDX file: dimensions need 16 bytes of data, found 15",
                   absl::StatusCode::kDataLoss, true},
        BadIdxCase{"TruncatedHeader", IdxBytes(0x803, {4}, 0), kGoodLabels,
                   "truncated IDX header", absl::StatusCode::kDataLoss, true},
        BadIdxCase{"Tiny", "ab", kGoodLabels, "shorter than the 4-byte magic number",
                   absl::StatusCode::kDataLoss, true},
        BadIdxCase{"TrailingBytes", kGoodImages, IdxBytes(0x801, {4}, 6),
                   "2 unexpected trailing bytes", absl::StatusCode::kInvalidArgument, false},
        BadIdxCase{"ZeroDim", IdxBytes(0x803, {4, 0, 2}, 0), kGoodLabels,
                   "IDX dimension 1 is 0", absl::StatusCode::kInvalidArgument, true},
        BadIdxCase{"CountMismatch", kGoodImages, IdxBytes(0x801, {3}, 3),
                   "image/label count mismatch", absl::StatusCode::kInvalidArgument, false}),
    [](const ::testing::TestParamInfo<BadIdxCase>& info) { return info.param.name; });

TEST(IdxDatasetTest, CountMismatchNamesBothFiles) {
  const std::string img = WriteFile("cm-images", kGoodImages, false);
  const std::string lab = WriteFile("cm-labels", IdxBytes(0x801, {3}, 3), false);
  auto ds = IdxDataset::Load(img, lab);
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(img + " has 4 images but " + lab + " has 3 labels"));
}

TEST(IdxDatasetTest, TruncatedGzipIsDataLoss) {
  // A real file cut in the middle of its compressed stream.
  std::string gz = ReadRaw(std::string(kDir) + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_GT(gz.size(), 1000u);
  const std::string lab = WriteFile("cut-labels.gz", gz.substr(0, gz.size() / 2), false);
  auto arr = ReadIdxFile(lab, 1);
  ASSERT_FALSE(arr.ok());
  EXPECT_EQ(arr.status().code(), absl::StatusCode::kDataLoss) << arr.status();
  EXPECT_THAT(std::string(arr.status().message()), HasSubstr(lab));
}

TEST(IdxDatasetTest, CorruptGzipIsRefused) {
  std::string gz = ReadRaw(std::string(kDir) + "/t10k-labels-idx1-ubyte.gz");
  for (size_t i = 100; i < 140; ++i) gz[i] = static_cast<char>(gz[i] ^ 0x5A);
  const std::string lab = WriteFile("flipped-labels.gz", gz, false);
  auto arr = ReadIdxFile(lab, 1);
  ASSERT_FALSE(arr.ok());
  EXPECT_EQ(arr.status().code(), absl::StatusCode::kDataLoss) << arr.status();
  EXPECT_THAT(std::string(arr.status().message()), HasSubstr(lab));
}

TEST(IdxDatasetTest, MissingFileIsNotFound) {
  auto arr = ReadIdxFile("/nonexistent/labels.gz", 1);
  ASSERT_FALSE(arr.ok());
  EXPECT_EQ(arr.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(arr.status().message()), HasSubstr("/nonexistent/labels.gz"));
}

}  // namespace
}  // namespace tandem::trainer::data
