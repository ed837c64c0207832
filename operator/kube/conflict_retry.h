// Optimistic concurrency: re-read and retry when a write loses to a concurrent one (409 Conflict).
//
//   auto updated = kube::UpdateWithRetry(api, kube::kTrainingJobs, "ml", "a",
//       [](nlohmann::json& job) { job["status"]["phase"] = "Running"; return absl::OkStatus(); },
//       /*status_subresource=*/true);
#pragma once

#include <functional>

#include "operator/kube/kube_api.h"

namespace tandem::kube {

struct ConflictRetryOptions {
  int attempts = 5;            // client-go's DefaultRetry: 5 steps
  double initial_delay_s = 0.01;
  double factor = 2.0;         // delays 10ms, 20ms, 40ms, ... (with +-10% jitter)
};

// Runs `fn` until it returns something other than a Conflict, at most `attempts` times. Returns the
// last result.
absl::Status RetryOnConflict(const std::function<absl::Status()>& fn,
                             const ConflictRetryOptions& options = {});

// GET the object, apply `mutate` to it, PUT it back (to /status when `status_subresource`),
// retrying the whole read-modify-write on Conflict. `mutate` returning an error aborts.
absl::StatusOr<nlohmann::json> UpdateWithRetry(
    KubeApi* api, const Resource& r, const std::string& ns, const std::string& name,
    const std::function<absl::Status(nlohmann::json&)>& mutate, bool status_subresource = false,
    const ConflictRetryOptions& options = {});

}  // namespace tandem::kube
