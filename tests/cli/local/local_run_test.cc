// Runs LocalRun with stand-in trainer and pserver scripts, to check the wiring that `tandem run`
// gives processes (environment, ports, run folder, events, summary) independently of the engine.
#include "cli/local/local_run.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace tandem::local {
namespace {
namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteScript(const std::string& path, const std::string& body) {
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), 0755);
}

class LocalRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir() + "/local_run_test_" + std::to_string(::getpid()))
                .lexically_normal()
                .string();
    fs::remove_all(root_);
    fs::create_directories(root_ + "/bin");
    WriteScript(root_ + "/bin/tandem-pserver",
                "echo \"pserver $TANDEM_RANK of $TANDEM_WORLD_SIZE args $* pservers=$TANDEM_PSERVERS "
                "ckpt=$TANDEM_CHECKPOINT_DIR\"\n"
                "trap 'echo shard saved; exit 0' TERM\n"
                "while :; do sleep 0.05; done\n");
    WriteScript(root_ + "/bin/tandem-trainer",
                "echo \"env rank=$TANDEM_RANK world=$TANDEM_WORLD_SIZE peers=$TANDEM_PEERS "
                "pservers=$TANDEM_PSERVERS token=${#TANDEM_JOB_TOKEN} ckpt=$TANDEM_CHECKPOINT_DIR\"\n"
                "for s in 1 2; do echo '@tandem {\"event\":\"progress\",\"pass\":1,\"passes\":1,"
                "\"step\":'$s',\"stepsPerPass\":2,\"loss\":0.5,\"accuracy\":0.75,"
                "\"examplesPerSec\":100}'; done\n"
                "echo '@tandem {\"event\":\"summary\",\"test_accuracy\":0.9,\"test_loss\":0.3}'\n");
    std::ofstream(root_ + "/job.yaml") << "kind: TrainingJob\n";
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root_;
};

TEST_F(LocalRunTest, WiresWorkersAndWritesRunFolder) {
  LocalJob job;
  job.name = "demo";
  job.manifest_path = root_ + "/job.yaml";
  job.workers = 2;
  LocalRunOptions opts;
  opts.bin_dir = root_ + "/bin";
  opts.run_dir = root_ + "/run";
  opts.stop_grace_seconds = 5;
  LocalRun run(job, opts);
  std::FILE* out = std::tmpfile();
  auto result = run.Run(out);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->run.succeeded) << result->run.failure;
  EXPECT_EQ(result->summary["test_accuracy"], 0.9);
  EXPECT_EQ(result->summary["restarts"], 0);

  std::string log0 = ReadAll(root_ + "/run/logs/worker-0-trainer.log");
  std::string log1 = ReadAll(root_ + "/run/logs/worker-1-trainer.log");
  EXPECT_NE(log0.find("env rank=0 world=2 peers=127.0.0.1:"), std::string::npos) << log0;
  EXPECT_NE(log1.find("env rank=1 world=2"), std::string::npos) << log1;
  EXPECT_NE(log0.find("token=48"), std::string::npos) << log0;
  EXPECT_NE(log0.find("ckpt=" + root_ + "/run/checkpoints/trainer-0"), std::string::npos);
  // Both workers see the same peer and pserver lists.
  auto peers = [](const std::string& log) { return log.substr(log.find("peers="), 60); };
  EXPECT_EQ(peers(log0), peers(log1));
  std::string ps0 = ReadAll(root_ + "/run/logs/worker-0-pserver.log");
  // The pserver reads its shard and the job's settings from its contract and the manifest.
  EXPECT_NE(ps0.find("pserver 0 of 2 args " + root_ + "/job.yaml pservers=127.0.0.1:"),
            std::string::npos) << ps0;
  EXPECT_NE(ps0.find("ckpt=" + root_ + "/run/checkpoints/pserver-0"), std::string::npos) << ps0;
  EXPECT_NE(ps0.find("shard saved"), std::string::npos) << ps0;

  std::string metrics = ReadAll(root_ + "/run/metrics.jsonl");
  EXPECT_NE(metrics.find("\"event\":\"progress\""), std::string::npos);
  EXPECT_NE(ReadAll(root_ + "/run/summary.json").find("\"test_accuracy\": 0.9"), std::string::npos);
  EXPECT_TRUE(fs::exists(root_ + "/run/job.yaml"));
  std::fclose(out);
}

}  // namespace
}  // namespace tandem::local
