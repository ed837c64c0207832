// Shard checkpoints: ShardState <-> files <dir>/shard-<k>/ckpt-<version, 12 digits>.ckpt in the
// shared checksummed container (common/checkpoint.h): JSON metadata (layout, version, steps lost,
// table declarations) plus per table the arrays table/<id>/keys (uint64: sparse row keys or dense
// block ids), table/<id>/values (float32: per key its parameters then optimizer state) and
// table/<id>/counts (uint64: per key its update count).
//
//   ShardCheckpointer ckpt(dir, shard, /*keep=*/3);
//   TANDEM_ASSIGN_OR_RETURN(std::string path, ckpt.Write(shard.Snapshot()));
//   TANDEM_ASSIGN_OR_RETURN(std::optional<ShardState> state, ckpt.LoadLatest());
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/checkpoint.h"
#include "pserver/shard.h"

namespace tandem::pserver {

class ShardCheckpointer {
 public:
  // REQUIRES: keep >= 1.
  ShardCheckpointer(std::string dir, uint32_t shard, int keep);

  // Writes `state` as checkpoint number `number` (default: its version) and removes all but the
  // newest `keep` checkpoints. Returns the file's path.
  absl::StatusOr<std::string> Write(const ShardState& state);
  absl::StatusOr<std::string> Write(const ShardState& state, uint64_t number);

  // Checkpoint `number` (a trainers' step). FAILED_PRECONDITION naming the shard, the step and the
  // steps held when there is no such file; DATA_LOSS when it is corrupt.
  absl::StatusOr<ShardState> Load(uint64_t number) const;
  // Numbers of the checkpoint files held, ascending.
  std::vector<uint64_t> Steps() const;
  // Removes the checkpoints numbered above `number` (a rolled-back run's future).
  void RemoveAbove(uint64_t number) const;

  // The newest readable checkpoint (older ones are tried when the newest is corrupt), or nullopt
  // when there is none.
  absl::StatusOr<std::optional<ShardState>> LoadLatest();

  // Checkpoint files, newest first.
  std::vector<std::string> List() const;

  const std::string& shard_dir() const { return shard_dir_; }

 private:
  const std::string shard_dir_;
  const uint32_t shard_;
  const int keep_;
};

// Conversions, exposed for tests.
absl::Status WriteShardState(const std::string& path, const ShardState& state);
absl::StatusOr<ShardState> DecodeShardState(const Checkpoint& checkpoint);

}  // namespace tandem::pserver
