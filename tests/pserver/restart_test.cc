// Real tandem-pserver processes: a shard is killed (SIGKILL) mid-run and restarted from its last
// scheduled checkpoint, another is stopped with SIGTERM (final checkpoint) and restarted; the two
// trainers reconnect with backoff, the job finishes, the lost steps are reported, and the final
// parameters are exactly what the applied steps produce.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pserver/client/pserver_client.h"
#include "pserver/placement.h"
#include "tests/common/test_util.h"

namespace tandem::pserver {
namespace {

constexpr char kToken[] = "restart-test-token";

// One tandem-pserver child process.
struct Process {
  pid_t pid = -1;
  int port = 0;
  int metrics_port = -1;

  // Starts the binary with `args`; waits for its "listening on port N" line.
  static Process Start(const std::vector<std::string>& args, const std::string& log) {
    int out[2];
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);  // no other child inherits it (tests/common/test_util.cc)
    Process p;
    p.pid = ::fork();
    if (p.pid == 0) {
      ::dup2(out[1], 1);
      int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(err, 2);
      ::close(out[0]);
      ::setenv("TANDEM_JOB_TOKEN", kToken, 1);
      std::vector<char*> argv;
      const std::string bin = testing::BinDir() + "/tandem-pserver";
      argv.push_back(const_cast<char*>(bin.c_str()));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < give_up) {
      pollfd pfd{out[0], POLLIN, 0};
      if (::poll(&pfd, 1, 200) <= 0) continue;
      char buf[256];
      ssize_t n = ::read(out[0], buf, sizeof(buf));
      if (n <= 0) break;
      line.append(buf, n);
    }
    ::close(out[0]);
    const auto at = line.find("port ");
    EXPECT_NE(at, std::string::npos)
        << "tandem-pserver did not start: " << line << " (log " << log << ")";
    if (at != std::string::npos) {
      const std::string rest = line.substr(at + 5);
      EXPECT_TRUE(absl::SimpleAtoi(rest.substr(0, rest.find_first_of(" \n")), &p.port)) << line;
      const auto m = rest.find("metrics port ");
      if (m != std::string::npos) {
        EXPECT_TRUE(
            absl::SimpleAtoi(rest.substr(m + 13, rest.find('\n') - m - 13), &p.metrics_port))
            << line;
      }
    }
    return p;
  }

