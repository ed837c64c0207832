// What a trainer leaves behind when it ends: its result as one line of JSON, written to
// TANDEM_TERMINATION_LOG (api/worker_contract.h; in a pod the container's terminationMessagePath,
// which the kubelet copies into the pod's status as
// status.containerStatuses[].state.terminated.message). The operator reads it from there, so a
// job's final step, pass and test metrics reach status.progress even when the trainer evaluated
// its last pass and exited between two scrapes of its /metrics.
//
//   {"kind":"tandem.dev/result","steps":1200,"passes":3,"testAccuracy":0.8912,"testLoss":0.31}
//
// The kubelet keeps at most 4096 bytes of a container's message; a result is far smaller.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tandem::api {

inline constexpr char kWorkerResultKind[] = "tandem.dev/result";
inline constexpr size_t kMaxTerminationMessageBytes = 4096;

struct WorkerResult {
  int64_t steps = 0;
  int64_t passes = 0;                     // passes completed (the last evaluation's pass)
  std::optional<double> test_accuracy;    // unset: no test set, or not finite
  std::optional<double> test_loss;
  std::optional<double> test_auc;         // binary cross-entropy models
  std::optional<double> examples_per_sec;
  bool operator==(const WorkerResult&) const = default;
};

// One line of JSON; non-finite values are left out.
std::string RenderWorkerResult(const WorkerResult& r);

// Parses RenderWorkerResult's output. Anything else (a log tail the kubelet substituted for a
// failed container, a truncated or hostile message) is an error naming what is wrong; values
// outside their range (accuracy and AUC in [0, 1], counts >= 0) are refused.
absl::StatusOr<WorkerResult> ParseWorkerResult(std::string_view message);

}  // namespace tandem::api
