// The check (#18): in-process pservers over loopback gRPC, W trainer threads pushing
// sparse and dense updates every step while the shard set goes {0,1} -> {0,1,2} -> {0,2} ->
// {0,1,2,3}. The trainers pause at a step boundary for each reshard (the design, see
// docs/elastic.md) and reconnect with the new layout. At the end every row and element must equal
// its initial value plus the exact sum of every update pushed (SGD, lr 1, gradients in quarters,
// so float sums are exact), Adagrad accumulators and update counts must match a reference (the
// optimizer state moved with the rows), and each reshard must have moved about 1/N of the rows.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/job_certificates.h"
#include "common/metrics.h"
#include "common/tls_certificates.h"
#include "gtest/gtest.h"
#include "pserver/client/pserver_client.h"
#include "pserver/placement.h"
#include "pserver/reshard.h"
#include "pserver/server.h"
#include "tests/common/test_util.h"

namespace tandem::pserver {
namespace {

constexpr char kToken[] = "reshard-test-token";
constexpr uint32_t kTrainers = 4;  // a power of two: the sync average (sum / W) stays exact
constexpr uint32_t kMaxShards = 4;
constexpr uint64_t kSteps = 40;
constexpr uint64_t kKeys = 3000;
constexpr uint32_t kDim = 4;
constexpr uint32_t kKeysPerStep = 48;
constexpr uint64_t kDenseSize = 64 * 32 + 5;  // 65 blocks of 32, the last one short

enum : uint32_t { kEmb = 1, kAda = 2, kFc = 3, kMom = 4 };

TableConfig Table(uint32_t id) {
  TableConfig c;
  c.set_id(id);
  c.mutable_init()->set_kind(Initializer::CONSTANT);
  c.mutable_init()->set_value(1.0f);
  c.mutable_optimizer()->set_kind(OptimizerConfig::SGD);
  c.mutable_optimizer()->set_learning_rate(1.0f);
  switch (id) {
    case kEmb:
      c.set_name("emb");
      break;
    case kAda:
      c.set_name("ada");
      c.mutable_optimizer()->set_kind(OptimizerConfig::ADAGRAD);
      c.mutable_optimizer()->set_initial_accumulator(0.5f);
      break;
    case kFc:
      c.set_name("fc");
      break;
    case kMom:
      c.set_name("mom");
      c.mutable_optimizer()->set_kind(OptimizerConfig::MOMENTUM);
      c.mutable_optimizer()->set_momentum(0.5f);
      break;
  }
  if (id == kEmb || id == kAda) {
    c.set_kind(TableConfig::SPARSE);
    c.set_dim(kDim);
  } else {
    c.set_kind(TableConfig::DENSE);
    c.set_size(kDenseSize);
    c.set_block_size(32);
  }
  return c;
}

// The keys trainer `rank` touches at `step` (repeats allowed: the client de-duplicates) and the
// gradient of element j of a key: small integers, so every sum is exact.
std::vector<uint64_t> KeysOf(uint32_t rank, uint64_t step) {
  std::vector<uint64_t> keys;
  uint64_t x = Mix64(rank * 1000003 + step);
  for (uint32_t i = 0; i < kKeysPerStep; ++i) {
    x = Mix64(x);
    keys.push_back(x % kKeys);
  }
  return keys;
}
float Grad(uint32_t rank, uint64_t step, uint64_t key, uint32_t j) {
  return static_cast<float>(static_cast<int>((rank + step * 3 + key + j) % 5) - 2);
}
float DenseGrad(uint32_t rank, uint64_t step, uint64_t i) {
  return static_cast<float>(static_cast<int>((rank * 7 + step + i) % 7) - 3);
}

struct Layout {
  uint64_t epoch;
  std::vector<uint32_t> ids;
};

class ElasticCluster {
 public:
  std::unique_ptr<PServer> StartShard(uint32_t id, const Layout& layout, bool joining) {
    PServerOptions o;
    o.host = "127.0.0.1";
    o.token = kToken;
    o.shard.shard = id;
    o.shard.members = layout.ids;
    o.shard.placement_epoch = layout.epoch;
    o.shard.joining = joining;
    o.shard.num_trainers = kTrainers;
    o.shard.sync = true;
    auto ps = PServer::Start(o);
    EXPECT_TRUE(ps.ok()) << ps.status();
    return std::move(*ps);
  }

  std::string Endpoint(uint32_t id) { return absl::StrCat("127.0.0.1:", servers.at(id)->port()); }

  std::vector<ReshardMember> Members(const Layout& layout) {
    std::vector<ReshardMember> m;
    for (uint32_t id : layout.ids) m.push_back({id, Endpoint(id)});
    return m;
  }

