#include "operator/controller/default_queue.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "operator/kube/api_error.h"
#include "operator/kube/resource.h"

namespace tandem::controller {

absl::Status EnsureDefaultQueue(kube::KubeApi* api, const api::Queue& queue,
                                const std::function<bool()>& stopping, const DefaultQueueOptions& options) {
  nlohmann::json body = api::ToJson(queue);
  body.erase("status");
  const std::string& name = queue.metadata.name;
  double backoff = options.initial_backoff_s;
  for (int attempt = 1;; ++attempt) {
    auto created = api->Create(kube::kQueues, "", body);
    if (created.ok()) {
      TANDEM_LOG(info, "default Queue '{}' created (weight {})", name, queue.spec.weight);
      return absl::OkStatus();
    }
    const absl::Status& s = created.status();
    if (kube::IsAlreadyExists(s)) {
      TANDEM_LOG(info, "default Queue '{}' exists: left as it is", name);
      return absl::OkStatus();
    }
    if (!kube::IsRetryable(s) && !kube::IsNotFound(s))
      return absl::Status(s.code(), absl::StrCat("creating the default Queue '", name, "': ", s.message()));
    // Log the first miss and then every tenth, so that a cluster without the CRD says why.
    if (attempt == 1 || attempt % 10 == 0)
      TANDEM_LOG(warn, "default Queue '{}' not created yet (attempt {}): {}; retrying", name, attempt, std::string(s.message()));
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(backoff);
    while (std::chrono::steady_clock::now() < until) {
      if (stopping()) return absl::CancelledError(absl::StrCat("default Queue '", name, "': stopped before it was created"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff = std::min(backoff * 2, options.max_backoff_s);
  }
}

}  // namespace tandem::controller
