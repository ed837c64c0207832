// The elastic start-up race with the real tandem-trainer binary (docs/elastic.md, "The start-up
// race"): three trainer processes of one elastic job, each with its own membership file
// (TANDEM_MEMBERSHIP), as pods whose mounted ConfigMap the kubelet refreshes at different
// moments. The membership changes during start-up; a trainer's file is rewritten only once its
// log says a peer is on a newer epoch (or once the others have finished): the order is forced,
// not left to sleeps. On main before the fix, the grow's trainer 0 exited 75 with "waiting for
// rank 1 ... to accept: ack: connection closed by peer", as on the real kubelet.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/membership.h"
#include "common/socket.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using testing::BinDir;
using testing::Eventually;

constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
constexpr int kSteps = 20;
constexpr int kGlobalBatch = 64;  // data.batchSize 32 x workers.count 2 (constantGlobalBatch)

constexpr char kJob[] = R"(apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: startup-race, namespace: default}
spec:
  workers: {count: 2, minCount: 1, maxCount: 3}
  elastic: {policy: constantGlobalBatch}
  trainer: {threads: 1}
  passes: 1
  data:
    train: {format: idx}
    test: {format: idx, limit: 500}
    batchSize: 32
  model:
    inputs:
      - {name: image, source: features, shape: [1, 28, 28]}
      - {name: label, source: labels}
    layers:
      - {name: fc1, type: fc, input: image, size: 32}
      - {name: relu1, type: relu, input: fc1}
      - {name: fc2, type: fc, input: relu1, size: 10}
      - {name: cost, type: softmax_cross_entropy, inputs: [fc2, label]}
  optimizer: {type: momentum, learningRate: 0.05, momentum: 0.9}
)";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A trainer process: its slot's endpoint, its membership file, its log, its exit code.
struct Proc {
  Endpoint self;
  fs::path membership, log;
  int exit_code = -1;
  std::thread runner;
};

class ElasticStartupProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFashionMnist))
      GTEST_SKIP() << "Fashion-MNIST is not installed (" << kFashionMnist
                   << "): scripts/install-deps.sh installs it";
    root_ = fs::path(::testing::TempDir()) /
            absl::StrCat("tandem_elastic_startup_process_test_", ::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_);
    std::ofstream(root_ / "job.yaml") << kJob;
    // The ports the trainers' rings bind themselves (a trainer binds its own endpoint at every
    // rendezvous), by the project's one policy: below the ephemeral range, so that no outgoing
    // connection of this or another test takes one meanwhile (common/socket.h).
    absl::StatusOr<std::vector<int>> ports = net::PickFreeLoopbackPorts(3);
    ASSERT_TRUE(ports.ok()) << ports.status();
    for (int i = 0; i < 3; ++i) {
      p_[i].self = {"127.0.0.1", (*ports)[static_cast<size_t>(i)]};
      p_[i].membership = root_ / absl::StrCat("membership-", i, ".json");
      p_[i].log = root_ / absl::StrCat("trainer-", i, ".log");
    }
  }
  void TearDown() override {
    for (Proc& p : p_)
      if (p.runner.joinable()) p.runner.join();
    if (!HasFailure()) fs::remove_all(root_);
  }
  api::Membership Epoch(int64_t epoch, std::vector<int> who, std::string reason) {
    api::Membership m{.epoch = epoch, .reason = std::move(reason)};
    for (int i : who) m.peers.push_back(p_[i].self);
    return m;
  }
  // Rewrites trainer i's copy as the kubelet does: a new file renamed over the old one.
  void Publish(int i, const api::Membership& m) {
    const fs::path temp = p_[i].membership.string() + ".tmp";
    std::ofstream(temp) << api::RenderMembership(m);
    fs::rename(temp, p_[i].membership);
  }
  // Starts trainer i with the worker contract of `start` (its rank there, its peers).
  void Start(int i, const api::Membership& start) {
    std::vector<std::string> peers;
    for (const Endpoint& e : start.peers) peers.push_back(e.ToString());
    const std::vector<std::string> env = {
        "TANDEM_JOB_NAME=startup-race",
        absl::StrCat("TANDEM_RANK=", start.RankOf(p_[i].self)),
        absl::StrCat("TANDEM_WORLD_SIZE=", start.world_size()),
        absl::StrCat("TANDEM_PEERS=", absl::StrJoin(peers, ",")),
        absl::StrCat("TANDEM_MEMBERSHIP=", p_[i].membership.string()),
        "TANDEM_THREADS=1",
        "TANDEM_EVENTS=1",
        "TANDEM_COLLECTIVE_RENDEZVOUS_TIMEOUT_S=60",
    };
    const std::string command =
        absl::StrCat("exec '", BinDir(), "/tandem-trainer' '", (root_ / "job.yaml").string(),
                     "' --max-steps ", kSteps, " --data-cache off > '", p_[i].log.string(), "' 2>&1");
    p_[i].runner = std::thread([this, i, env, command] {
      p_[i].exit_code = testing::RunProgram({"/bin/sh", "-c", command}, env).exit_code;
    });
  }
  bool LogSays(int i, const std::string& needle) {
    return Eventually([&] { return Slurp(p_[i].log).find(needle) != std::string::npos; },
                      std::chrono::seconds(90));
  }
  void Wait(int i) {
    if (p_[i].runner.joinable()) p_[i].runner.join();
  }
  // examples_this_trainer of trainer i's summary event, or of its `left` event; -1: neither.
  int64_t Examples(int i) {
    std::istringstream lines(Slurp(p_[i].log));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("@tandem ", 0) != 0) continue;
      const std::string json = line.substr(8);
      for (const char* key : {"\"examples_this_trainer\":", "\"examples\":"}) {
        const size_t at = json.find(key);
        if (at != std::string::npos &&
            (json.find("\"event\":\"summary\"") != std::string::npos ||
             json.find("\"event\":\"left\"") != std::string::npos))
          return std::stoll(json.substr(at + std::string(key).size()));
      }
    }
    return -1;
  }

  fs::path root_;
  Proc p_[3];
};

