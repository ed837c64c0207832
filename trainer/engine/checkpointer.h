// Saves and restores a training state with common/checkpoint.h (atomic, CRC-32C checksummed
// files): every parameter by name ("<layer>.<param>", dense and sparse, batch-norm statistics
// included), the optimizer's state ("optimizer.<k>") and, in the metadata, the step and the
// optimizer's update count. Files are `<dir>/trainer-<step>.ckpt`; the newest `keep` are kept.
// A corrupt or truncated file is refused (logged with the file and the part at fault) and the
// next older one is tried; a file from a different model (names or sizes differ) is an error.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "trainer/model/network.h"
#include "trainer/optim/optimizer.h"

namespace tandem::trainer {

class Checkpointer {
 public:
  explicit Checkpointer(std::string dir, int keep = 3) : dir_(std::move(dir)), keep_(keep) {}

  // `extra` (an object, may be empty) is stored in the metadata beside the step: state that must
  // be restored with exactly this step, such as a stream's read position.
  absl::Status Save(int64_t step, Network& net, Optimizer& optimizer,
                    const nlohmann::json& extra = nlohmann::json::object());
  // Loads the newest valid checkpoint into `net` and `optimizer`; returns its step, or nullopt
  // when the directory holds none. Corrupt files are skipped with a logged warning; a file that
  // does not fit the model (other shapes) is an error. Files of steps above `max_step` are not
  // considered (data-parallel ranks agreeing on a step that all of them have).
  absl::StatusOr<std::optional<int64_t>> LoadLatest(
      Network& net, Optimizer& optimizer,
      int64_t max_step = std::numeric_limits<int64_t>::max());
  const std::string& last_path() const { return last_path_; }
  // The metadata of the checkpoint last loaded or saved (null before either).
  const nlohmann::json& last_metadata() const { return last_metadata_; }
  // Only steps `accept(step)` holds are loaded (the pservers' common checkpoints, so that a
  // resume is a consistent cut); every step when unset.
  void set_step_filter(std::function<bool(int64_t)> accept) { accept_ = std::move(accept); }

 private:
  std::string dir_;
  int keep_;
  std::string last_path_;
  nlohmann::json last_metadata_;
  std::function<bool(int64_t)> accept_;
};

}  // namespace tandem::trainer