  std::unique_ptr<PServerClient> Client(uint32_t rank, const Layout& layout) {
    PServerClientOptions o;
    for (uint32_t id : layout.ids) o.endpoints.push_back(Endpoint(id));
    o.shard_ids = layout.ids;
    o.placement_epoch = layout.epoch;
    o.block_size_shards = kMaxShards;
    o.token = kToken;
    o.rank = rank;
    o.sync = true;
    o.reconnect_timeout = absl::Seconds(60);
    auto c = PServerClient::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status();
    for (uint32_t t : {kEmb, kAda, kFc, kMom}) EXPECT_TRUE((*c)->RegisterTable(Table(t)).ok());
    return std::move(*c);
  }

  std::map<uint32_t, std::unique_ptr<PServer>> servers;
};

TEST(PServerReshardTest, ConcurrentTrainersAcrossReshardsLoseAndRepeatNothing) {
  const std::vector<Layout> layouts = {
      {1, {0, 1}}, {2, {0, 1, 2}}, {3, {0, 2}}, {4, {0, 2, 3, 1}}};
  const std::map<uint64_t, size_t> reshard_at = {{10, 1}, {20, 2}, {30, 3}};  // step -> layout
  ElasticCluster cluster;
  for (uint32_t id : layouts[0].ids)
    cluster.servers[id] = cluster.StartShard(id, layouts[0], false);

  // The gate: trainers arriving at a reshard step wait there; the last one in runs the reshard.
  absl::Mutex mu;
  size_t current = 0;        // index into layouts
  uint32_t at_gate = 0;
  absl::CondVar resharded;
  std::vector<ReshardReport> reports;
  std::vector<uint64_t> rows_before;  // rows held in total before each reshard
  auto reshard = [&](size_t to) {
    const Layout& from = layouts[current];
    const Layout& next = layouts[to];
    for (uint32_t id : next.ids)
      if (!cluster.servers.count(id)) cluster.servers[id] = cluster.StartShard(id, next, true);
    uint64_t rows = 0;
    for (uint32_t id : from.ids) {
      StatusResponse st;
      cluster.servers[id]->shard().FillStatus(&st);
      for (const TableStatus& t : st.tables())
        rows += t.kind() == TableConfig::SPARSE ? t.rows() : 0;
    }
    rows_before.push_back(rows);
    ReshardPlan plan;
    plan.epoch = next.epoch;
    plan.from = cluster.Members(from);
    plan.to = cluster.Members(next);
    auto report = RunReshard(plan, {.token = kToken});
    ASSERT_TRUE(report.ok()) << report.status();
    reports.push_back(*report);
    // A shard that left handed everything off: it holds nothing, then exits.
    for (uint32_t id : report->left) {
      StatusResponse st;
      cluster.servers[id]->shard().FillStatus(&st);
      for (const TableStatus& t : st.tables()) EXPECT_EQ(t.rows(), 0u) << "shard " << id;
      ASSERT_TRUE(cluster.servers[id]->Stop(false).ok());
      cluster.servers.erase(id);
    }
  };

  std::vector<std::thread> trainers;
  std::vector<absl::Status> results(kTrainers);
  for (uint32_t rank = 0; rank < kTrainers; ++rank) {
    trainers.emplace_back([&, rank] {
      auto fail = [&](const absl::Status& s) { results[rank] = s; };
      size_t layout = 0;
      std::unique_ptr<PServerClient> client = cluster.Client(rank, layouts[0]);
      SparseBatch emb, ada;
      std::vector<float> dense(kDenseSize);
      for (uint64_t step = 0; step < kSteps; ++step) {
        if (auto it = reshard_at.find(step); it != reshard_at.end()) {
          absl::MutexLock lock(&mu);
          if (++at_gate == kTrainers) {
            reshard(it->second);
            current = it->second;  // even after a failure (reported), so no trainer hangs
            at_gate = 0;
            resharded.SignalAll();
          } else {
            while (current != it->second) resharded.Wait(&mu);
          }
          layout = current;
        }
        if (client->placement().epoch() != layouts[layout].epoch)
          client = cluster.Client(rank, layouts[layout]);
        const std::vector<uint64_t> keys = KeysOf(rank, step);
        for (auto [table, batch] : {std::pair{kEmb, &emb}, std::pair{kAda, &ada}}) {
          if (absl::Status s = client->PullSparse(table, keys, batch); !s.ok()) return fail(s);
          std::vector<float> g(batch->unique_keys().size() * kDim);
          for (size_t u = 0; u < batch->unique_keys().size(); ++u)
            for (uint32_t j = 0; j < kDim; ++j)
              g[u * kDim + j] = Grad(rank, step, batch->unique_keys()[u], j);
          if (absl::Status s = client->PushSparse(*batch, g, step); !s.ok()) return fail(s);
        }
        if (absl::Status s = client->PullDense(kFc, absl::MakeSpan(dense)); !s.ok())
          return fail(s);
        std::vector<float> dg(kDenseSize);
        for (uint64_t i = 0; i < kDenseSize; ++i) dg[i] = DenseGrad(rank, step, i);
        for (uint32_t t : {kFc, kMom})
          if (absl::Status s = client->PushDense(t, dg, step); !s.ok()) return fail(s);
        if (absl::Status s = client->FinishStep(step); !s.ok()) return fail(s);
      }
    });
  }
  for (auto& t : trainers) t.join();
  for (uint32_t rank = 0; rank < kTrainers; ++rank)
    ASSERT_TRUE(results[rank].ok()) << "rank " << rank << ": " << results[rank];
  ASSERT_EQ(reports.size(), 3u);

  // The reference, in double (exact here for SGD: quarters of small integers).
  std::map<uint64_t, std::vector<std::vector<double>>> step_grads;  // key -> per step, per j
  std::vector<std::vector<double>> dense_steps(kSteps, std::vector<double>(kDenseSize, 0));
  for (uint64_t step = 0; step < kSteps; ++step) {
    for (uint32_t rank = 0; rank < kTrainers; ++rank) {
      std::set<uint64_t> unique;
      for (uint64_t k : KeysOf(rank, step)) unique.insert(k);
      for (uint64_t k : unique) {
        auto& per_step = step_grads[k];
        per_step.resize(kSteps);
        if (per_step[step].empty()) per_step[step].assign(kDim, 0);
        for (uint32_t j = 0; j < kDim; ++j) per_step[step][j] += Grad(rank, step, k, j) / kTrainers;
      }
      for (uint64_t i = 0; i < kDenseSize; ++i)
        dense_steps[step][i] += DenseGrad(rank, step, i) / static_cast<double>(kTrainers);
    }
  }

  const Layout& last = layouts.back();
  auto client = cluster.Client(0, last);
  std::vector<uint64_t> all_keys(kKeys);
  for (uint64_t k = 0; k < kKeys; ++k) all_keys[k] = k;
  SparseBatch emb, ada;
  ASSERT_TRUE(client->PullSparse(kEmb, all_keys, &emb).ok());
  ASSERT_TRUE(client->PullSparse(kAda, all_keys, &ada).ok());
  uint64_t checked = 0;
  for (uint64_t k = 0; k < kKeys; ++k) {
    std::vector<double> sgd(kDim, 1.0), w(kDim, 1.0), acc(kDim, 0.5);
    if (auto it = step_grads.find(k); it != step_grads.end())
      for (const auto& g : it->second) {
        if (g.empty()) continue;
        for (uint32_t j = 0; j < kDim; ++j) {
          sgd[j] -= g[j];
          acc[j] += g[j] * g[j];
          w[j] -= g[j] / (std::sqrt(acc[j]) + 1e-10);
        }
      }
    for (uint32_t j = 0; j < kDim; ++j) {
      ASSERT_EQ(emb.RowOf(k)[j], static_cast<float>(sgd[j])) << "emb key " << k << " element " << j;
      ASSERT_NEAR(ada.RowOf(k)[j], w[j], 1e-4) << "ada key " << k << " element " << j;
    }
    ++checked;
  }
  EXPECT_EQ(checked, kKeys);
  std::vector<float> fc(kDenseSize), mom(kDenseSize);
  ASSERT_TRUE(client->PullDense(kFc, absl::MakeSpan(fc)).ok());
  ASSERT_TRUE(client->PullDense(kMom, absl::MakeSpan(mom)).ok());
  for (uint64_t i = 0; i < kDenseSize; ++i) {
    double sgd = 1.0, w = 1.0, v = 0.0;
    for (uint64_t step = 0; step < kSteps; ++step) {
      sgd -= dense_steps[step][i];
      v = 0.5 * v + dense_steps[step][i];
      w -= v;
    }
    ASSERT_EQ(fc[i], static_cast<float>(sgd)) << "fc element " << i;
    ASSERT_NEAR(mom[i], w, 1e-3) << "mom element " << i;
  }

  // The optimizer state itself: Adagrad accumulators and every row's and block's update count.
  std::map<uint64_t, std::pair<std::vector<float>, uint64_t>> ada_state;
  std::map<uint64_t, uint64_t> block_counts;
  for (uint32_t id : last.ids) {
    for (const ShardState::Table& t : cluster.servers[id]->shard().Snapshot().tables) {
      if (t.config.id() == kAda) {
        for (size_t i = 0; i < t.data.keys.size(); ++i) {
          std::vector<float> a(t.data.values.begin() + i * 2 * kDim + kDim,
                               t.data.values.begin() + (i + 1) * 2 * kDim);
          ASSERT_TRUE(
              ada_state.emplace(t.data.keys[i], std::make_pair(a, t.data.counts[i])).second);
        }
      } else if (t.config.id() == kMom) {
        for (size_t i = 0; i < t.data.keys.size(); ++i)
          ASSERT_TRUE(block_counts.emplace(t.data.keys[i], t.data.counts[i]).second);
      }
    }
  }
  ASSERT_EQ(ada_state.size(), kKeys);
  for (uint64_t k = 0; k < kKeys; ++k) {
    std::vector<double> acc(kDim, 0.5);
    uint64_t updates = 0;
    if (auto it = step_grads.find(k); it != step_grads.end())
      for (const auto& g : it->second) {
        if (g.empty()) continue;
        ++updates;
        for (uint32_t j = 0; j < kDim; ++j) acc[j] += g[j] * g[j];
      }
    for (uint32_t j = 0; j < kDim; ++j)
      ASSERT_EQ(ada_state[k].first[j], static_cast<float>(acc[j])) << "accumulator of key " << k;
    ASSERT_EQ(ada_state[k].second, updates) << "update count of key " << k;
  }
  ASSERT_EQ(block_counts.size(), NumBlocks(kDenseSize, 32));
  for (const auto& [block, count] : block_counts) EXPECT_EQ(count, kSteps) << "block " << block;

  // About 1/N moved: 2 -> 3 moves ~1/3 (to the new shard), 3 -> 2 moves the leaver's ~1/3,
  // 2 -> 4 moves ~1/2.
  const double expected[] = {1.0 / 3, 1.0 / 3, 1.0 / 2};
  for (size_t i = 0; i < reports.size(); ++i) {
    const double fraction =
        static_cast<double>(reports[i].rows_moved) / static_cast<double>(rows_before[i]);
    EXPECT_NEAR(fraction, expected[i], 0.06) << "reshard " << i << ": " << reports[i].rows_moved
                                             << " of " << rows_before[i] << " rows";
    EXPECT_EQ(reports[i].rows_moved + reports[i].rows_kept, rows_before[i]);
    EXPECT_GT(reports[i].blocks_moved, 0u);
    std::cout << "reshard " << i << ": moved " << reports[i].rows_moved << " of "
              << rows_before[i] << " rows and " << reports[i].blocks_moved << " blocks, "
              << reports[i].bytes_moved << " bytes, in " << absl::FormatDuration(reports[i].total)
              << "\n";
  }
}

// The reshard's calls are authenticated as every other: with mutual TLS (the shards send to each
// other with the job's certificate; a coordinator holding another job's certificate gets nowhere)
// and with the job token (a wrong one is refused). A refused reshard changes nothing.
class ReshardAuthTest : public ::testing::TestWithParam<bool> {};

TEST_P(ReshardAuthTest, OnlyTheJobCanReshard) {
  const bool use_tls = GetParam();
  const std::string root =
      (std::filesystem::temp_directory_path() / absl::StrCat("reshard-auth-", getpid())).string();
  std::filesystem::remove_all(root);
  auto files_of = [&](const std::string& job) {
    auto c = tls::CreateJobCertificates(job, absl::Now(), {});
    EXPECT_TRUE(c.ok()) << c.status();
    const std::string dir = absl::StrCat(root, "/", job);
    std::filesystem::create_directories(dir);
    std::ofstream(absl::StrCat(dir, "/", tls::kCaBundleFile)) << c->ca_bundle_pem;
    std::ofstream(absl::StrCat(dir, "/", tls::kCertFile)) << c->cert_pem;
    std::ofstream(absl::StrCat(dir, "/", tls::kKeyFile)) << c->key_pem;
    return tls::TlsFiles::InFolder(dir);
  };
  const tls::TlsFiles ours = use_tls ? files_of("job-a") : tls::TlsFiles{};
  const tls::TlsFiles theirs = use_tls ? files_of("job-b") : tls::TlsFiles{};
  const std::string token = use_tls ? "" : kToken;
  auto start = [&](uint32_t id, std::vector<uint32_t> members, uint64_t epoch, bool joining) {
    PServerOptions o;
    o.host = "127.0.0.1";
    o.token = token;
    o.tls = ours;
    o.shard.shard = id;
    o.shard.members = std::move(members);
    o.shard.placement_epoch = epoch;
    o.shard.joining = joining;
    o.shard.sync = false;
    auto ps = PServer::Start(o);
    EXPECT_TRUE(ps.ok()) << ps.status();
    return std::move(*ps);
  };
  auto s0 = start(0, {0}, 1, false);
  auto s1 = start(1, {0, 1}, 2, true);
  const std::string e0 = absl::StrCat("127.0.0.1:", s0->port());
  const std::string e1 = absl::StrCat("127.0.0.1:", s1->port());
  auto client = [&](std::vector<std::string> endpoints, std::vector<uint32_t> ids, uint64_t epoch) {
    PServerClientOptions o;
    o.endpoints = std::move(endpoints);
    o.shard_ids = std::move(ids);
    o.placement_epoch = epoch;
    o.token = token;
    o.tls = ours;
    o.sync = false;
    o.reconnect_timeout = absl::Seconds(10);
    auto c = PServerClient::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE((*c)->RegisterTable(Table(kAda)).ok());
    return std::move(*c);
  };
  std::vector<uint64_t> keys(400);
  for (uint64_t k = 0; k < keys.size(); ++k) keys[k] = k * 31;
  SparseBatch before, after;
  {
    auto c = client({e0}, {0}, 1);
    ASSERT_TRUE(c->PullSparse(kAda, keys, &before).ok());
    std::vector<float> g(before.unique_keys().size() * kDim, 0.5f);
    ASSERT_TRUE(c->PushSparse(before, g, 0).ok());
    ASSERT_TRUE(c->PullSparse(kAda, keys, &before).ok());
  }
  ReshardPlan plan;
  plan.epoch = 2;
  plan.from = {{0, e0}};
  plan.to = {{0, e0}, {1, e1}};
  // Another job's certificate, or a wrong token: refused, nothing changes.
  ReshardAuth wrong;
  if (use_tls)
    wrong.tls = theirs;
  else
    wrong.token = "not-the-token";
  auto refused = RunReshard(plan, wrong);
  ASSERT_FALSE(refused.ok());
  if (!use_tls) EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  if (use_tls)  // the coordinator refuses the shard's certificate (and the shard would refuse it)
    EXPECT_NE(refused.status().message().find("certificate"), std::string::npos)
        << refused.status();
  StatusResponse st;
  s0->shard().FillStatus(&st);
  EXPECT_EQ(st.placement_epoch(), 1u);
  EXPECT_FALSE(st.resharding());
  // The job's own credentials: shard 0 sends half its rows to shard 1 over the same transport.
  auto report = RunReshard(plan, {.token = token, .tls = ours});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_NEAR(static_cast<double>(report->rows_moved) / keys.size(), 0.5, 0.1);
  auto c = client({e0, e1}, {0, 1}, 2);
  ASSERT_TRUE(c->PullSparse(kAda, keys, &after).ok());
  for (size_t i = 0; i < keys.size(); ++i)
    for (uint32_t j = 0; j < kDim; ++j)
      ASSERT_EQ(after.RowOf(i)[j], before.RowOf(i)[j]) << "key " << keys[i];
  std::filesystem::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Transports, ReshardAuthTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "MutualTls" : "Token"; });

// The new metrics are well-formed (promtool, as every component's) and count what happened.
TEST(ReshardMetricsTest, PassPromtool) {
  ElasticCluster cluster;
  const Layout one{1, {0}}, two{2, {0, 1}};
  cluster.servers[0] = cluster.StartShard(0, one, false);
  cluster.Client(0, one);  // declares the tables
  cluster.servers[1] = cluster.StartShard(1, two, true);
  ReshardPlan plan;
  plan.epoch = 2;
  plan.from = cluster.Members(one);
  plan.to = cluster.Members(two);
  plan.num_trainers = kTrainers;
  ASSERT_TRUE(RunReshard(plan, {.token = kToken}).ok());
  const std::string text = metrics::Registry::Default().Serialize();
  EXPECT_NE(text.find("tandem_pserver_reshards_total{result=\"committed\"}"), std::string::npos)
      << text;
  EXPECT_NE(text.find("tandem_pserver_layout_epoch 2"), std::string::npos) << text;
  const std::string path =
      (std::filesystem::temp_directory_path() / absl::StrCat("reshard-metrics-", getpid()))
          .string();
  std::ofstream(path) << text;
  auto which = testing::RunCommand("command -v promtool");
  if (which.exit_code != 0) GTEST_FAIL() << "promtool is not installed (package prometheus)";
  auto check = testing::RunCommand("promtool check metrics < " + path + " 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << text;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace tandem::pserver
