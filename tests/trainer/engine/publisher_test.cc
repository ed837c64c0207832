// The publisher (trainer/engine/publisher.h) and the snapshot directories it writes
// (common/model_snapshot.h): versions, manifest, checksums, pruning, and atomicity under SIGKILL.
#include "trainer/engine/publisher.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/model_snapshot.h"
#include "gtest/gtest.h"
#include "tests/serve/test_model.h"

namespace tandem::trainer {
namespace {

namespace fs = std::filesystem;

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / absl::StrCat("publisher-test-", ::getpid(), "-",
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string dir_;
};

TEST_F(PublisherTest, WritesVersionedCheckedSnapshotsAndPrunesOldOnes) {
  serve::testing::SmallModel model(2);
  Publisher pub({.dir = dir_, .every_steps = 10, .keep = 2, .job = "t"}, serve::testing::SmallModelDef().ToJson(), 5);
  EXPECT_FALSE(pub.Due(9));
  EXPECT_TRUE(pub.Due(10));
  for (int64_t step : {10, 20, 30}) {
    pub.MaybePublish(step, *model.net, nullptr);
    EXPECT_EQ(pub.last_step(), step);
  }
  EXPECT_EQ(pub.last_version(), 3);
  EXPECT_EQ(Entries(), (std::vector<std::string>{"v000000000002", "v000000000003"}));
  auto m = snapshot::Verify(snapshot::VersionPath(dir_, 3));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)["version"], 3);
  EXPECT_EQ((*m)["step"], 30);
  EXPECT_EQ((*m)["seed"], 5);
  EXPECT_EQ((*m)["model"], serve::testing::SmallModelDef().ToJson());
  ASSERT_EQ((*m)["files"].size(), 1u);
  EXPECT_EQ((*m)["files"][0]["name"], "dense.ckpt");
  // Every parameter by name, the local embedding table included.
  auto dense = CheckpointFile::Open(absl::StrCat(snapshot::VersionPath(dir_, 3), "/dense.ckpt"));
  ASSERT_TRUE(dense.ok());
  for (const char* name : {"emb.table", "fc1.weights", "fc2.bias"})
    EXPECT_NE((*dense)->Find(name), nullptr) << name;
}

TEST_F(PublisherTest, TimeBasedPublishingIsDueOnceTheIntervalHasPassed) {
  const nlohmann::json def = serve::testing::SmallModelDef().ToJson();
  Publisher hourly({.dir = dir_, .every_seconds = 3600, .keep = 1}, def, 1);
  EXPECT_FALSE(hourly.Due(7));
  Publisher fast({.dir = dir_, .every_seconds = 0.001, .keep = 1}, def, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(fast.Due(7));
  serve::testing::SmallModel model(1);
  fast.MaybePublish(7, *model.net, nullptr);
  EXPECT_EQ(fast.last_version(), 1);
  EXPECT_FALSE(fast.Due(7)) << "one version per step";
  fast.MaybePublish(7, *model.net, nullptr, /*force=*/true);
  EXPECT_EQ(fast.last_version(), 1) << "the final publish does not repeat the step just published";
}

TEST_F(PublisherTest, VerifyRefusesDamagedMissingAndExtraFiles) {
  serve::testing::SmallModel model(2);
  ASSERT_EQ(model.Publish(dir_, 1), 1);
  const std::string v = snapshot::VersionPath(dir_, 1);
  ASSERT_TRUE(snapshot::Verify(v).ok());
  {
    std::ofstream extra(v + "/stray.bin");
    extra << "x";
  }
  EXPECT_TRUE(absl::StrContains(snapshot::Verify(v).status().message(), "stray.bin: not listed"));
  fs::remove(v + "/stray.bin");
  fs::resize_file(v + "/dense.ckpt", fs::file_size(v + "/dense.ckpt") - 1);
  auto st = snapshot::Verify(v).status();
  EXPECT_TRUE(absl::IsDataLoss(st)) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "dense.ckpt")) << st;
  fs::remove(v + "/dense.ckpt");
  EXPECT_TRUE(absl::IsDataLoss(snapshot::Verify(v).status()));
  fs::remove(v + "/MANIFEST.json");
  EXPECT_TRUE(absl::IsNotFound(snapshot::Verify(v).status()));
}

TEST_F(PublisherTest, StagingNamesAreTheOnlyNamesAPServerWritesInto) {
  EXPECT_TRUE(snapshot::IsStagingName(".tmp-v000000000012-0a1b2c3d"));
  for (const char* bad : {"", "v000000000012", ".tmp-v12-ab", ".tmp-v000000000012-", "../x",
                          ".tmp-v000000000012-ab/../../etc", ".tmp-v000000000012-XYZ"})
    EXPECT_FALSE(snapshot::IsStagingName(bad)) << bad;
  EXPECT_EQ(snapshot::ParseVersionDirName("v000000000012"), 12);
  EXPECT_EQ(snapshot::ParseVersionDirName(".tmp-v000000000012-ab"), std::nullopt);
}

// A publisher killed with SIGKILL at random moments, 25 times: every version directory visible
// afterwards is complete and verifies, and the next publish removes the leftovers.
TEST_F(PublisherTest, KillDuringPublishNeverLeavesAVisibleHalfWrittenVersion) {
  fs::create_directories(dir_);
  std::mt19937 rng(42);
  int killed_mid_write = 0;
  for (int round = 0; round < 25; ++round) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      serve::testing::SmallModel model(round + 1);
      for (int64_t step = 1;; ++step) model.Publish(dir_, step, /*keep=*/3);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 30000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (snapshot::IsStagingName(name)) {
        ++killed_mid_write;
        continue;
      }
      if (name.rfind(".del-v", 0) == 0) continue;  // killed while pruning: already invisible
      ASSERT_TRUE(snapshot::ParseVersionDirName(name).has_value()) << name;
      auto m = snapshot::Verify(e.path().string());
      ASSERT_TRUE(m.ok()) << "round " << round << ": " << m.status();
    }
  }
  // Most rounds kill it somewhere inside a publish (a staging directory is left behind).
  EXPECT_GT(killed_mid_write, 0);
  serve::testing::SmallModel model(99);
  const int64_t before = snapshot::ListVersions(dir_)->back();
  EXPECT_EQ(model.Publish(dir_, 1, /*keep=*/3), before + 1);
  for (const std::string& name : Entries()) EXPECT_EQ(name[0], 'v') << name;
  EXPECT_EQ(snapshot::ListVersions(dir_)->size(), 3u);
}

}  // namespace
}  // namespace tandem::trainer