// The race the real kubelet showed: a grow 2 -> 3 published while the first trainers start;
// trainer 0 (and the new trainer 2) read epoch 1, trainer 1 still epoch 0.
TEST_F(ElasticStartupProcessTest, GrowDuringStartUp) {
  const api::Membership e0 = Epoch(0, {0, 1}, "start");
  const api::Membership e1 = Epoch(1, {0, 1, 2}, "Grow");
  Publish(0, e1);
  Publish(1, e0);
  Publish(2, e1);
  Start(0, e0);
  Start(2, e1);
  Start(1, e0);
  EXPECT_TRUE(LogSays(1, "a peer is in membership epoch 1 while this trainer's membership says epoch 0"))
      << Slurp(p_[1].log);
  Publish(1, e1);
  for (int i = 0; i < 3; ++i) Wait(i);
  int64_t examples = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string log = Slurp(p_[i].log);
    EXPECT_EQ(p_[i].exit_code, 0) << i << ":\n" << log;
    EXPECT_NE(log.find("\"epoch\":1,\"event\":\"summary\""), std::string::npos) << i << ":\n" << log;
    EXPECT_NE(log.find(absl::StrCat("\"steps\":", kSteps)), std::string::npos) << i << ":\n" << log;
    EXPECT_EQ(log.find("\"event\":\"resized\""), std::string::npos) << i;  // nothing resized
    examples += Examples(i);
  }
  EXPECT_NE(Slurp(p_[1].log).find("membership changed during start-up: epoch 0 -> 1, joining at 1"),
            std::string::npos);
  EXPECT_EQ(examples, kSteps * kGlobalBatch);  // every global batch trained once, by 3 trainers
}

// A shrink 3 -> 2 published while the first three trainers start: trainer 2 never trains, exits
// 0 as a leaving trainer; trainers 0 and 1 train the whole run at epoch 1.
TEST_F(ElasticStartupProcessTest, ShrinkDuringStartUp) {
  const api::Membership e0 = Epoch(0, {0, 1, 2}, "start");
  const api::Membership e1 = Epoch(1, {0, 1}, "ReclaimBorrowed");
  Publish(0, e1);
  Publish(1, e0);
  Publish(2, e0);
  for (int i = 0; i < 3; ++i) Start(i, e0);
  EXPECT_TRUE(LogSays(1, "a peer is in membership epoch 1 while this trainer's membership says epoch 0"))
      << Slurp(p_[1].log);
  Publish(1, e1);
  Wait(0);
  Wait(1);
  // Trainer 2's copy is refreshed last (the others never waited for it), once trainer 2 read
  // epoch 0: a copy that never named it would make it a new member waiting to be named.
  EXPECT_TRUE(LogSays(2, "joining the ring of membership epoch 0 as rank 2 of 3")) << Slurp(p_[2].log);
  Publish(2, e1);
  Wait(2);
  for (int i = 0; i < 2; ++i) {
    const std::string log = Slurp(p_[i].log);
    EXPECT_EQ(p_[i].exit_code, 0) << i << ":\n" << log;
    EXPECT_NE(log.find("\"epoch\":1,\"event\":\"summary\""), std::string::npos) << i << ":\n" << log;
  }
  const std::string left = Slurp(p_[2].log);
  EXPECT_EQ(p_[2].exit_code, 0) << left;
  EXPECT_NE(left.find("leaving the job before step 1"), std::string::npos) << left;
  EXPECT_NE(left.find("left the job after step 0"), std::string::npos) << left;
  EXPECT_EQ(Examples(2), 0);
  EXPECT_EQ(Examples(0) + Examples(1), kSteps * kGlobalBatch);
}

}  // namespace
}  // namespace tandem
