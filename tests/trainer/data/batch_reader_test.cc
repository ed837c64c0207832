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

// Elastic dealing (ReaderOptions::global_batch): the world changes at global-batch boundaries
// `worlds[i].at` (examples of the pass consumed so far: 0, then wherever the previous world
// stopped after `steps` global batches). Every position of the pass's order is read exactly once,
// global batch k holds the order's positions [offset + k*g, ...) in order, split over the ranks.
struct ElasticCase {
  int64_t n;
  int64_t global_batch;
  std::vector<std::pair<int, int>> worlds;  // {world size, global batches it takes (-1: the rest)}
  bool shuffle;
  int prefetch;
};

class ElasticDealingTest : public ::testing::TestWithParam<ElasticCase> {};

TEST_P(ElasticDealingTest, EveryExampleOncePerPassWhateverTheWorlds) {
  const ElasticCase& c = GetParam();
  auto ds = std::make_shared<CountingDataset>(c.n);
  const int64_t pass = 1;
  ReaderOptions whole{.batch_size = 1, .rank = 0, .world_size = 1, .shuffle = c.shuffle, .seed = 7};
  const std::vector<int64_t> order = BatchReader::ShardOrder(c.n, whole, pass);
  std::vector<int64_t> consumed;  // global batches concatenated, ranks in order
  int64_t offset = 0;
  for (const auto& [world, steps] : c.worlds) {
    std::vector<std::vector<std::vector<int64_t>>> by_rank(static_cast<size_t>(world));
    int64_t batches = -1;
    for (int rank = 0; rank < world; ++rank) {
      BatchReader reader(ds, {.rank = rank, .world_size = world, .shuffle = c.shuffle, .seed = 7,
                              .prefetch = c.prefetch, .global_batch = c.global_batch,
                              .start_offset = offset});
      if (batches < 0) batches = reader.MaxBatchesPerPass();
      EXPECT_EQ(reader.MaxBatchesPerPass(), batches);
      reader.StartPass(pass);
      int64_t index = 0;
      while (const Batch* b = reader.Next()) {
        if (steps >= 0 && index >= steps) break;
        EXPECT_LE(b->size, reader.BatchSize(rank));
        by_rank[static_cast<size_t>(rank)].emplace_back(b->example_ids.begin(),
                                                        b->example_ids.begin() + b->size);
        ++index;
      }
    }
    const int64_t taken = steps >= 0 ? std::min<int64_t>(steps, batches) : batches;
    BatchReader geometry(ds, {.rank = 0, .world_size = world, .shuffle = c.shuffle, .seed = 7,
                              .prefetch = 0, .global_batch = c.global_batch, .start_offset = offset});
    for (int64_t k = 0; k < taken; ++k) {
      int64_t global = 0;
      for (int rank = 0; rank < world; ++rank) {
        auto& batches_of_rank = by_rank[static_cast<size_t>(rank)];
        if (k >= static_cast<int64_t>(batches_of_rank.size())) continue;  // an empty last slice
        const auto& ids = batches_of_rank[static_cast<size_t>(k)];
        consumed.insert(consumed.end(), ids.begin(), ids.end());
        global += static_cast<int64_t>(ids.size());
      }
      EXPECT_EQ(global, geometry.GlobalBatchSize(k)) << "global batch " << k;
      offset += global;
    }
  }
  // Exactly the pass's order, in order: nothing lost, nothing repeated, nothing reordered.
  EXPECT_EQ(consumed, order);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ElasticDealingTest,
    ::testing::Values(ElasticCase{203, 32, {{2, 3}, {4, 6}, {3, -1}}, true, 2},   // 2 -> 4 -> 3
                      ElasticCase{203, 32, {{2, -1}}, false, 0},                  // never resized
                      ElasticCase{100, 10, {{3, 1}, {1, 2}, {7, 1}, {10, -1}}, true, 1},
                      ElasticCase{101, 33, {{4, 2}, {2, -1}}, true, 0},  // 33 over 4: 8,8,8,9
                      ElasticCase{7, 5, {{5, 1}, {3, -1}}, false, 2}));  // last slice empty

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

TEST(BatchReaderTest, ResumeMidPassYieldsTheRemainingBatches) {
  auto ds = std::make_shared<CountingDataset>(103);
  for (int prefetch : {0, 2}) {
    ReaderOptions o{.batch_size = 10, .rank = 1, .world_size = 2, .seed = 4, .prefetch = prefetch};
    BatchReader full(ds, o);
    full.StartPass(3);
    std::vector<std::vector<int64_t>> expected;
    while (const Batch* b = full.Next()) {
      expected.emplace_back(b->example_ids.begin(), b->example_ids.begin() + b->size);
    }
    ASSERT_EQ(expected.size(), 6u);  // 51 examples: 5 full batches and one of 1
    BatchReader resumed(ds, o);
    resumed.StartPass(3, 4);
    std::vector<std::vector<int64_t>> rest;
    int64_t index = 4;
    while (const Batch* b = resumed.Next()) {
      EXPECT_EQ(b->index, index++);
      rest.emplace_back(b->example_ids.begin(), b->example_ids.begin() + b->size);
    }
    EXPECT_EQ(rest, std::vector<std::vector<int64_t>>(expected.begin() + 4, expected.end()));
    resumed.StartPass(3, 99);  // past the end: nothing
    EXPECT_EQ(resumed.Next(), nullptr);
  }
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
