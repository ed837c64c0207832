// The file container shard checkpoints are stored in: named float arrays plus JSON metadata,
// written atomically (temporary file, fsync, rename).
//
// This is the seam to common/checkpoint.h (the shared, checksummed container the trainer uses):
// the pserver only ever calls these two functions.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::pserver {

struct CheckpointContainer {
  nlohmann::json metadata;
  std::vector<std::pair<std::string, std::vector<float>>> arrays;
};

// Writes `container` to `path` atomically: readers see the old file or the complete new one.
absl::Status WriteCheckpointContainer(const std::string& path,
                                      const CheckpointContainer& container);

// Reads a container; DATA_LOSS when the file is truncated or corrupt.
absl::StatusOr<CheckpointContainer> ReadCheckpointContainer(const std::string& path);

}  // namespace tandem::pserver
