// The Kubernetes API as the operator uses it: typed-by-Resource REST calls over JSON objects.
// KubeClient (kube_client.h) implements it over HTTP; tests implement it with a recording fake,
// so reconcilers are tested by the calls they make.
//
// Every error is a typed API error (api_error.h): IsNotFound, IsConflict, IsGone, HttpCodeOf...
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "operator/kube/resource.h"

namespace tandem::kube {

struct ListOptions {
  std::string label_selector{};
  std::string field_selector{};
  // List: "" = most recent (quorum read); watch: the version to start after.
  std::string resource_version{};
  // Watch only.
  bool allow_watch_bookmarks = true;
  int timeout_seconds = 0;  // server-side watch timeout; 0 = server default
};

enum class PatchType {
  kMerge,           // application/merge-patch+json (RFC 7386)
  kJson,            // application/json-patch+json (RFC 6902)
  kStrategicMerge,  // application/strategic-merge-patch+json (built-in types only)
};

struct DeleteOptions {
  std::optional<int> grace_period_seconds{};
  std::string propagation_policy{};      // "", "Background", "Foreground", "Orphan"
  std::string precondition_uid{};        // delete only this incarnation
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK (ERROR events become errors)
  nlohmann::json object;
};

// One open watch stream. Next() blocks for the next event; nullopt means the server closed the
// stream normally (timeout): watch again from the last resourceVersion seen. A watch ERROR event
// (e.g. 410 Expired) is returned as its typed error.
class WatchStream {
 public:
  virtual ~WatchStream() = default;
  virtual absl::StatusOr<std::optional<WatchEvent>> Next() = 0;
  // Unblocks Next() from another thread; Next() then returns nullopt or an error.
  virtual void Cancel() = 0;
};

class KubeApi {
 public:
  virtual ~KubeApi() = default;
  virtual absl::StatusOr<nlohmann::json> Get(const Resource& r, const std::string& ns,
                                             const std::string& name) = 0;
  // Returns the List object ({"items": [...], "metadata": {"resourceVersion": ...}}).
  virtual absl::StatusOr<nlohmann::json> List(const Resource& r, const std::string& ns,
                                              const ListOptions& options = {}) = 0;
  virtual absl::StatusOr<nlohmann::json> Create(const Resource& r, const std::string& ns,
                                                const nlohmann::json& object) = 0;
  // PUT of the whole object; metadata.resourceVersion makes it conditional (409 when stale).
  virtual absl::StatusOr<nlohmann::json> Update(const Resource& r, const nlohmann::json& object) = 0;
  // PUT to the /status subresource: only .status of `object` is written.
  virtual absl::StatusOr<nlohmann::json> UpdateStatus(const Resource& r,
                                                      const nlohmann::json& object) = 0;
  virtual absl::StatusOr<nlohmann::json> Patch(const Resource& r, const std::string& ns,
                                               const std::string& name, PatchType type,
                                               const nlohmann::json& patch,
                                               const std::string& subresource = "") = 0;
  virtual absl::Status Delete(const Resource& r, const std::string& ns, const std::string& name,
                              const DeleteOptions& options = {}) = 0;
  virtual absl::StatusOr<std::unique_ptr<WatchStream>> Watch(const Resource& r,
                                                             const std::string& ns,
                                                             const ListOptions& options) = 0;
};

}  // namespace tandem::kube
