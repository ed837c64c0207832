#include "operator/kube/conflict_retry.h"

#include <chrono>
#include <random>
#include <thread>

#include "operator/kube/api_error.h"

namespace tandem::kube {

absl::Status RetryOnConflict(const std::function<absl::Status()>& fn,
                             const ConflictRetryOptions& options) {
  thread_local std::mt19937 rng(std::random_device{}());
  double delay = options.initial_delay_s;
  absl::Status last;
  for (int i = 0; i < std::max(1, options.attempts); ++i) {
    last = fn();
    if (!IsConflict(last)) return last;
    std::uniform_real_distribution<double> jitter(0.9, 1.1);
    std::this_thread::sleep_for(std::chrono::duration<double>(delay * jitter(rng)));
    delay *= options.factor;
  }
  return last;
}

absl::StatusOr<nlohmann::json> UpdateWithRetry(
    KubeApi* api, const Resource& r, const std::string& ns, const std::string& name,
    const std::function<absl::Status(nlohmann::json&)>& mutate, bool status_subresource,
    const ConflictRetryOptions& options) {
  nlohmann::json result;
  absl::Status s = RetryOnConflict(
      [&]() -> absl::Status {
        auto current = api->Get(r, ns, name);
        if (!current.ok()) return current.status();
        nlohmann::json obj = std::move(*current);
        absl::Status m = mutate(obj);
        if (!m.ok()) return m;
        auto written = status_subresource ? api->UpdateStatus(r, obj) : api->Update(r, obj);
        if (!written.ok()) return written.status();
        result = std::move(*written);
        return absl::OkStatus();
      },
      options);
  if (!s.ok()) return s;
  return result;
}

}  // namespace tandem::kube
