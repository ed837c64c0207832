// Shard logic without gRPC: placement, initializers, optimizers, the sync barrier, async
// staleness, restart fast-forward, validation, and checkpoint files.
#include "pserver/shard.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "pserver/initializer.h"
#include "pserver/optimizer.h"
#include "pserver/placement.h"
#include "pserver/shard_checkpoint.h"

namespace tandem::pserver {
namespace {

TableConfig SparseConfig(uint32_t id, const std::string& name, uint32_t dim,
                         OptimizerConfig::Kind opt = OptimizerConfig::SGD, float lr = 1.0f) {
  TableConfig c;
  c.set_id(id);
  c.set_name(name);
  c.set_kind(TableConfig::SPARSE);
  c.set_dim(dim);
  c.mutable_init()->set_kind(Initializer::CONSTANT);
  c.mutable_init()->set_value(1.0f);
  c.mutable_optimizer()->set_kind(opt);
  c.mutable_optimizer()->set_learning_rate(lr);
  return c;
}

// Keys of table `name` that shard `shard` of `n` owns.
std::vector<uint64_t> OwnedKeys(const std::string& name, uint32_t shard, uint32_t n, int count) {
  std::vector<uint64_t> keys;
  const uint64_t salt = TableSalt(name);
  for (uint64_t k = 0; static_cast<int>(keys.size()) < count; ++k)
    if (ShardOfKey(k, salt, n) == shard) keys.push_back(k);
  return keys;
}

// ---- Placement ---------------------------------------------------------------------------------

TEST(PlacementTest, DefaultBlockSizeFollowsPaddlesRule) {
  struct Case {
    uint64_t size;
    uint32_t shards;
    uint32_t want;
  } cases[] = {
      {1000, 1, 1024},                  // never below 1024
      {uint64_t{1} << 20, 1, 1 << 14},  // bits(2^20) = 21 -> 2^14: 64 blocks
      {uint64_t{1} << 24, 4, 1 << 16},  // 2^22 per shard -> bits 23 -> 2^16
      {uint64_t{1} << 40, 1, 1 << 22},  // capped at 2^22
  };
  for (const Case& c : cases)
    EXPECT_EQ(DefaultBlockSize(c.size, c.shards), c.want) << c.size << " / " << c.shards;
}

TEST(PlacementTest, SmallIntegerKeysSpreadEvenlyAndNotInRanges) {
  const uint32_t n = 4;
  const uint64_t salt = TableSalt("emb");
  std::vector<int> load(n, 0);
  int runs = 0;  // adjacent keys on the same shard
  for (uint64_t k = 0; k < 20000; ++k) {
    ++load[ShardOfKey(k, salt, n)];
    if (k > 0 && ShardOfKey(k, salt, n) == ShardOfKey(k - 1, salt, n)) ++runs;
  }
  for (int l : load) EXPECT_NEAR(l, 5000, 400);
  // Contiguous ranges would make almost every neighbour share a shard; a hash makes it ~1/n.
  EXPECT_LT(runs, 20000 / 2);
  // Another table's salt moves keys.
  int same = 0;
  for (uint64_t k = 0; k < 1000; ++k)
    same += ShardOfKey(k, salt, n) == ShardOfKey(k, TableSalt("other"), n);
  EXPECT_LT(same, 500);
}

// Rendezvous placement (elastic jobs): adding a shard moves only the keys the new shard wins,
// about 1/(N+1); removing one moves only the keys it held, about 1/N; load stays even.
TEST(PlacementTest, RendezvousMovesAboutOneNthOfTheKeys) {
  const uint64_t salt = TableSalt("emb");
  const int keys = 100000;
  for (uint32_t n = 1; n <= 7; ++n) {
    std::vector<uint32_t> ids;
    for (uint32_t i = 0; i < n; ++i) ids.push_back(i * 3 + 1);  // slots need not be dense
    const Placement before = Placement::Rendezvous(1, ids);
    std::vector<uint32_t> grown = ids;
    grown.push_back(100);
    const Placement after_grow = Placement::Rendezvous(2, grown);
    int moved = 0, elsewhere = 0;
    std::map<uint32_t, int> load;
    for (uint64_t k = 0; k < keys; ++k) {
      const uint32_t a = before.OwnerOf(k, salt), b = after_grow.OwnerOf(k, salt);
      ++load[b];
      if (a != b) {
        ++moved;
        elsewhere += b != 100;  // a moved key may only go to the new shard
      }
    }
    EXPECT_NEAR(static_cast<double>(moved) / keys, 1.0 / (n + 1), 0.01) << n << " -> " << n + 1;
    EXPECT_EQ(elsewhere, 0);
    for (const auto& [id, l] : load)
      EXPECT_NEAR(l, keys / (n + 1.0), keys * 0.03) << "shard " << id << " of " << n + 1;
    // Modulo placement, for comparison, moves n/(n+1) of the keys.
    int moved_modulo = 0;
    for (uint64_t k = 0; k < keys; ++k)
      moved_modulo += ShardOfKey(k, salt, n) != ShardOfKey(k, salt, n + 1);
    EXPECT_NEAR(static_cast<double>(moved_modulo) / keys, n / (n + 1.0), 0.01);
    if (n < 2) continue;
    // Shrink: remove the middle shard; only its keys move, spread over the others.
    std::vector<uint32_t> shrunk = ids;
    const uint32_t gone = shrunk[n / 2];
    shrunk.erase(shrunk.begin() + n / 2);
    const Placement after_shrink = Placement::Rendezvous(2, shrunk);
    moved = 0;
    int wrongly = 0;
    for (uint64_t k = 0; k < keys; ++k) {
      const uint32_t a = before.OwnerOf(k, salt), b = after_shrink.OwnerOf(k, salt);
      if (a != b) {
        ++moved;
        wrongly += a != gone;
      }
    }
    EXPECT_NEAR(static_cast<double>(moved) / keys, 1.0 / n, 0.01) << n << " -> " << n - 1;
    EXPECT_EQ(wrongly, 0);
  }
}

TEST(PlacementTest, RendezvousIsDeterministicAndOrderFree) {
  const uint64_t salt = TableSalt("emb");
  const Placement a = Placement::Rendezvous(3, {0, 1, 2});
  const Placement b = Placement::Rendezvous(3, {2, 0, 1});  // same ids, another order
  for (uint64_t k = 0; k < 1000; ++k) EXPECT_EQ(a.OwnerOf(k, salt), b.OwnerOf(k, salt));
  // Part of the wire format (placement.h COMPATIBILITY): these owners must never change.
  const uint32_t want[8] = {1, 1, 0, 0, 2, 2, 0, 2};
  for (uint64_t k = 0; k < 8; ++k) EXPECT_EQ(a.OwnerOf(k, salt), want[k]) << "key " << k;
  EXPECT_EQ(Placement::Modulo(3).OwnerOf(5, salt), ShardOfKey(5, salt, 3));
  EXPECT_EQ(a.ToString(), "shards [0, 1, 2] of epoch 3");
}

// ---- Initializers ------------------------------------------------------------------------------

TEST(InitializerTest, DeterministicPerRowAndColumn) {
  Initializer init;
  init.set_kind(Initializer::UNIFORM);
  init.set_low(-0.5f);
  init.set_high(0.5f);
  init.set_seed(7);
  ASSERT_TRUE(ValidateInitializer(init).ok());
  std::vector<float> a(8), b(8);
  InitializeRow(init, 42, absl::MakeSpan(a));
  InitializeRow(init, 42, absl::MakeSpan(b));
  EXPECT_EQ(a, b);
  InitializeRow(init, 43, absl::MakeSpan(b));
  EXPECT_NE(a, b);
  for (float v : a) {
    EXPECT_GE(v, -0.5f);
    EXPECT_LT(v, 0.5f);
  }
  init.set_kind(Initializer::NORMAL);
  init.set_mean(1.0f);
  init.set_stddev(2.0f);
  double sum = 0, sq = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double v = InitialValue(init, i, 0);
    sum += v;
    sq += v * v;
  }
  const double mean = sum / n, var = sq / n - mean * mean;
  EXPECT_NEAR(mean, 1.0, 0.05);
  EXPECT_NEAR(std::sqrt(var), 2.0, 0.05);
}

TEST(InitializerTest, RejectsBadConfigs) {
  Initializer init;
  EXPECT_FALSE(ValidateInitializer(init).ok());  // kind unset
  init.set_kind(Initializer::UNIFORM);
  init.set_low(1);
  init.set_high(1);
  EXPECT_FALSE(ValidateInitializer(init).ok());
  init.set_kind(Initializer::NORMAL);
  init.set_stddev(-1);
  EXPECT_FALSE(ValidateInitializer(init).ok());
  init.set_kind(Initializer::CONSTANT);
  init.set_value(NAN);
  EXPECT_FALSE(ValidateInitializer(init).ok());
}

// ---- Optimizers: three updates against a double-precision reference ----------------------------

TEST(OptimizerTest, MatchesReferenceFormulas) {
  struct Case {
    OptimizerConfig::Kind kind;
    const char* name;
  } cases[] = {{OptimizerConfig::SGD, "sgd"},
               {OptimizerConfig::MOMENTUM, "momentum"},
               {OptimizerConfig::ADAGRAD, "adagrad"},
               {OptimizerConfig::ADAM, "adam"}};
  const float grads[3][2] = {{0.5f, -1.0f}, {0.25f, 2.0f}, {-0.75f, 0.1f}};
  for (const Case& c : cases) {
    OptimizerConfig config;
    config.set_kind(c.kind);
    config.set_learning_rate(0.1f);
    config.set_momentum(0.9f);
    config.set_weight_decay(0.01f);
    config.set_initial_accumulator(0.1f);
    auto opt = Optimizer::FromConfig(config);
    ASSERT_TRUE(opt.ok()) << c.name << ": " << opt.status();
    std::vector<float> w = {1.0f, -2.0f};
    std::vector<float> state(2 * opt->StateSlots());
    opt->InitState(state.data(), 2);
    double rw[2] = {1.0, -2.0}, s1[2] = {0, 0}, s2[2] = {0, 0};
    if (c.kind == OptimizerConfig::ADAGRAD) s1[0] = s1[1] = 0.1;
    for (int t = 0; t < 3; ++t) {
      opt->Apply(w.data(), state.data(), grads[t], 2, 1.0f, t);
      for (int i = 0; i < 2; ++i) {
        const double g = grads[t][i] + 0.01 * rw[i];
        switch (c.kind) {
          case OptimizerConfig::SGD:
            rw[i] -= 0.1 * g;
            break;
          case OptimizerConfig::MOMENTUM:
            s1[i] = 0.9 * s1[i] + g;
            rw[i] -= 0.1 * s1[i];
            break;
          case OptimizerConfig::ADAGRAD:
            s1[i] += g * g;
            rw[i] -= 0.1 * g / (std::sqrt(s1[i]) + 1e-10);
            break;
          default: {
            s1[i] = 0.9 * s1[i] + 0.1 * g;
            s2[i] = 0.999 * s2[i] + 0.001 * g * g;
            const double mh = s1[i] / (1 - std::pow(0.9, t + 1));
            const double vh = s2[i] / (1 - std::pow(0.999, t + 1));
            rw[i] -= 0.1 * mh / (std::sqrt(vh) + 1e-8);
          }
        }
      }
    }
    for (int i = 0; i < 2; ++i) EXPECT_NEAR(w[i], rw[i], 1e-5) << c.name << " element " << i;
  }
}

TEST(OptimizerTest, RejectsOutOfRange) {
  OptimizerConfig c;
  c.set_kind(OptimizerConfig::SGD);
  EXPECT_FALSE(Optimizer::FromConfig(c).ok());  // learning rate 0
  c.set_learning_rate(0.1f);
  EXPECT_TRUE(Optimizer::FromConfig(c).ok());
  c.set_kind(OptimizerConfig::MOMENTUM);
  c.set_momentum(1.5f);
  EXPECT_FALSE(Optimizer::FromConfig(c).ok());
  c.set_kind(static_cast<OptimizerConfig::Kind>(99));
  EXPECT_FALSE(Optimizer::FromConfig(c).ok());
}

// ---- Shard protocol ----------------------------------------------------------------------------

PushSparseRequest SparsePush(uint32_t rank, uint64_t step, uint32_t seq,
                             const std::vector<uint64_t>& keys, const std::vector<float>& grads,
                             uint64_t based_on = 0) {
  PushSparseRequest r;
  r.mutable_header()->set_rank(rank);
  r.mutable_header()->set_step(step);
  r.mutable_header()->set_seq(seq);
  r.mutable_header()->set_based_on_version(based_on);
  r.set_table_id(1);
  for (uint64_t k : keys) r.add_keys(k);
  for (float g : grads) r.add_grads(g);
  return r;
}

std::vector<float> Pull(Shard& shard, const std::vector<uint64_t>& keys) {
  PullSparseRequest req;
  req.set_table_id(1);
  for (uint64_t k : keys) req.add_keys(k);
  PullSparseResponse resp;
  EXPECT_TRUE(shard.PullSparse(req, &resp).ok());
  return {resp.values().begin(), resp.values().end()};
}

Shard MakeShard(bool sync, uint32_t trainers, uint64_t staleness = 4) {
  ShardOptions o;
  o.num_trainers = trainers;
  o.sync = sync;
  o.staleness = staleness;
  return Shard(o);
}

void Register(Shard& shard, const TableConfig& c) {
  RegisterTableRequest req;
  *req.mutable_table() = c;
  RegisterTableResponse resp;
  ASSERT_TRUE(shard.RegisterTable(req, &resp).ok());
}

absl::Status Barrier(Shard& shard, uint32_t rank, uint64_t step, uint32_t pushes,
                     absl::Duration timeout = absl::Seconds(10)) {
  StepBarrierRequest req;
  req.set_rank(rank);
  req.set_step(step);
  req.set_num_pushes(pushes);
  StepBarrierResponse resp;
  return shard.StepBarrier(req, absl::Now() + timeout, &resp);
}

TEST(ShardTest, SyncAppliesStepOnlyWhenAllTrainersArrived) {
  Shard shard = MakeShard(/*sync=*/true, /*trainers=*/2);
  Register(shard, SparseConfig(1, "emb", 2));
  PushResponse pr;
  // Rank 0 pushes key 5 twice in one request (summed) and key 9.
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 0, 0, {5, 9, 5}, {1, 2, 3, 4, 5, 6}), &pr).ok());
  EXPECT_EQ(Pull(shard, {5, 9}), (std::vector<float>{1, 1, 1, 1}));  // nothing applied yet
  absl::Status rank0;
  std::thread waiter([&] { rank0 = Barrier(shard, 0, 0, 1); });
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 0, 0, {5}, {2, 2}), &pr).ok());
  // A repeated (rank, step, seq) is ignored.
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 0, 0, {5}, {100, 100}), &pr).ok());
  EXPECT_TRUE(pr.ignored());
  EXPECT_EQ(shard.version(), 0u);
  ASSERT_TRUE(Barrier(shard, 1, 0, 1).ok());
  waiter.join();
  ASSERT_TRUE(rank0.ok()) << rank0;
  EXPECT_EQ(shard.version(), 1u);
  // key 5: 1 - (1+5+2)/2 = -3, 1 - (2+6+2)/2 = -4; key 9: 1 - 3/2, 1 - 4/2.
  EXPECT_EQ(Pull(shard, {5, 9}), (std::vector<float>{-3, -4, -0.5f, -1}));
  // A push for an applied step is ignored.
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 0, 1, {5}, {1, 1}), &pr).ok());
  EXPECT_TRUE(pr.ignored());
}

