#include "trainer/data/batch_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <vector>

#include "common/metrics.h"
#include "trainer/data/data_metrics.h"

namespace tandem::trainer::data {
namespace {

// Example i has the single feature i and label i % 10.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n) : n_(n) {
    layout_.feature_shape = {1};
    layout_.has_labels = true;
    layout_.num_classes = 10;
  }
  int64_t size() const override { return n_; }
  const BatchLayout& layout() const override { return layout_; }
  void Append(int64_t i, Batch* batch) const override {
    batch->features[static_cast<size_t>(batch->size)] = static_cast<float>(i);
    batch->labels[static_cast<size_t>(batch->size)] = static_cast<int32_t>(i % 10);
    ++batch->size;
  }
  std::string Describe() const override { return "counting"; }

 private:
  int64_t n_;
  BatchLayout layout_;
};

// Reads one pass and returns the example ids, checking batch invariants on the way.
std::vector<int64_t> ReadPass(BatchReader& reader, int64_t pass) {
  reader.StartPass(pass);
  std::vector<int64_t> ids;
  int64_t index = 0;
  int64_t batches = 0;
  while (const Batch* b = reader.Next()) {
    EXPECT_EQ(b->pass, pass);
    EXPECT_EQ(b->index, index++);
    EXPECT_GT(b->size, 0);
    EXPECT_LE(b->size, reader.options().batch_size);
    for (int i = 0; i < b->size; ++i) {
      EXPECT_EQ(static_cast<int64_t>(b->features[i]), b->example_ids[i]);
      EXPECT_EQ(b->labels[i], b->example_ids[i] % 10);
      ids.push_back(b->example_ids[i]);
    }
    ++batches;
  }
  EXPECT_EQ(batches, reader.BatchesPerPass());
  EXPECT_EQ(static_cast<int64_t>(ids.size()), reader.ShardSize());
  return ids;
}

struct ShardCase {
  int64_t n;
  int world;
  int batch;
  bool shuffle;
  int prefetch;
};

class ShardingTest : public ::testing::TestWithParam<ShardCase> {};

