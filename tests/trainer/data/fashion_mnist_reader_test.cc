// The real Fashion-MNIST files through LoadDataset and W BatchReaders running at once (ranks as
// threads sharing one dataset, as in the multi-rank tests): every example exactly once per pass.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "trainer/data/batch_reader.h"
#include "trainer/data/data_config.h"
#include "trainer/data/dataset.h"

namespace tandem::trainer::data {
namespace {

TEST(FashionMnistReaderTest, ThreeRanksCoverTheTrainingSetEachPass) {
  auto config = ParseDataConfig(nlohmann::json::object());
  ASSERT_TRUE(config.ok()) << config.status();
  auto train = LoadDataset(config->train, {.name = "train"});
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_EQ((*train)->size(), 60000);
  auto test = LoadDataset(*config->test, {.name = "test"});
  ASSERT_TRUE(test.ok()) << test.status();
  ASSERT_EQ((*test)->size(), 10000);

  constexpr int kWorld = 3;
  for (int64_t pass = 0; pass < 2; ++pass) {
    std::vector<std::atomic<int>> seen(60000);
    std::vector<std::atomic<int>> label_sum(1);
    std::vector<std::thread> ranks;
    for (int rank = 0; rank < kWorld; ++rank) {
      ranks.emplace_back([&, rank] {
        BatchReader reader(*train, TrainReaderOptions(*config, rank, kWorld));
        reader.StartPass(pass);
        while (const Batch* b = reader.Next()) {
          ASSERT_EQ(b->feature_shape, (std::vector<int64_t>{1, 28, 28}));
          for (int i = 0; i < b->size; ++i) {
            seen[b->example_ids[i]]++;
            label_sum[0] += b->labels[i];
            ASSERT_GE(b->labels[i], 0);
            ASSERT_LT(b->labels[i], 10);
          }
        }
      });
    }
    for (auto& t : ranks) t.join();
    int once = 0;
    for (auto& s : seen) once += s.load() == 1;
    EXPECT_EQ(once, 60000) << "pass " << pass;
    EXPECT_EQ(label_sum[0].load(), 6000 * 45);  // 6000 of each class 0..9
  }
}

}  // namespace
}  // namespace tandem::trainer::data