TEST(ShardTest, SyncBarrierReportsMissingPushesAndTimesOut) {
  Shard shard = MakeShard(true, 2);
  Register(shard, SparseConfig(1, "emb", 1));
  EXPECT_EQ(Barrier(shard, 0, 0, 2).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Barrier(shard, 0, 0, 0, absl::Milliseconds(50)).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Barrier(shard, 7, 0, 0).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShardTest, AsyncDropsStaleGradients) {
  Shard shard = MakeShard(/*sync=*/false, 2, /*staleness=*/2);
  Register(shard, SparseConfig(1, "emb", 1));
  PushResponse pr;
  for (uint64_t step = 0; step < 5; ++step) {
    ASSERT_TRUE(shard.PushSparse(SparsePush(0, step, 0, {3}, {1}, step), &pr).ok());
    EXPECT_FALSE(pr.dropped_stale());
  }
  EXPECT_EQ(shard.version(), 5u);
  EXPECT_EQ(Pull(shard, {3}), (std::vector<float>{-4}));
  // Rank 1 computed on version 2: 5 - 2 = 3 > 2, dropped; on version 3: accepted.
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 2, 0, {3}, {10}, 2), &pr).ok());
  EXPECT_TRUE(pr.dropped_stale());
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 3, 0, {3}, {10}, 3), &pr).ok());
  EXPECT_FALSE(pr.dropped_stale());
  EXPECT_EQ(Pull(shard, {3}), (std::vector<float>{-14}));
  StatusResponse status;
  shard.FillStatus(&status);
  EXPECT_EQ(status.stale_dropped(), 1u);
  // A retried push (same rank, step and seq) is applied once.
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 3, 0, {3}, {10}, 3), &pr).ok());
  EXPECT_TRUE(pr.ignored());
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 3, 1, {3}, {1}, 3), &pr).ok());
  EXPECT_FALSE(pr.ignored());
  EXPECT_EQ(Pull(shard, {3}), (std::vector<float>{-15}));
}