TEST_P(ShardingTest, EveryExampleExactlyOnceAcrossRanks) {
  const ShardCase& c = GetParam();
  auto ds = std::make_shared<CountingDataset>(c.n);
  for (int64_t pass = 0; pass < 3; ++pass) {
    std::vector<int> seen(static_cast<size_t>(c.n), 0);
    int64_t min_shard = c.n, max_shard = 0, max_batches = 0;
    for (int rank = 0; rank < c.world; ++rank) {
      BatchReader reader(ds, {.batch_size = c.batch, .rank = rank, .world_size = c.world,
                              .shuffle = c.shuffle, .seed = 7, .prefetch = c.prefetch});
      std::vector<int64_t> ids = ReadPass(reader, pass);
      EXPECT_EQ(ids, BatchReader::ShardOrder(c.n, reader.options(), pass));
      for (int64_t id : ids) ++seen[static_cast<size_t>(id)];
      min_shard = std::min<int64_t>(min_shard, static_cast<int64_t>(ids.size()));
      max_shard = std::max<int64_t>(max_shard, static_cast<int64_t>(ids.size()));
      max_batches = std::max(max_batches, reader.BatchesPerPass());
      EXPECT_EQ(reader.MaxBatchesPerPass(),
                (reader.ShardSize(0) + c.batch - 1) / c.batch);
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), c.n) << "pass " << pass;
    EXPECT_LE(max_shard - min_shard, 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ShardingTest,
                         ::testing::Values(ShardCase{100, 1, 10, false, 2},
                                           ShardCase{100, 1, 7, true, 2},
                                           ShardCase{101, 4, 8, true, 1},
                                           ShardCase{101, 4, 8, false, 0},
                                           ShardCase{3, 5, 2, true, 2},  // some shards empty
                                           ShardCase{1000, 3, 64, true, 3},
                                           ShardCase{1000, 7, 1000, true, 0}));

TEST(BatchReaderTest, LastBatchIsShort) {
  auto ds = std::make_shared<CountingDataset>(10);
  BatchReader reader(ds, {.batch_size = 4, .shuffle = false});
  reader.StartPass(0);
  std::vector<int> sizes;
  while (const Batch* b = reader.Next()) sizes.push_back(b->size);
  EXPECT_EQ(sizes, (std::vector<int>{4, 4, 2}));
  EXPECT_EQ(reader.Next(), nullptr);  // stays at the end
}

TEST(BatchReaderTest, ShuffleReproduciblePerSeedAndDifferentPerPass) {
  const int64_t n = 500;
  ReaderOptions a{.batch_size = 32, .seed = 11};
  std::vector<int64_t> p0 = BatchReader::ShardOrder(n, a, 0);
  std::vector<int64_t> p1 = BatchReader::ShardOrder(n, a, 1);
  EXPECT_EQ(p0, BatchReader::ShardOrder(n, a, 0));
  EXPECT_NE(p0, p1);
  ReaderOptions b = a;
  b.seed = 12;
  EXPECT_NE(p0, BatchReader::ShardOrder(n, b, 0));
  // A permutation, and not the identity.
  std::vector<int64_t> sorted = p0;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(sorted[i], i);
  int fixed = 0;
  for (int64_t i = 0; i < n; ++i) fixed += p0[i] == i;
  EXPECT_LT(fixed, 20);
  // Pinned values: the order must not change between builds or platforms (resume relies on it).
  EXPECT_THAT(BatchReader::ShardOrder(10, {.seed = 1}, 0),
              ::testing::ElementsAre(0, 5, 7, 4, 6, 3, 1, 9, 8, 2));
  // The readers (threaded and not) deliver exactly that order.
  auto ds = std::make_shared<CountingDataset>(n);
  BatchReader threaded(ds, a);
  ReaderOptions sync = a;
  sync.prefetch = 0;
  BatchReader inline_reader(ds, sync);
  EXPECT_EQ(ReadPass(threaded, 1), p1);
  EXPECT_EQ(ReadPass(inline_reader, 1), p1);
  EXPECT_EQ(ReadPass(threaded, 0), p0);  // passes can be revisited (resume)
}

TEST(BatchReaderTest, StartPassMidPassRestartsCleanly) {
  auto ds = std::make_shared<CountingDataset>(1000);
  BatchReader reader(ds, {.batch_size = 10, .seed = 3, .prefetch = 4});
  reader.StartPass(0);
  ASSERT_NE(reader.Next(), nullptr);
  ASSERT_NE(reader.Next(), nullptr);
  EXPECT_EQ(ReadPass(reader, 5), BatchReader::ShardOrder(1000, reader.options(), 5));
}

TEST(BatchReaderTest, DestroyMidPassDoesNotHang) {
  auto ds = std::make_shared<CountingDataset>(100000);
  for (int prefetch : {0, 1, 2, 8}) {
    for (int taken : {0, 1, 3}) {
      BatchReader reader(ds, {.batch_size = 16, .prefetch = prefetch});
      reader.StartPass(0);
      for (int i = 0; i < taken; ++i) ASSERT_NE(reader.Next(), nullptr);
      // The producer is blocked on a full queue (or still filling); destruction must stop it.
    }
  }
  // Never started.
  BatchReader idle(ds, {.batch_size = 16});
}

TEST(BatchReaderTest, CountsExamplesRead) {
  auto ds = std::make_shared<CountingDataset>(50);
  const DataMetrics& m = DataMetrics::For("reader-test");
  const double before = m.examples_read->Value();
  BatchReader reader(ds, {.batch_size = 8, .name = "reader-test"});
  ReadPass(reader, 0);
  EXPECT_EQ(m.examples_read->Value() - before, 50);
  EXPECT_EQ(m.queue_depth->Value(), 0);  // nothing left once the pass is consumed
  const std::string text = metrics::Registry::Default().Serialize();
  EXPECT_THAT(text, ::testing::HasSubstr("tandem_trainer_data_examples_read_total{source=\"reader-test\"}"));
  EXPECT_THAT(text, ::testing::HasSubstr("tandem_trainer_data_input_wait_seconds_total"));
}

TEST(BatchReaderTest, BatchesAreReusedNotReallocated) {
  auto ds = std::make_shared<CountingDataset>(1000);
  BatchReader reader(ds, {.batch_size = 10, .prefetch = 2});
  reader.StartPass(0);
  std::set<const Batch*> distinct;
  std::set<const float*> buffers;
  while (const Batch* b = reader.Next()) {
    distinct.insert(b);
    buffers.insert(b->features.data());
  }
  EXPECT_LE(distinct.size(), 3u);  // the pool: prefetch + 1
  EXPECT_EQ(buffers.size(), distinct.size());
}

TEST(BatchReaderTest, OptionsFromDataConfig) {
  DataConfig c;
  c.batch_size = 32;
  c.seed = 9;
  c.prefetch = 3;
  ReaderOptions train = TrainReaderOptions(c, 1, 4);
  EXPECT_EQ(train.batch_size, 32);
  EXPECT_EQ(train.rank, 1);
  EXPECT_EQ(train.world_size, 4);
  EXPECT_TRUE(train.shuffle);
  EXPECT_EQ(train.seed, 9u);
  EXPECT_EQ(train.prefetch, 3);
  EXPECT_EQ(train.name, "train");
  ReaderOptions test = TestReaderOptions(c, 1, 4);
  EXPECT_FALSE(test.shuffle);
  EXPECT_EQ(test.name, "test");
}

}  // namespace
}  // namespace tandem::trainer::data
