// Writes the binary seed inputs of the fuzz targets (the text seeds are written by hand):
//   corpus/pserver_request/*: request sequences in pserver_request_fuzz.cc's format
//   corpus/checkpoint/*: a trainer-style checkpoint and a pserver shard checkpoint
// Usage: build/tests/fuzz/fuzz_write_seeds tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "pserver/placement.h"
#include "pserver/shard.h"
#include "pserver/shard_checkpoint.h"

namespace {

using namespace tandem::pserver;  // NOLINT

void Append(std::string* out, uint8_t kind, const google::protobuf::Message& m) {
  const std::string bytes = m.SerializeAsString();
  out->push_back(static_cast<char>(kind));
  out->push_back(static_cast<char>(bytes.size() & 0xff));
  out->push_back(static_cast<char>(bytes.size() >> 8));
  *out += bytes;
}

TableConfig Table(uint32_t id, TableConfig::Kind kind) {
  TableConfig c;
  c.set_id(id);
  c.set_name(kind == TableConfig::SPARSE ? "emb" : "fc.w");
  c.set_kind(kind);
  if (kind == TableConfig::SPARSE) {
    c.set_dim(4);
  } else {
    c.set_size(100);
    c.set_block_size(16);
  }
  c.mutable_init()->set_kind(Initializer::CONSTANT);
  c.mutable_init()->set_value(0.5f);
  c.mutable_optimizer()->set_kind(OptimizerConfig::ADAM);
  c.mutable_optimizer()->set_learning_rate(0.1f);
  return c;
}

// Keys and blocks shard 0 of 2 owns (the fuzz target's layout).
std::vector<uint64_t> OwnedKeys(const TableConfig& c, int n) {
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; static_cast<int>(keys.size()) < n; ++k)
    if (ShardOfKey(k, TableSalt(c.name()), 2) == 0) keys.push_back(k);
  return keys;
}

void Write(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  std::printf("%s: %zu bytes\n", path.c_str(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir / "pserver_request");
  std::filesystem::create_directories(dir / "checkpoint");

  const TableConfig sparse = Table(1, TableConfig::SPARSE);
  const TableConfig dense = Table(2, TableConfig::DENSE);
  Shard shard({.shard = 0, .num_shards = 2, .num_trainers = 2});
  std::string seq(1, '\1');  // sync
  for (const TableConfig* c : {&sparse, &dense}) {
    RegisterTableRequest r;
    *r.mutable_table() = *c;
    Append(&seq, 0, r);
    RegisterTableResponse resp;
    (void)shard.RegisterTable(r, &resp);
  }
  const std::vector<uint64_t> keys = OwnedKeys(sparse, 3);
  PullSparseRequest pull;
  pull.set_table_id(1);
  for (uint64_t k : keys) pull.add_keys(k);
  Append(&seq, 1, pull);
  std::vector<uint32_t> blocks;
  for (uint32_t b = 0; b < 7; ++b)
    if (ShardOfKey(b, TableSalt(dense.name()), 2) == 0) blocks.push_back(b);
  for (uint32_t rank = 0; rank < 2; ++rank) {
    PushSparseRequest push;
    push.mutable_header()->set_rank(rank);
    push.set_table_id(1);
    for (uint64_t k : keys) push.add_keys(k);
    for (size_t i = 0; i < keys.size() * 4; ++i) push.add_grads(0.25f);
    Append(&seq, 2, push);
    PushDenseRequest pd;
    pd.mutable_header()->set_rank(rank);
    pd.mutable_header()->set_seq(1);
    pd.set_table_id(2);
    for (uint32_t b : blocks) {
      pd.add_block_ids(b);
      for (uint32_t j = 0; j < (b == 6 ? 4u : 16u); ++j) pd.add_grads(1.0f);
    }
    Append(&seq, 4, pd);
    StepBarrierRequest bar;
    bar.set_rank(rank);
    bar.set_num_pushes(2);
    Append(&seq, 5, bar);
  }
  PullDenseRequest pdr;
  pdr.set_table_id(2);
  for (uint32_t b : blocks) pdr.add_block_ids(b);
  Append(&seq, 3, pdr);
  CheckpointRequest ck;
  ck.set_step(1);
  Append(&seq, 7, ck);
  JoinRequest join;
  join.set_rank(1);
  Append(&seq, 6, join);
  RestoreRequest restore;
  restore.set_step(1);
  Append(&seq, 8, restore);
  Append(&seq, 9, StatusRequest());
  Write(dir / "pserver_request" / "sync_step.bin", seq);
  seq[0] = '\0';
  Write(dir / "pserver_request" / "async_step.bin", seq);

  // A pserver shard checkpoint with both tables, taken after one step.
  for (uint32_t rank = 0; rank < 2; ++rank) {
    PushSparseRequest push;
    push.mutable_header()->set_rank(rank);
    push.set_table_id(1);
    for (uint64_t k : keys) push.add_keys(k);
    for (size_t i = 0; i < keys.size() * 4; ++i) push.add_grads(0.25f);
    PushResponse resp;
    (void)shard.PushSparse(push, &resp);
  }
  const auto tmp = std::filesystem::temp_directory_path() / "tandem-fuzz-seed.ckpt";
  auto read = [&] {
    std::ifstream in(tmp, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  if (!WriteShardState(tmp.string(), shard.Snapshot()).ok()) return 1;
  Write(dir / "checkpoint" / "pserver_shard.ckpt", read());
  // A trainer-style checkpoint: float parameters, integer state, a scalar.
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  const std::vector<int64_t> ids = {7, 8};
  auto writer = tandem::CheckpointWriter::Open(tmp.string(), {{"step", 3}, {"pass", 1}});
  if (!writer.ok() || !(*writer)->Add<float>("fc.weight", {2, 3}, w).ok() ||
      !(*writer)->Add<int64_t>("ids", {2}, ids).ok() ||
      !(*writer)->Add<float>("scale", {}, std::vector<float>{0.5f}).ok() || !(*writer)->Commit().ok())
    return 1;
  Write(dir / "checkpoint" / "trainer.ckpt", read());
  std::filesystem::remove(tmp);
  return 0;
}