TEST(ShardTest, RejectsMalformedRequests) {
  ShardOptions o;
  o.shard = 0;
  o.num_shards = 2;
  o.num_trainers = 1;
  Shard shard(o);
  Register(shard, SparseConfig(1, "emb", 2));
  const uint64_t mine = OwnedKeys("emb", 0, 2, 1)[0];
  const uint64_t theirs = OwnedKeys("emb", 1, 2, 1)[0];
  PushResponse pr;
  EXPECT_EQ(shard.PushSparse(SparsePush(0, 0, 0, {mine}, {1}), &pr).code(),
            absl::StatusCode::kInvalidArgument);  // dim 2 needs 2 floats
  EXPECT_EQ(shard.PushSparse(SparsePush(0, 0, 0, {theirs}, {1, 1}), &pr).code(),
            absl::StatusCode::kInvalidArgument);  // not this shard's key
  EXPECT_EQ(shard.PushSparse(SparsePush(0, 0, 0, {mine}, {NAN, 1}), &pr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(shard.PushSparse(SparsePush(3, 0, 0, {mine}, {1, 1}), &pr).code(),
            absl::StatusCode::kInvalidArgument);  // rank >= trainers
  PushSparseRequest unknown = SparsePush(0, 0, 0, {mine}, {1, 1});
  unknown.set_table_id(9);
  EXPECT_EQ(shard.PushSparse(unknown, &pr).code(), absl::StatusCode::kNotFound);
  RegisterTableRequest reg;
  RegisterTableResponse rr;
  *reg.mutable_table() = SparseConfig(2, "big", 1u << 30);
  EXPECT_EQ(shard.RegisterTable(reg, &rr).code(), absl::StatusCode::kInvalidArgument);
  *reg.mutable_table() = SparseConfig(1, "emb", 3);  // same id, other declaration
  EXPECT_EQ(shard.RegisterTable(reg, &rr).code(), absl::StatusCode::kAlreadyExists);
  *reg.mutable_table() = SparseConfig(1, "emb", 2);  // identical: idempotent
  EXPECT_TRUE(shard.RegisterTable(reg, &rr).ok());
  EXPECT_FALSE(rr.created());
  PullDenseRequest dense;
  dense.set_table_id(1);
  PullDenseResponse dr;
  EXPECT_EQ(shard.PullDense(dense, &dr).code(), absl::StatusCode::kInvalidArgument);  // sparse
  // A runaway step number far ahead of the shard is refused (the first one fast-forwards).
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 0, 0, {mine}, {1, 1}), &pr).ok());
  EXPECT_EQ(shard.PushSparse(SparsePush(0, 50, 0, {mine}, {1, 1}), &pr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Barrier(shard, 0, 1u << 20, 0).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShardTest, RefusesAnswersLargerThanTheLimit) {
  ShardOptions o;
  o.max_response_floats = 1000;
  Shard shard(o);
  Register(shard, SparseConfig(1, "emb", 100));
  PullSparseRequest req;
  req.set_table_id(1);
  for (uint64_t k = 0; k < 11; ++k) req.add_keys(k);
  PullSparseResponse resp;
  EXPECT_EQ(shard.PullSparse(req, &resp).code(), absl::StatusCode::kInvalidArgument);
  req.mutable_keys()->RemoveLast();
  EXPECT_TRUE(shard.PullSparse(req, &resp).ok());
  EXPECT_EQ(resp.values_size(), 1000);
}

TEST(ShardTest, RestoreFastForwardsAndCountsLostSteps) {
  Shard shard = MakeShard(true, 1);
  Register(shard, SparseConfig(1, "emb", 1));
  PushResponse pr;
  for (uint64_t step = 0; step < 3; ++step) {
    ASSERT_TRUE(shard.PushSparse(SparsePush(0, step, 0, {4}, {1}), &pr).ok());
    ASSERT_TRUE(Barrier(shard, 0, step, 1).ok());
  }
  const ShardState saved = shard.Snapshot();
  EXPECT_EQ(saved.version, 3u);
  Shard restarted = MakeShard(true, 1);
  ASSERT_TRUE(restarted.Restore(saved).ok());
  EXPECT_EQ(Pull(restarted, {4}), (std::vector<float>{-2}));
  // The trainer had reached step 6: steps 3, 4 and 5 are lost on this shard.
  ASSERT_TRUE(restarted.PushSparse(SparsePush(0, 6, 0, {4}, {1}), &pr).ok());
  EXPECT_EQ(pr.steps_lost(), 3u);
  ASSERT_TRUE(Barrier(restarted, 0, 6, 1).ok());
  EXPECT_EQ(restarted.version(), 7u);
  EXPECT_EQ(Pull(restarted, {4}), (std::vector<float>{-3}));
  // A snapshot of another layout is refused.
  ShardOptions other;
  other.shard = 1;
  other.num_shards = 2;
  Shard wrong(other);
  EXPECT_FALSE(wrong.Restore(saved).ok());
}

TEST(ShardCheckpointTest, RoundTripAndFallBackToOlderFile) {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("pserver_ckpt_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ShardOptions o;
  o.num_trainers = 1;
  Shard shard(o);
  Register(shard, SparseConfig(1, "emb", 3, OptimizerConfig::ADAM, 0.1f));
  TableConfig dense;
  dense.set_id(2);
  dense.set_name("fc");
  dense.set_kind(TableConfig::DENSE);
  dense.set_size(3000);
  dense.set_block_size(1024);
  dense.mutable_init()->set_kind(Initializer::UNIFORM);
  dense.mutable_init()->set_low(-1);
  dense.mutable_init()->set_high(1);
  dense.mutable_optimizer()->set_kind(OptimizerConfig::MOMENTUM);
  dense.mutable_optimizer()->set_learning_rate(0.1f);
  dense.mutable_optimizer()->set_momentum(0.5f);
  Register(shard, dense);
  PushResponse pr;
  // Keys above 2^53 (and one with a NaN-like bit pattern) must survive the file exactly.
  const std::vector<uint64_t> keys = {1, 0xFFFFFFFFFFFFFFF1ull, 0x7FF8000000000001ull};
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 0, 0, keys, {1, 2, 3, 4, 5, 6, 7, 8, 9}), &pr).ok());
  ASSERT_TRUE(Barrier(shard, 0, 0, 1).ok());
  ShardCheckpointer ckpt(dir, 0, 2);
  auto first = ckpt.Write(shard.Snapshot());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 1, 0, keys, {1, 1, 1, 1, 1, 1, 1, 1, 1}), &pr).ok());
  ASSERT_TRUE(Barrier(shard, 0, 1, 1).ok());
  auto second = ckpt.Write(shard.Snapshot());
  ASSERT_TRUE(second.ok());
  auto loaded = ckpt.LoadLatest();
  ASSERT_TRUE(loaded.ok() && loaded->has_value()) << loaded.status();
  EXPECT_EQ((*loaded)->version, 2u);
  Shard restored(o);
  ASSERT_TRUE(restored.Restore(**loaded).ok());
  EXPECT_EQ(Pull(restored, keys), Pull(shard, keys));
  const ShardState a = shard.Snapshot(), b = restored.Snapshot();
  ASSERT_EQ(a.tables.size(), b.tables.size());
  for (size_t i = 0; i < a.tables.size(); ++i) {
    EXPECT_EQ(std::set<uint64_t>(a.tables[i].data.keys.begin(), a.tables[i].data.keys.end()),
              std::set<uint64_t>(b.tables[i].data.keys.begin(), b.tables[i].data.keys.end()));
    EXPECT_EQ(a.tables[i].data.counts.size(), b.tables[i].data.counts.size());
  }
  // Truncate the newest file: loading falls back to the older checkpoint.
  std::filesystem::resize_file(*second, std::filesystem::file_size(*second) / 2);
  loaded = ckpt.LoadLatest();
  ASSERT_TRUE(loaded.ok() && loaded->has_value()) << loaded.status();
  EXPECT_EQ((*loaded)->version, 1u);
  // Keep: only the newest 2 files remain after a third write.
  ASSERT_TRUE(ckpt.Write(shard.Snapshot()).ok());
  EXPECT_EQ(ckpt.List().size(), 2u);
  std::filesystem::remove_all(dir);
}


