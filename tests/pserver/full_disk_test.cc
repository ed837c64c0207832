// A pserver shard checkpoint that does not fit on the disk: the write fails with an error naming
// the shard, the previous checkpoint stays the newest readable one (nothing is pruned), and no
// temporary file is left. RLIMIT_FSIZE in a forked child stands in for a full disk (write() fails
// with EFBIG where a full disk gives ENOSPC; the writer handles both the same way).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "pserver/shard_checkpoint.h"
#include "tests/common/test_util.h"

namespace tandem::pserver {
namespace {

ShardState StateWithRows(uint64_t version, uint64_t rows) {
  ShardState s;
  s.shard = 0;
  s.num_shards = 1;
  s.version = version;
  ShardState::Table t;
  t.config.set_id(1);
  t.config.set_name("emb");
  t.config.set_kind(TableConfig::SPARSE);
  t.config.set_dim(8);
  t.config.mutable_init()->set_kind(Initializer::CONSTANT);
  t.config.mutable_optimizer()->set_kind(OptimizerConfig::SGD);
  t.config.mutable_optimizer()->set_learning_rate(0.1f);
  for (uint64_t k = 0; k < rows; ++k) {
    t.data.keys.push_back(k);
    t.data.counts.push_back(version);
    for (int j = 0; j < 8; ++j) t.data.values.push_back(static_cast<float>(version));
  }
  s.tables.push_back(std::move(t));
  return s;
}

enum : int { kOk = 0, kFirstFailed = 10, kLimitFailed, kBigSucceeded, kNoShardInError, kPruned };

TEST(PServerFullDiskTest, PreviousCheckpointSurvivesAWriteThatDoesNotFit) {
  const std::string dir = ::testing::TempDir() + "/ps-full-disk-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  auto r = testing::RunInChild([&] {
    ShardCheckpointer ckpt(dir, 0, /*keep=*/1);
    if (!ckpt.Write(StateWithRows(1, 10)).ok()) return int{kFirstFailed};
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit rl{64 << 10, 64 << 10};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) return int{kLimitFailed};
    auto big = ckpt.Write(StateWithRows(2, 100000));  // 3.2 MiB of values
    if (big.ok()) return int{kBigSucceeded};
    std::fprintf(stderr, "%s\n", big.status().ToString().c_str());
    if (big.status().message().find("shard 0") == std::string::npos) return int{kNoShardInError};
    // keep=1 would have pruned checkpoint 1 had the write been taken as done.
    return ckpt.Steps() == std::vector<uint64_t>{1} ? int{kOk} : int{kPruned};
  });
  ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
  ASSERT_EQ(WEXITSTATUS(r.status), kOk) << r.output;
  ShardCheckpointer ckpt(dir, 0, 1);
  auto latest = ckpt.LoadLatest();
  ASSERT_TRUE(latest.ok() && latest->has_value()) << latest.status();
  EXPECT_EQ((*latest)->version, 1u);
  ASSERT_EQ((*latest)->tables.size(), 1u);
  EXPECT_EQ((*latest)->tables[0].data.keys.size(), 10u);
  int files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) ++files;
  EXPECT_EQ(files, 1) << "a temporary file was left behind";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem::pserver
