// The pserver's request handling: a sequence of decoded protobuf requests (any sizes, ids, keys,
// block ids, ranks, steps and shapes a hostile or buggy client could send) fed to one Shard, the
// code behind every RPC once the token is checked. Besides not crashing, an accepted pull must
// answer exactly the floats its shape promises.
//
// Input: byte 0 picks sync or async; then per operation one byte (which request) and a
// length-prefixed serialized message (fuzz_input.h).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"
#include "pserver/shard.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using namespace tandem::pserver;  // NOLINT: every request type

// Small limits, so that requests at and beyond them are cheap to try; the checks are the same.
ShardOptions FuzzOptions(bool sync) {
  ShardOptions o;
  o.shard = 0;
  o.num_shards = 2;
  o.num_trainers = 2;
  o.sync = sync;
  o.max_tables = 8;
  o.max_dim = 64;
  o.max_dense_size = 1 << 16;
  o.max_block_size = 1 << 12;
  o.max_response_floats = 1 << 16;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Parsing hostile bytes makes protobuf log each non-UTF-8 string field; that is expected here.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  tandem::fuzz::FuzzInput in(data, size);
  Shard shard(FuzzOptions(in.Byte() & 1));
  std::map<uint64_t, ShardState> checkpoints;  // what SnapshotAtStep produced, for RestoreToStep
  std::map<uint32_t, TableConfig> tables;      // what RegisterTable accepted, by id
  for (int op = 0; op < 64 && !in.empty(); ++op) {
    const uint8_t kind = in.Byte() % 10;
    const std::string bytes = in.Bytes();
    switch (kind) {
      case 0: {
        RegisterTableRequest req;
        RegisterTableResponse resp;
        if (req.ParseFromString(bytes) && shard.RegisterTable(req, &resp).ok())
          tables.emplace(req.table().id(), req.table());
        break;
      }
      case 1: {
        PullSparseRequest req;
        PullSparseResponse resp;
        if (req.ParseFromString(bytes) && shard.PullSparse(req, &resp).ok() &&
            static_cast<uint64_t>(resp.values_size()) !=
                uint64_t{tables.at(req.table_id()).dim()} * req.keys_size())
          std::abort();
        break;
      }
      case 2: {
        PushSparseRequest req;
        PushResponse resp;
        if (req.ParseFromString(bytes)) (void)shard.PushSparse(req, &resp);
        break;
      }
      case 3: {
        PullDenseRequest req;
        PullDenseResponse resp;
        if (req.ParseFromString(bytes) && shard.PullDense(req, &resp).ok()) {
          const TableConfig& c = tables.at(req.table_id());
          uint64_t want = 0;
          for (uint32_t b : req.block_ids())
            want += std::min<uint64_t>(c.block_size(), c.size() - uint64_t{b} * c.block_size());
          if (static_cast<uint64_t>(resp.values_size()) != want) std::abort();
        }
        break;
      }
      case 4: {
        PushDenseRequest req;
        PushResponse resp;
        if (req.ParseFromString(bytes)) (void)shard.PushDense(req, &resp);
        break;
      }
      case 5: {
        StepBarrierRequest req;
        StepBarrierResponse resp;
        if (req.ParseFromString(bytes)) (void)shard.StepBarrier(req, absl::Now(), &resp);
        break;
      }
      case 6: {
        JoinRequest req;
        JoinResponse resp;
        if (req.ParseFromString(bytes)) (void)shard.Join(req, &resp);
        break;
      }
      case 7: {
        CheckpointRequest req;
        if (req.ParseFromString(bytes)) {
          auto state = shard.SnapshotAtStep(req.step());
          if (state.ok()) checkpoints[req.step()] = *std::move(state);
        }
        break;
      }
      case 8: {
        RestoreRequest req;
        RestoreResponse resp;
        if (req.ParseFromString(bytes)) {
          (void)shard.RestoreToStep(
              req,
              [&](uint64_t step) -> absl::StatusOr<ShardState> {
                auto it = checkpoints.find(step);
                if (it == checkpoints.end()) return absl::FailedPreconditionError("no checkpoint");
                return it->second;
              },
              &resp);
        }
        break;
      }
      case 9: {
        // A snapshot restores into a fresh shard of the same layout.
        Shard copy(shard.options());
        if (!copy.Restore(shard.Snapshot()).ok()) std::abort();
        break;
      }
    }
  }
  return 0;
}