// ---- Consistent cut ----------------------------------------------------------------------------

// One sync step of W = 2 trainers: each pushes `grad` for key 4, then both wait at the barrier.
void TwoRankStep(Shard& shard, uint64_t step, float grad) {
  PushResponse pr;
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, step, 0, {4}, {grad}), &pr).ok());
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, step, 0, {4}, {grad}), &pr).ok());
  absl::Status rank1;
  std::thread other([&] { rank1 = Barrier(shard, 1, step, 1); });
  ASSERT_TRUE(Barrier(shard, 0, step, 1).ok());
  other.join();
  ASSERT_TRUE(rank1.ok()) << rank1;
}

absl::Status JoinRank(Shard& shard, uint32_t rank, bool* aborted = nullptr) {
  JoinRequest req;
  req.set_rank(rank);
  JoinResponse resp;
  absl::Status s = shard.Join(req, &resp);
  if (aborted != nullptr) *aborted = resp.aborted();
  return s;
}

absl::StatusOr<RestoreResponse> RestoreTo(Shard& shard, uint64_t step,
                                          const std::map<uint64_t, ShardState>& files) {
  RestoreRequest req;
  req.set_step(step);
  RestoreResponse resp;
  absl::Status s = shard.RestoreToStep(
      req,
      [&](uint64_t want) -> absl::StatusOr<ShardState> {
        auto it = files.find(want);
        if (it == files.end())
          return absl::FailedPreconditionError(absl::StrCat("no checkpoint of step ", want));
        return it->second;
      },
      &resp);
  if (!s.ok()) return s;
  return resp;
}

TEST(ShardCutTest, CheckpointsExactStepsAndRollsBackToThem) {
  Shard shard = MakeShard(/*sync=*/true, /*trainers=*/2);
  Register(shard, SparseConfig(1, "emb", 1));
  ASSERT_TRUE(JoinRank(shard, 0).ok());
  ASSERT_TRUE(JoinRank(shard, 1).ok());
  std::map<uint64_t, ShardState> files;
  TwoRankStep(shard, 0, 1);  // 1 - 1 = 0
  TwoRankStep(shard, 1, 1);  // -1
  // Only the step the shard is at can be checkpointed.
  EXPECT_EQ(shard.SnapshotAtStep(3).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(shard.SnapshotAtStep(1).status().code(), absl::StatusCode::kFailedPrecondition);
  auto at2 = shard.SnapshotAtStep(2);
  ASSERT_TRUE(at2.ok()) << at2.status();
  EXPECT_EQ(at2->version, 2u);
  EXPECT_TRUE(at2->cut_mode);
  files[2] = *at2;
  // A push of step 2 is pending (not applied) while a checkpoint of step 2 is taken.
  PushResponse pr;
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 2, 0, {4}, {5}), &pr).ok());
  auto again = shard.SnapshotAtStep(2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->tables[0].data.values, at2->tables[0].data.values);
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 2, 0, {4}, {5}), &pr).ok());
  absl::Status rank1;
  std::thread other([&] { rank1 = Barrier(shard, 1, 2, 1); });
  ASSERT_TRUE(Barrier(shard, 0, 2, 1).ok());
  other.join();
  TwoRankStep(shard, 3, 1);
  EXPECT_EQ(Pull(shard, {4}), (std::vector<float>{-7}));
  EXPECT_EQ(shard.version(), 4u);

  // A trainer resumed at step 2: the shard goes back to exactly its state of step 2.
  auto r = RestoreTo(shard, 2, files);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->rolled_back());
  EXPECT_EQ(r->from_version(), 4u);
  EXPECT_EQ(shard.version(), 2u);
  EXPECT_EQ(shard.steps_lost(), 2u);
  EXPECT_EQ(Pull(shard, {4}), (std::vector<float>{-1}));
  // The other trainer's restore of the same step is a no-op and keeps the first one's pushes.
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 2, 0, {4}, {1}), &pr).ok());
  r = RestoreTo(shard, 2, files);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->rolled_back());
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 2, 0, {4}, {3}), &pr).ok());
  std::thread other2([&] { rank1 = Barrier(shard, 1, 2, 1); });
  ASSERT_TRUE(Barrier(shard, 0, 2, 1).ok());
  other2.join();
  EXPECT_EQ(Pull(shard, {4}), (std::vector<float>{-3}));  // -1 - (1 + 3) / 2
  // A step the shard has not reached is refused (never fast-forwarded) in cut mode.
  EXPECT_EQ(shard.PushSparse(SparsePush(0, 5, 0, {4}, {1}), &pr).code(),
            absl::StatusCode::kAborted);
  // A step it holds no checkpoint of: a clear error, the state is untouched.
  auto missing = RestoreTo(shard, 7, files);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("step 7"), std::string::npos);
  EXPECT_EQ(shard.version(), 3u);
  // Step 0: every table back to its initializer, still declared.
  r = RestoreTo(shard, 0, files);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->rolled_back());
  EXPECT_EQ(shard.version(), 0u);
  EXPECT_EQ(Pull(shard, {4}), (std::vector<float>{1}));
}

