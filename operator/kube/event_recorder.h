// Records Kubernetes Events (core/v1) about objects, as `kubectl describe` shows them. A repeat of
// the same (object, type, reason, message) within the cache's life bumps the existing Event's
// count and lastTimestamp instead of creating another, like client-go's correlator. Best effort:
// failures are logged and counted, never returned. Thread-safe.
#pragma once

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "operator/kube/kube_api.h"
#include "operator/kube/request_pool.h"

namespace tandem::kube {

class EventRecorder {
 public:
  // With a `pool`, Record() only queues the request there and returns (Events are best effort,
  // and a reconcile should not wait on them); without one it makes the request itself.
  EventRecorder(KubeApi* api, std::string component, std::string host = "", RequestPool* pool = nullptr);
  // `type` is "Normal" or "Warning"; `reason` is CamelCase ("Admitted", "WorkerRestarted").
  void Record(const nlohmann::json& object, const std::string& type, const std::string& reason,
              const std::string& message);

 private:
  void Send(const nlohmann::json& object, const std::string& type, const std::string& reason,
            const std::string& message);

  struct Seen {
    std::string name;
    int count = 0;
  };
  KubeApi* api_;
  RequestPool* const pool_;
  const std::string component_;
  const std::string host_;
  absl::Mutex mu_;
  std::map<std::string, Seen> seen_ ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::kube
