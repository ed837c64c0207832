// Saves and restores a training state: every parameter (dense and sparse), the optimizer's state
// and the step. Files are `ckpt-<step>.tdm` in the checkpoint directory, written atomically
// (temporary file, fsync, rename) with a CRC-32 over the contents; a corrupt or truncated file
// is refused with a message naming it, never loaded. The newest `keep` files are kept.
//
// Interim format (until common/checkpoint.h from the trainer-data branch lands; only this file
// pair changes then): "TDMCKPT1", u64 step, u64 optimizer updates, u32 tensor count, per tensor
// u64 floats + data, then u32 CRC-32 of everything before it. Little-endian host order.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/model/network.h"
#include "trainer/optim/optimizer.h"

namespace tandem::trainer {

class Checkpointer {
 public:
  explicit Checkpointer(std::string dir, int keep = 3) : dir_(std::move(dir)), keep_(keep) {}

  absl::Status Save(int64_t step, Network& net, Optimizer& optimizer);
  // Loads the newest valid checkpoint into `net` and `optimizer`; returns its step, or nullopt
  // when the directory holds none. Corrupt files are skipped with a logged warning; a file that
  // does not fit the model (other shapes) is an error. Files of steps above `max_step` are not
  // considered (data-parallel ranks agreeing on a step that all of them have).
  absl::StatusOr<std::optional<int64_t>> LoadLatest(
      Network& net, Optimizer& optimizer,
      int64_t max_step = std::numeric_limits<int64_t>::max());
  const std::string& last_path() const { return last_path_; }

 private:
  std::string dir_;
  int keep_;
  std::string last_path_;
};

}  // namespace tandem::trainer