TEST(ShardCutTest, RejoiningRankAbortsTheStepInFlightUntilRestored) {
  Shard shard = MakeShard(true, 2);
  Register(shard, SparseConfig(1, "emb", 1));
  bool aborted = true;
  ASSERT_TRUE(JoinRank(shard, 0, &aborted).ok());
  EXPECT_FALSE(aborted);
  ASSERT_TRUE(JoinRank(shard, 1, &aborted).ok());
  EXPECT_FALSE(aborted);
  TwoRankStep(shard, 0, 1);
  // Rank 1 waits in step 1 for rank 0, which died; rank 0's new process joins.
  PushResponse pr;
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 1, 0, {4}, {1}), &pr).ok());
  absl::Status waiting;
  std::thread rank1([&] { waiting = Barrier(shard, 1, 1, 1, absl::Seconds(60)); });
  // Whether rank 1 is already waiting or arrives after the join, its barrier is aborted.
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(JoinRank(shard, 0, &aborted).ok());
  EXPECT_TRUE(aborted);
  rank1.join();
  EXPECT_EQ(waiting.code(), absl::StatusCode::kAborted) << waiting;
  // Everything is refused until the trainers restore a common step.
  EXPECT_EQ(shard.PushSparse(SparsePush(1, 1, 0, {4}, {1}), &pr).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(Barrier(shard, 1, 1, 0).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(shard.SnapshotAtStep(1).status().code(), absl::StatusCode::kAborted);
  auto r = RestoreTo(shard, 1, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->rolled_back());  // already at step 1; the aborted pushes were dropped
  TwoRankStep(shard, 1, 2);
  EXPECT_EQ(Pull(shard, {4}), (std::vector<float>{-2}));  // 1 - 1 - 2
}

TEST(ShardCutTest, RestartedShardRefusesStepsAheadUntilRestored) {
  Shard shard = MakeShard(true, 2);
  Register(shard, SparseConfig(1, "emb", 1));
  ASSERT_TRUE(JoinRank(shard, 0).ok());
  TwoRankStep(shard, 0, 1);
  auto saved = shard.SnapshotAtStep(1);
  ASSERT_TRUE(saved.ok());
  // The shard restarts from its checkpoint of step 1 while the trainers reached step 3.
  Shard restarted = MakeShard(true, 2);
  ASSERT_TRUE(restarted.Restore(*saved).ok());
  PushResponse pr;
  EXPECT_EQ(restarted.PushSparse(SparsePush(0, 3, 0, {4}, {1}), &pr).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(restarted.steps_lost(), 2u);
  EXPECT_EQ(restarted.version(), 1u);
  // The resumed trainers restore step 1 (already there) and continue exactly.
  ASSERT_TRUE(RestoreTo(restarted, 1, {}).ok());
  TwoRankStep(restarted, 1, 1);
  EXPECT_EQ(Pull(restarted, {4}), (std::vector<float>{-1}));
  // Without trainer-driven checkpoints the old behaviour stays: a fast-forward.
  Shard legacy = MakeShard(true, 1);
  Register(legacy, SparseConfig(1, "emb", 1));
  ASSERT_TRUE(legacy.PushSparse(SparsePush(0, 4, 0, {4}, {1}), &pr).ok());
  EXPECT_EQ(pr.steps_lost(), 4u);
}

TEST(ShardCutTest, AsyncCheckpointsAnyStateAndRestoresItOncePerResume) {
  Shard shard = MakeShard(/*sync=*/false, /*trainers=*/2);
  Register(shard, SparseConfig(1, "emb", 1));
  ASSERT_TRUE(JoinRank(shard, 0).ok());
  ASSERT_TRUE(JoinRank(shard, 1).ok());
  PushResponse pr;
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 0, 0, {4}, {1}), &pr).ok());
  ASSERT_TRUE(shard.PushSparse(SparsePush(1, 0, 0, {4}, {1}), &pr).ok());
  // Async: whatever has arrived, named by the trainer's step (a weaker cut).
  auto at1 = shard.SnapshotAtStep(1);
  ASSERT_TRUE(at1.ok()) << at1.status();
  std::map<uint64_t, ShardState> files{{1, *at1}};
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 1, 0, {4}, {1}), &pr).ok());
  EXPECT_EQ(Pull(shard, {4}), (std::vector<float>{-2}));
  // Both ranks restart and resume at step 1: the first restore rolls back, the second keeps the
  // first rank's new push.
  bool aborted = true;
  ASSERT_TRUE(JoinRank(shard, 0, &aborted).ok());
  EXPECT_FALSE(aborted) << "async: there is no step in flight to abort";
  ASSERT_TRUE(JoinRank(shard, 1).ok());
  auto r = RestoreTo(shard, 1, files);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->rolled_back());
  EXPECT_EQ(Pull(shard, {4}), (std::vector<float>{-1}));
  ASSERT_TRUE(shard.PushSparse(SparsePush(0, 1, 0, {4}, {1}), &pr).ok());
  r = RestoreTo(shard, 1, files);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->rolled_back());
  EXPECT_EQ(Pull(shard, {4}), (std::vector<float>{-2}));
}

TEST(ShardCheckpointTest, NumberedByStepListedLoadedAndPrunedAboveARollBack) {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("pserver_cut_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  Shard shard = MakeShard(true, 1);
  Register(shard, SparseConfig(1, "emb", 2));
  ShardCheckpointer ckpt(dir, 0, 3);
  ShardState state = shard.Snapshot();
  ASSERT_TRUE(ckpt.Write(state, 5).ok());
  ASSERT_TRUE(ckpt.Write(state, 10).ok());
  EXPECT_EQ(ckpt.Steps(), (std::vector<uint64_t>{5, 10}));
  auto loaded = ckpt.Load(10);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto missing = ckpt.Load(7);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("shard 0 has no checkpoint of step 7"),
            std::string::npos)
      << missing.status();
  EXPECT_NE(missing.status().message().find("[5, 10]"), std::string::npos) << missing.status();
  ckpt.RemoveAbove(5);
  EXPECT_EQ(ckpt.Steps(), (std::vector<uint64_t>{5}));
  std::filesystem::remove_all(dir);
}

// ---- Resharding (elastic jobs), without gRPC ------------------------------------------------

