// KubeClient: the Kubernetes REST API over cpprestsdk (HTTP/1.1, TLS with the configured CA and
// client certificate, bearer token re-read from its file every minute).
//
//   kube::KubeClient client(config);
//   auto pod = client.Get(kube::kPods, "default", "w-0");
//   auto watch = client.Watch(kube::kPods, "default", {.resource_version = rv});
//
// Thread-safe: calls may be made from any number of threads. Each call counts into
// tandem_operator_api_requests_total{verb,code}; failures also into
// tandem_operator_api_errors_total{code} (code "0" = transport error).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "operator/kube/kube_api.h"
#include "operator/kube/kube_config.h"

namespace tandem::kube {

struct KubeClientOptions {
  // Per-request timeout for non-watch calls.
  int request_timeout_s = 30;
  // A watch with no bytes for this long is dead: Next() fails and the informer watches again
  // from the last resourceVersion. kube-apiserver's watch cache sends every watch that asked
  // for bookmarks one about every minute, "for periodicity if the watch breaks due to
  // unexpected conditions" (k8s.io/apiserver cacher), so two minutes without a byte is not a
  // quiet watch. (It was 600 s, longer than the watches' own 300 s: a watch left silent, for
  // example across an apiserver restart, then went unnoticed until its timeout.)
  int watch_idle_timeout_s = 120;
  std::string user_agent = "tandem-operator/0.1";
};

class KubeClient : public KubeApi {
 public:
  explicit KubeClient(KubeConfig config, KubeClientOptions options = {});
  ~KubeClient() override;

  absl::StatusOr<nlohmann::json> Get(const Resource& r, const std::string& ns,
                                     const std::string& name) override;
  absl::StatusOr<nlohmann::json> List(const Resource& r, const std::string& ns,
                                      const ListOptions& options = {}) override;
  absl::StatusOr<nlohmann::json> Create(const Resource& r, const std::string& ns,
                                        const nlohmann::json& object) override;
  absl::StatusOr<nlohmann::json> Update(const Resource& r, const nlohmann::json& object) override;
  absl::StatusOr<nlohmann::json> UpdateStatus(const Resource& r,
                                              const nlohmann::json& object) override;
  absl::StatusOr<nlohmann::json> Patch(const Resource& r, const std::string& ns,
                                       const std::string& name, PatchType type,
                                       const nlohmann::json& patch,
                                       const std::string& subresource = "") override;
  absl::Status Delete(const Resource& r, const std::string& ns, const std::string& name,
                      const DeleteOptions& options = {}) override;
  absl::StatusOr<std::unique_ptr<WatchStream>> Watch(const Resource& r, const std::string& ns,
                                                     const ListOptions& options) override;

  // A raw request (used for discovery and by tests). Returns the body on 2xx, else the API error.
  absl::StatusOr<std::string> Request(const std::string& method, const std::string& path_and_query,
                                      const std::string& body = "",
                                      const std::string& content_type = "application/json");

  const KubeConfig& config() const { return config_; }

 private:
  class Impl;
  KubeConfig config_;
  std::unique_ptr<Impl> impl_;
};

// Builds "?labelSelector=...&fieldSelector=..." for `options` (watch adds watch=1 etc.).
std::string ListQuery(const ListOptions& options, bool watch);
// Percent-encodes a query value.
std::string QueryEscape(const std::string& s);

}  // namespace tandem::kube
