// Shard checkpoints: ShardState <-> files in <dir>/shard-<k>/ckpt-<version>.tpck.
//
//   ShardCheckpointer ckpt(dir, shard, /*keep=*/3);
//   TANDEM_ASSIGN_OR_RETURN(std::string path, ckpt.Write(shard.Snapshot()));
//   TANDEM_ASSIGN_OR_RETURN(std::optional<ShardState> state, ckpt.LoadLatest());
//
// uint64 keys and counts travel through the float-array container bit for bit (two floats per
// value, copied with memcpy, never computed on).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "pserver/checkpoint_container.h"
#include "pserver/shard.h"

namespace tandem::pserver {

class ShardCheckpointer {
 public:
  // REQUIRES: keep >= 1.
  ShardCheckpointer(std::string dir, uint32_t shard, int keep);

  // Writes `state` and removes all but the newest `keep` checkpoints. Returns the file's path.
  absl::StatusOr<std::string> Write(const ShardState& state);

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
CheckpointContainer EncodeShardState(const ShardState& state);
absl::StatusOr<ShardState> DecodeShardState(const CheckpointContainer& container);

}  // namespace tandem::pserver