ShardOptions ElasticOptions(uint32_t id, std::vector<uint32_t> members, uint64_t epoch,
                            bool joining = false, bool sync = false) {
  ShardOptions o;
  o.shard = id;
  o.members = std::move(members);
  o.num_shards = static_cast<uint32_t>(o.members.size());
  o.placement_epoch = epoch;
  o.joining = joining;
  o.num_trainers = 1;
  o.sync = sync;
  return o;
}

TableConfig DenseConfig(uint32_t id, const std::string& name, uint64_t size, uint32_t block) {
  TableConfig c;
  c.set_id(id);
  c.set_name(name);
  c.set_kind(TableConfig::DENSE);
  c.set_size(size);
  c.set_block_size(block);
  c.mutable_init()->set_kind(Initializer::CONSTANT);
  c.mutable_init()->set_value(0.5f);
  c.mutable_optimizer()->set_kind(OptimizerConfig::MOMENTUM);
  c.mutable_optimizer()->set_learning_rate(1.0f);
  c.mutable_optimizer()->set_momentum(0.5f);
  return c;
}

ReshardBeginRequest BeginRequest(uint64_t epoch, const std::vector<uint32_t>& to,
                                 const std::vector<uint32_t>& from) {
  ReshardBeginRequest req;
  req.set_epoch(epoch);
  for (uint32_t id : to) {
    ShardEndpoint* e = req.add_members();
    e->set_id(id);
    e->set_endpoint(absl::StrCat("shard-", id));
  }
  for (uint32_t id : from) req.add_previous(id);
  return req;
}

// Sends `from`'s outgoing rows to the shards of `all` as the pserver would (one chunk with every
// table, then the last chunk). Returns the rows and blocks sent.
std::pair<uint64_t, uint64_t> Deliver(Shard& from, uint64_t epoch,
                                      std::map<uint32_t, Shard*>& all, bool send_last = true) {
  auto out = from.PrepareOutgoing(epoch);
  EXPECT_TRUE(out.ok()) << out.status();
  for (auto& [dest, tables] : out->by_shard) {
    ReshardData data;
    data.set_epoch(epoch);
    data.set_from(from.options().shard);
    data.set_seq(0);
    data.set_version(out->version);
    for (const ReshardTable& t : tables) *data.add_tables() = t;
    EXPECT_TRUE(all.at(dest)->ReceiveReshard(data).ok());
    EXPECT_TRUE(all.at(dest)->ReceiveReshard(data).ok());  // a retried chunk is ignored
    if (!send_last) continue;
    ReshardData last;
    last.set_epoch(epoch);
    last.set_from(from.options().shard);
    last.set_seq(1);
    last.set_last(true);
    EXPECT_TRUE(all.at(dest)->ReceiveReshard(last).ok());
  }
  return {out->rows_sent, out->blocks_sent};
}

// Every sparse row and dense block of the shards, with optimizer state and update count.
std::map<std::pair<uint32_t, uint64_t>, std::pair<std::vector<float>, uint64_t>> Contents(
    const std::vector<Shard*>& shards) {
  std::map<std::pair<uint32_t, uint64_t>, std::pair<std::vector<float>, uint64_t>> all;
  for (Shard* shard : shards) {
    for (const ShardState::Table& t : shard->Snapshot().tables) {
      const size_t n = t.data.keys.size();
      if (n == 0) continue;
      const size_t width = t.data.values.size() / n;  // equal blocks in these tests
      for (size_t i = 0; i < n; ++i) {
        std::vector<float> v(t.data.values.begin() + i * width,
                             t.data.values.begin() + (i + 1) * width);
        EXPECT_TRUE(all.emplace(std::make_pair(t.config.id(), t.data.keys[i]),
                                std::make_pair(v, t.data.counts[i]))
                        .second)
            << "key " << t.data.keys[i] << " of table " << t.config.id() << " held twice";
      }
    }
  }
  return all;
}

TEST(ReshardTest, RowsBlocksAndOptimizerStateMoveExactlyOnce) {
  Shard s0(ElasticOptions(0, {0, 1}, 1)), s1(ElasticOptions(1, {0, 1}, 1));
  Shard s2(ElasticOptions(2, {0, 1, 2}, 2, /*joining=*/true));
  std::map<uint32_t, Shard*> all = {{0, &s0}, {1, &s1}, {2, &s2}};
  const TableConfig emb = SparseConfig(1, "emb", 2, OptimizerConfig::ADAGRAD, 1.0f);
  const TableConfig fc = DenseConfig(2, "fc", 64 * 16, 16);
  for (Shard* s : {&s0, &s1}) {
    Register(*s, emb);
    Register(*s, fc);
  }
  const Placement old_layout = Placement::Rendezvous(1, {0, 1});
  const uint64_t salt = TableSalt("emb");
  std::map<uint32_t, std::vector<uint64_t>> keys_of;
  for (uint64_t k = 0; k < 300; ++k) keys_of[old_layout.OwnerOf(k, salt)].push_back(k);
  PushResponse pr;
  for (uint32_t id : {0u, 1u}) {
    std::vector<float> grads(keys_of[id].size() * 2, 0.25f);
    PushSparseRequest push = SparsePush(0, 0, 0, keys_of[id], grads);
    push.mutable_header()->set_placement_epoch(1);
    ASSERT_TRUE(all[id]->PushSparse(push, &pr).ok());
    // Dense: every owned block once.
    PushDenseRequest dense;
    dense.mutable_header()->set_placement_epoch(1);
    dense.mutable_header()->set_seq(1);
    dense.set_table_id(2);
    for (const auto& t : all[id]->Snapshot().tables)
      if (t.config.id() == 2)
        for (uint64_t b : t.data.keys) dense.add_block_ids(static_cast<uint32_t>(b));
    dense.mutable_grads()->Resize(dense.block_ids_size() * 16, 2.0f);
    ASSERT_TRUE(all[id]->PushDense(dense, &pr).ok()) << id;
  }
  const auto before = Contents({&s0, &s1});
  ASSERT_EQ(before.size(), 300u + 64u);

  // A joining shard serves nothing before the commit.
  PullSparseRequest pull;
  pull.set_table_id(1);
  pull.set_placement_epoch(2);
  PullSparseResponse pull_resp;
  EXPECT_EQ(s2.PullSparse(pull, &pull_resp).code(), absl::StatusCode::kUnavailable);

  const ReshardBeginRequest begin = BeginRequest(2, {0, 1, 2}, {0, 1});
  ReshardBeginResponse br;
  for (Shard* s : {&s0, &s1, &s2}) ASSERT_TRUE(s->BeginReshard(begin, &br).ok());
  ASSERT_TRUE(s0.BeginReshard(begin, &br).ok());  // a retried begin
  // Frozen: pushes are answered UNAVAILABLE (the client retries), never applied.
  PushSparseRequest during = SparsePush(0, 1, 0, {keys_of[0][0]}, {1, 1});
  during.mutable_header()->set_placement_epoch(1);
  EXPECT_EQ(s0.PushSparse(during, &pr).code(), absl::StatusCode::kUnavailable);

  const auto [rows0, blocks0] = Deliver(s0, 2, all);
  // Shard 1's last chunk has not arrived: shard 2 must refuse to commit.
  const auto [rows1, blocks1] = Deliver(s1, 2, all, /*send_last=*/false);
  ReshardCommitRequest commit;
  commit.set_epoch(2);
  ReshardCommitResponse cr;
  absl::Status early = s2.CommitReshard(commit, &cr);
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  EXPECT_NE(early.message().find("from shard 1"), std::string::npos) << early;
  Deliver(s1, 2, all);
  uint64_t received_rows = 0, received_blocks = 0;
  for (Shard* s : {&s0, &s1, &s2}) {
    ASSERT_TRUE(s->CommitReshard(commit, &cr).ok());
    received_rows += cr.rows_received();
    received_blocks += cr.blocks_received();
    EXPECT_FALSE(cr.left());
  }
  EXPECT_EQ(received_rows, rows0 + rows1);
  EXPECT_EQ(received_blocks, blocks0 + blocks1);
  // About a third moved, all of it to the new shard.
  EXPECT_NEAR(static_cast<double>(rows0 + rows1) / 300, 1.0 / 3, 0.1);
  EXPECT_EQ(Contents({&s0, &s1, &s2}), before);  // values, Adagrad/momentum state and counts
  const Placement new_layout = Placement::Rendezvous(2, {0, 1, 2});
  for (Shard* s : {&s0, &s1, &s2})
    for (const ShardState::Table& t : s->Snapshot().tables)
      for (uint64_t k : t.data.keys)
        EXPECT_EQ(new_layout.OwnerOf(k, TableSalt(t.config.name())), s->options().shard);

  // The old layout's requests are refused; the new one's are served.
  EXPECT_EQ(s0.PushSparse(during, &pr).code(), absl::StatusCode::kFailedPrecondition);
  const uint64_t moved_key = [&] {
    for (uint64_t k : keys_of[0])
      if (new_layout.OwnerOf(k, salt) == 2) return k;
    return uint64_t{0};
  }();
  PushSparseRequest after = SparsePush(0, 1, 0, {moved_key}, {1, 1});
  after.mutable_header()->set_placement_epoch(2);
  EXPECT_EQ(s0.PushSparse(after, &pr).code(), absl::StatusCode::kInvalidArgument);  // not its key
  ASSERT_TRUE(s2.PushSparse(after, &pr).ok());
  EXPECT_EQ(s2.placement().ToString(), "shards [0, 1, 2] of epoch 2");
}