  // Sends `sig` and reaps the process; returns its exit status (128 + signal when killed).
  int Stop(int sig) {
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

std::vector<std::string> ShardArgs(uint32_t shard, int port, const std::string& dir) {
  return {"--port",
          std::to_string(port),
          "--shard",
          std::to_string(shard),
          "--num-shards",
          "2",
          "--trainers",
          "2",
          "--mode",
          "sync",
          "--checkpoint-dir",
          dir,
          "--checkpoint-interval",
          "5",
          "--barrier-timeout",
          "5",
          "--host",
          "127.0.0.1",
          "--metrics-port",
          "0"};
}

TableConfig Sparse() {
  TableConfig c;
  c.set_id(1);
  c.set_name("emb");
  c.set_kind(TableConfig::SPARSE);
  c.set_dim(1);
  c.mutable_init()->set_kind(Initializer::CONSTANT);
  c.mutable_optimizer()->set_kind(OptimizerConfig::SGD);
  c.mutable_optimizer()->set_learning_rate(1.0f);
  return c;
}

TableConfig Dense() {
  TableConfig c;
  c.set_id(2);
  c.set_name("fc");
  c.set_kind(TableConfig::DENSE);
  c.set_size(3000);
  c.set_block_size(1024);
  c.mutable_init()->set_kind(Initializer::CONSTANT);
  c.mutable_optimizer()->set_kind(OptimizerConfig::SGD);
  c.mutable_optimizer()->set_learning_rate(1.0f);
  return c;
}

// Trainer r's gradient at step t (every element): (r + 1) * (t % 4 + 1). The sync update is their
// mean over 2 trainers: 1.5 * (t % 4 + 1), exact in float.
float Grad(uint32_t r, int t) { return static_cast<float>((r + 1) * (t % 4 + 1)); }
float Update(int t) { return 1.5f * static_cast<float>(t % 4 + 1); }

TEST(PServerRestartTest, KilledShardRestoresFromCheckpointAndJobFinishes) {
  constexpr int kSteps = 30;
  constexpr int kKillAt = 17;  // shard 1: SIGKILL before step 17
  constexpr int kTermAt = 24;  // shard 0: SIGTERM before step 24
  const std::string dir =
      std::filesystem::temp_directory_path() / absl::StrCat("pserver_restart_test_", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Process shards[2] = {Process::Start(ShardArgs(0, 0, dir), dir + "/shard0.log"),
                       Process::Start(ShardArgs(1, 0, dir), dir + "/shard1.log")};
  ASSERT_GT(shards[0].port, 0);
  ASSERT_GT(shards[1].port, 0);
  const int ports[2] = {shards[0].port, shards[1].port};
  auto connect = [&](uint32_t rank) {
    PServerClientOptions o;
    o.endpoints = {absl::StrCat("127.0.0.1:", ports[0]), absl::StrCat("127.0.0.1:", ports[1])};
    o.token = kToken;
    o.rank = rank;
    o.sync = true;
    o.reconnect_timeout = absl::Seconds(60);
    o.max_backoff = absl::Milliseconds(500);
    return std::move(*PServerClient::Connect(o));
  };

  // Trainers pause at kKillAt and kTermAt until the test thread lets them go.
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  int released = -1;
  auto pause = [&](int step) {
    std::unique_lock<std::mutex> lock(mu);
    ++arrived;
    cv.notify_all();
    cv.wait(lock, [&] { return released >= step; });
  };

  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 40; ++k) keys.push_back(k);
  std::vector<uint64_t> lost[2];
  auto trainer = [&](uint32_t r) {
    auto client = connect(r);
    ASSERT_TRUE(client->RegisterTable(Sparse()).ok());
    ASSERT_TRUE(client->RegisterTable(Dense()).ok());
    SparseBatch batch;
    std::vector<float> dense(3000);
    for (int t = 0; t < kSteps; ++t) {
      if (t == kKillAt || t == kTermAt) pause(t);
      absl::Status s = client->PullSparse(1, keys, &batch);
      ASSERT_TRUE(s.ok()) << "rank " << r << " step " << t << ": " << s;
      ASSERT_TRUE(client->PullDense(2, absl::MakeSpan(dense)).ok());
      s = client->PushSparse(batch, std::vector<float>(keys.size(), Grad(r, t)), t);
      ASSERT_TRUE(s.ok()) << "rank " << r << " step " << t << ": " << s;
      ASSERT_TRUE(client->PushDense(2, std::vector<float>(3000, Grad(r, t)), t).ok());
      s = client->FinishStep(t);
      ASSERT_TRUE(s.ok()) << "rank " << r << " step " << t << ": " << s;
    }
    lost[r] = client->steps_lost_per_shard();
  };
  std::thread t0(trainer, 0), t1(trainer, 1);
  auto admin = connect(0);
  auto wait_arrived = [&](int n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(60), [&] { return arrived >= n; });
  };

  // 1. Shard 1 dies without warning once its step-15 checkpoint is on disk.
  ASSERT_TRUE(wait_arrived(2));
  uint64_t checkpointed = 0;
  for (int i = 0; i < 300 && checkpointed < 15; ++i) {
    auto st = admin->ShardStatus(1);
    ASSERT_TRUE(st.ok()) << st.status();
    checkpointed = st->last_checkpoint_version();
    if (checkpointed < 15) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(checkpointed, 15u);
  ASSERT_LE(checkpointed, static_cast<uint64_t>(kKillAt));
  EXPECT_EQ(shards[1].Stop(SIGKILL), 128 + SIGKILL);
  {
    std::lock_guard<std::mutex> lock(mu);
    released = kKillAt;  // trainers run into the dead shard and retry
  }
  cv.notify_all();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  shards[1] = Process::Start(ShardArgs(1, ports[1], dir), dir + "/shard1.log");
  ASSERT_EQ(shards[1].port, ports[1]);

  // 2. Shard 0 is stopped politely: it writes a final checkpoint and loses nothing.
  ASSERT_TRUE(wait_arrived(4));
  EXPECT_EQ(shards[0].Stop(SIGTERM), 0);
  shards[0] = Process::Start(ShardArgs(0, ports[0], dir), dir + "/shard0.log");
  {
    std::lock_guard<std::mutex> lock(mu);
    released = kTermAt;
  }
  cv.notify_all();
  t0.join();
  t1.join();

  const uint64_t lost1 = kKillAt - checkpointed;
  for (uint32_t r = 0; r < 2; ++r) {
    ASSERT_EQ(lost[r].size(), 2u);
    EXPECT_EQ(lost[r][0], 0u) << "rank " << r;
    EXPECT_EQ(lost[r][1], lost1) << "rank " << r;
  }
  auto st1 = admin->ShardStatus(1);
  ASSERT_TRUE(st1.ok());
  EXPECT_EQ(st1->restored_version(), checkpointed);
  EXPECT_EQ(st1->steps_lost(), lost1);
  EXPECT_EQ(st1->version(), static_cast<uint64_t>(kSteps));
  auto st0 = admin->ShardStatus(0);
  ASSERT_TRUE(st0.ok());
  EXPECT_EQ(st0->restored_version(), static_cast<uint64_t>(kTermAt));
  EXPECT_EQ(st0->steps_lost(), 0u);

  // Final values: every step's mean update, except the lost steps on shard 1's parameters.
  auto expected = [&](uint32_t shard) {
    float w = 0.0f;
    for (int t = 0; t < kSteps; ++t)
      if (shard == 0 || t < static_cast<int>(checkpointed) || t >= kKillAt) w -= Update(t);
    return w;
  };
  ASSERT_TRUE(admin->RegisterTable(Sparse()).ok());
  ASSERT_TRUE(admin->RegisterTable(Dense()).ok());
  SparseBatch batch;
  ASSERT_TRUE(admin->PullSparse(1, keys, &batch).ok());
  const uint64_t emb_salt = TableSalt("emb"), fc_salt = TableSalt("fc");
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(batch.RowOf(i)[0], expected(ShardOfKey(keys[i], emb_salt, 2))) << "key " << keys[i];
  std::vector<float> dense(3000);
  ASSERT_TRUE(admin->PullDense(2, absl::MakeSpan(dense)).ok());
  for (size_t i = 0; i < dense.size(); i += 256)
    EXPECT_EQ(dense[i], expected(ShardOfKey(i / 1024, fc_salt, 2))) << "element " << i;

  // The restarted shard exports its metrics: scheduled checkpoints, lost steps, latencies.
  ASSERT_GT(shards[1].metrics_port, 0);
  const auto scrape = testing::HttpRequestTo(shards[1].metrics_port, "GET", "/metrics");
  EXPECT_EQ(scrape.status, 200);
  EXPECT_NE(scrape.body.find("tandem_pserver_checkpoints_total{result=\"ok\"}"), std::string::npos);
  EXPECT_NE(scrape.body.find(absl::StrCat("tandem_pserver_steps_lost ", lost1)), std::string::npos)
      << scrape.body.substr(0, 2000);
  EXPECT_NE(scrape.body.find(
                "tandem_pserver_pull_latency_seconds_count{side=\"server\",kind=\"sparse\"}"),
            std::string::npos);
  EXPECT_EQ(testing::HttpRequestTo(shards[1].metrics_port, "GET", "/readyz").status, 200);

  EXPECT_EQ(shards[0].Stop(SIGTERM), 0);
  EXPECT_EQ(shards[1].Stop(SIGTERM), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem::pserver