TEST(ReshardTest, ShrinkHandsEverythingOffAndAbortRestoresTheOldLayout) {
  Shard s0(ElasticOptions(0, {0, 1, 2}, 1)), s1(ElasticOptions(1, {0, 1, 2}, 1)),
      s2(ElasticOptions(2, {0, 1, 2}, 1));
  std::map<uint32_t, Shard*> all = {{0, &s0}, {1, &s1}, {2, &s2}};
  const TableConfig emb = SparseConfig(1, "emb", 3, OptimizerConfig::MOMENTUM, 1.0f);
  for (Shard* s : {&s0, &s1, &s2}) Register(*s, emb);
  const Placement layout = Placement::Rendezvous(1, {0, 1, 2});
  PushResponse pr;
  for (uint64_t k = 0; k < 200; ++k) {
    PushSparseRequest push = SparsePush(0, 0, static_cast<uint32_t>(k), {k}, {1, 2, 3});
    push.mutable_header()->set_placement_epoch(1);
    ASSERT_TRUE(all[layout.OwnerOf(k, TableSalt("emb"))]->PushSparse(push, &pr).ok());
  }
  const auto before = Contents({&s0, &s1, &s2});

  // Begun, sent, then aborted: every shard serves the old layout with everything it had.
  const ReshardBeginRequest begin = BeginRequest(2, {0, 1}, {0, 1, 2});
  ReshardBeginResponse br;
  for (Shard* s : {&s0, &s1, &s2}) ASSERT_TRUE(s->BeginReshard(begin, &br).ok());
  for (Shard* s : {&s0, &s1, &s2}) Deliver(*s, 2, all);
  ReshardAbortRequest abort;
  abort.set_epoch(2);
  for (Shard* s : {&s0, &s1, &s2}) ASSERT_TRUE(s->AbortReshard(abort).ok());
  EXPECT_EQ(Contents({&s0, &s1, &s2}), before);
  PullSparseRequest old_pull;  // serving the old layout again
  old_pull.set_table_id(1);
  old_pull.set_placement_epoch(1);
  PullSparseResponse old_resp;
  EXPECT_TRUE(s2.PullSparse(old_pull, &old_resp).ok());
  old_pull.set_placement_epoch(2);
  EXPECT_EQ(s2.PullSparse(old_pull, &old_resp).code(), absl::StatusCode::kFailedPrecondition);

  // Again, committed: shard 2 leaves with nothing, shards 0 and 1 hold everything.
  const ReshardBeginRequest begin3 = BeginRequest(3, {0, 1}, {0, 1, 2});
  for (Shard* s : {&s0, &s1, &s2}) ASSERT_TRUE(s->BeginReshard(begin3, &br).ok());
  uint64_t moved = 0;
  for (Shard* s : {&s0, &s1, &s2}) moved += Deliver(*s, 3, all).first;
  ReshardCommitRequest commit;
  commit.set_epoch(3);
  ReshardCommitResponse cr;
  for (Shard* s : {&s0, &s1, &s2}) ASSERT_TRUE(s->CommitReshard(commit, &cr).ok());
  EXPECT_TRUE(cr.left());  // shard 2, committed last
  EXPECT_EQ(Contents({&s0, &s1}), before);
  EXPECT_TRUE(Contents({&s2}).empty());
  // Only shard 2's rows moved (about a third).
  uint64_t held_by_2 = 0;
  for (uint64_t k = 0; k < 200; ++k) held_by_2 += layout.OwnerOf(k, TableSalt("emb")) == 2;
  EXPECT_EQ(moved, held_by_2);
  PullSparseRequest pull;
  pull.set_table_id(1);
  pull.set_placement_epoch(3);
  PullSparseResponse pull_resp;
  EXPECT_EQ(s2.PullSparse(pull, &pull_resp).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ReshardTest, RefusedOutsideAStepBoundaryOrForAFixedJob) {
  Shard sync(ElasticOptions(0, {0}, 1, false, /*sync=*/true));
  Register(sync, SparseConfig(1, "emb", 1));
  PushResponse pr;
  PushSparseRequest push = SparsePush(0, 0, 0, {1}, {1});
  push.mutable_header()->set_placement_epoch(1);
  ASSERT_TRUE(sync.PushSparse(push, &pr).ok());  // pending until the barrier
  ReshardBeginResponse br;
  absl::Status s = sync.BeginReshard(BeginRequest(2, {0, 1}, {0}), &br);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("pause at a step boundary"), std::string::npos) << s;
  ASSERT_TRUE(Barrier(sync, 0, 0, 1).ok());
  EXPECT_TRUE(sync.BeginReshard(BeginRequest(2, {0, 1}, {0}), &br).ok());
  EXPECT_EQ(sync.BeginReshard(BeginRequest(3, {0, 1}, {0}), &br).code(),
            absl::StatusCode::kFailedPrecondition);  // one reshard at a time

  Shard fixed = MakeShard(false, 1);
  s = fixed.BeginReshard(BeginRequest(1, {0, 1}, {0}), &br);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  // Data from a shard outside the old layout is refused.
  Shard joiner(ElasticOptions(1, {0, 1}, 2, /*joining=*/true));
  ASSERT_TRUE(joiner.BeginReshard(BeginRequest(2, {0, 1}, {0}), &br).ok());
  ReshardData stranger;
  stranger.set_epoch(2);
  stranger.set_from(7);
  EXPECT_EQ(joiner.ReceiveReshard(stranger).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReshardTest, TheTrainerCountChangesWithTheLayout) {
  // Co-located workers: 2 trainers and 1 shard become 4 trainers and 2 shards.
  Shard s0(ElasticOptions(0, {0}, 1, false, /*sync=*/true));
  Shard s1(ElasticOptions(1, {0, 1}, 2, /*joining=*/true, /*sync=*/true));
  std::map<uint32_t, Shard*> all = {{0, &s0}, {1, &s1}};
  ShardOptions o = ElasticOptions(0, {0}, 1, false, true);
  Register(s0, SparseConfig(1, "emb", 1));
  ReshardBeginRequest begin = BeginRequest(2, {0, 1}, {0});
  begin.set_num_trainers(4);
  ReshardBeginResponse br;
  for (Shard* s : {&s0, &s1}) ASSERT_TRUE(s->BeginReshard(begin, &br).ok());
  Deliver(s0, 2, all);
  ReshardCommitRequest commit;
  commit.set_epoch(2);
  ReshardCommitResponse cr;
  for (Shard* s : {&s0, &s1}) ASSERT_TRUE(s->CommitReshard(commit, &cr).ok());
  EXPECT_EQ(s1.num_trainers(), 4u);
  // A key of shard 1: the step is averaged over the 4 trainers and waits for all 4 barriers.
  const Placement layout = Placement::Rendezvous(2, {0, 1});
  uint64_t key = 0;
  while (layout.OwnerOf(key, TableSalt("emb")) != 1) ++key;
  PushResponse pr;
  for (uint32_t rank = 0; rank < 4; ++rank) {
    PushSparseRequest push = SparsePush(rank, 0, 0, {key}, {2});
    push.mutable_header()->set_placement_epoch(2);
    ASSERT_TRUE(s1.PushSparse(push, &pr).ok()) << rank;
  }
  std::vector<std::thread> barriers;
  for (uint32_t rank = 0; rank < 3; ++rank)
    barriers.emplace_back([&, rank] { EXPECT_TRUE(Barrier(s1, rank, 0, 1).ok()); });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(s1.version(), 0u);  // rank 3 has not arrived
  ASSERT_TRUE(Barrier(s1, 3, 0, 1).ok());
  for (auto& t : barriers) t.join();
  PullSparseRequest pull;
  pull.set_table_id(1);
  pull.set_placement_epoch(2);
  pull.add_keys(key);
  PullSparseResponse resp;
  ASSERT_TRUE(s1.PullSparse(pull, &resp).ok());
  EXPECT_EQ(resp.values(0), 1.0f - 2.0f);  // SGD lr 1: 1 - (4 x 2) / 4
}

// Pushes that keep coming during a reshard (no pause, async mode, single-row pushes so each is
// applied whole or not at all): every push answered OK is in the final rows exactly once, every
// refused one (UNAVAILABLE while frozen, FAILED_PRECONDITION once the old layout is gone) in none,
// and the pushers re-send refused ones by the new layout.
TEST(ReshardTest, PushesDuringTheMoveAreAppliedOnceOrRefused) {
  auto options = [](uint32_t id, std::vector<uint32_t> members, uint64_t epoch, bool joining) {
    ShardOptions o = ElasticOptions(id, std::move(members), epoch, joining);
    o.num_trainers = 4;
    o.staleness = uint64_t{1} << 40;  // no stale drops: every push is applied or refused
    o.max_step_lead = uint64_t{1} << 40;
    return o;
  };
  Shard s0(options(0, {0, 1}, 1, false)), s1(options(1, {0, 1}, 1, false));
  Shard s2(options(2, {0, 1, 2}, 2, true));
  std::map<uint32_t, Shard*> all = {{0, &s0}, {1, &s1}, {2, &s2}};
  for (Shard* s : {&s0, &s1}) Register(*s, SparseConfig(1, "emb", 1));  // constant 1, SGD lr 1
  const Placement layouts[2] = {Placement::Rendezvous(1, {0, 1}),
                                Placement::Rendezvous(2, {0, 1, 2})};
  constexpr uint64_t kRows = 64;
  std::vector<std::atomic<uint64_t>> applied(kRows);
  std::atomic<bool> stop{false}, committed{false};
  std::atomic<uint64_t> unavailable{0}, rerouted{0};
  std::vector<std::thread> pushers;
  std::vector<std::string> errors(4);
  for (uint32_t rank = 0; rank < 4; ++rank) {
    pushers.emplace_back([&, rank] {
      int layout = 0;
      for (uint64_t step = 0; !stop.load() || !committed.load(); ++step) {
        const uint64_t key = (step * 4 + rank) % kRows;
        PushSparseRequest push = SparsePush(rank, step, 0, {key}, {-1});  // +1 with SGD lr 1
        while (true) {
          push.mutable_header()->set_placement_epoch(layouts[layout].epoch());
          PushResponse pr;
          absl::Status st =
              all[layouts[layout].OwnerOf(key, TableSalt("emb"))]->PushSparse(push, &pr);
          if (st.ok()) {
            if (!pr.ignored() && !pr.dropped_stale()) ++applied[key];
            break;
          }
          if (st.code() == absl::StatusCode::kUnavailable) {
            ++unavailable;
            absl::SleepFor(absl::Microseconds(200));
          } else if (st.code() == absl::StatusCode::kFailedPrecondition && layout == 0) {
            ++rerouted;
            layout = 1;  // "reload the membership"
          } else {
            errors[rank] = st.ToString();
            return;
          }
        }
      }
    });
  }
  // Waits for progress, never for a time: each pusher has pushed before the reshard...
  auto wait_for = [](const std::function<bool()>& done) {
    while (!done()) absl::SleepFor(absl::Milliseconds(1));
  };
  wait_for([&] {
    uint64_t n = 0;
    for (const auto& a : applied) n += a.load();
    return n >= 400;
  });
  const ReshardBeginRequest begin = BeginRequest(2, {0, 1, 2}, {0, 1});
  ReshardBeginResponse br;
  for (Shard* s : {&s0, &s1, &s2}) ASSERT_TRUE(s->BeginReshard(begin, &br).ok());
  wait_for([&] { return unavailable.load() >= 8; });  // ...pushes into the frozen shards...
  Deliver(s0, 2, all);
  Deliver(s1, 2, all);
  ReshardCommitRequest commit;
  commit.set_epoch(2);
  ReshardCommitResponse cr;
  for (Shard* s : {&s0, &s1, &s2}) ASSERT_TRUE(s->CommitReshard(commit, &cr).ok());
  committed = true;
  wait_for([&] { return rerouted.load() == 4; });  // ...and every pusher found the old layout gone
  stop = true;
  for (auto& t : pushers) t.join();
  for (const std::string& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(rerouted.load(), 4u);  // each pusher once
  uint64_t total = 0;
  for (uint64_t k = 0; k < kRows; ++k) {
    Shard* owner = all[layouts[1].OwnerOf(k, TableSalt("emb"))];
    PullSparseRequest pull;
    pull.set_table_id(1);
    pull.set_placement_epoch(2);
    pull.add_keys(k);
    PullSparseResponse resp;
    ASSERT_TRUE(owner->PullSparse(pull, &resp).ok());
    EXPECT_EQ(resp.values(0), 1.0f + static_cast<float>(applied[k].load())) << "key " << k;
    total += applied[k].load();
  }
  EXPECT_GT(total, 0u);
}

}  // namespace
}  // namespace tandem::pserver
