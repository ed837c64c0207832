// FakeApiServer: an in-repo stand-in for the Kubernetes API server, over real HTTP (common/
// http_server.h) and JSON, for the client, operator and kubectl tests. docs/operator.md lists
// exactly which API server behaviours it reproduces and which it does not. In short: discovery,
// CRUD on built-in and CRD-registered types, monotonically increasing resourceVersion, uid,
// generation, creation/deletion timestamps, finalizers, owner-reference garbage collection,
// 404/409/410/422, chunked watch streams with bookmarks, status subresources, label and field
// selectors, merge/JSON/strategic-merge patches, server-side Table output, and custom resources
// held to their CRD's structural schema (pruning, defaulting, validation with kube-apiserver's
// words, `fieldValidation` Strict/Warn/Ignore: crd_schema.h).
//
//   kube::testing::FakeApiServer server({.compaction_window = 100});
//   TANDEM_CHECK_OK(server.Start("127.0.0.1", 0));
//   KubeConfig cfg{.server = absl::StrCat("http://127.0.0.1:", server.port())};
//
// Thread-safe; every request runs on its own connection thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/http_server.h"
#include "nlohmann/json.hpp"
#include "operator/kube/kube_api.h"

namespace tandem::kube::testing {

// Creates every CustomResourceDefinition of the YAML files in `crd_dir` (the repository's crds/)
// through `api`, as `kubectl apply -f crds/` would on a fresh server.
absl::Status InstallCrds(KubeApi* api, const std::string& crd_dir);

struct FakeApiServerOptions {
  // How many changes are kept for watches; a watch from a resourceVersion older than the oldest
  // kept change gets 410 Gone (the real server keeps a time window in its watch cache / etcd).
  size_t compaction_window = 10000;
  // A BOOKMARK is sent on watches that asked for them this often (the real server: ~1 min).
  double bookmark_interval_s = 1.0;
  // Default watch length when the client gives no timeoutSeconds (the real server: 30-60 min).
  int default_watch_timeout_s = 1800;
  // Too-old watches: false = HTTP 200 with an ERROR event (410 Expired), as the watch cache
  // does; true = an HTTP 410 reply.
  bool gone_as_http_error = false;
  // When non-empty, every request must carry "Authorization: Bearer <token>" (else 401).
  std::string token{};
  // Called with every request before anything else (authentication included), on the
  // request's thread: an audit log for tests (e.g. which verbs and resources a client used).
  std::function<void(const HttpRequest&)> on_request{};
  // Namespaces that exist at start.
  std::vector<std::string> namespaces = {"default", "kube-system", "kube-public"};
};

class FakeApiServer {
 public:
  explicit FakeApiServer(FakeApiServerOptions options = {});
  ~FakeApiServer();

  absl::Status Start(const std::string& host, int port);
  void Stop();
  int port() const { return http_.port(); }
  std::string url() const;

  // --- Test controls ---
  // Forgets all history: every watch from a resourceVersion before now gets 410 Gone.
  void Compact();
  // Ends every open watch stream (normally, as a server-side timeout would).
  void CloseWatches();
  // The next `count` requests whose method matches and whose path starts with `path_prefix`
  // fail with `http_code` (e.g. 500, 429, 409) before touching storage.
  void FailNext(const std::string& method, const std::string& path_prefix, int http_code,
                int count = 1);
  int64_t CurrentResourceVersion();
  int OpenWatches() const { return open_watches_.load(); }
  // Requests served, by "METHOD path" (query stripped), for tests that count calls.
  int RequestCount(const std::string& method, const std::string& path_prefix);

 private:
  struct Type;
  struct Change {
    int64_t rv;
    std::string type_key;
    std::string event;  // ADDED, MODIFIED, DELETED
    nlohmann::json object;
    nlohmann::json previous;  // null for ADDED
  };
  struct Route;

  void Serve(const HttpRequest& req, HttpResponseWriter& w);
  void ServeDiscovery(const HttpRequest& req, HttpResponseWriter& w, bool* handled);
  void ServeResource(const HttpRequest& req, HttpResponseWriter& w, const Route& route);
  void ServeWatch(const HttpRequest& req, HttpResponseWriter& w, const Route& route);

  // Storage operations. They return the HTTP code and the body object.
  int CreateLocked(const Type& t, const std::string& ns, nlohmann::json obj, bool dry_run,
                   nlohmann::json* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int UpdateLocked(const Type& t, const std::string& ns, const std::string& name,
                   nlohmann::json obj, bool status_only, bool dry_run, nlohmann::json* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int DeleteLocked(const Type& t, const std::string& ns, const std::string& name,
                   const nlohmann::json& options, bool dry_run, nlohmann::json* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLocked(const Type& t, const std::string& key, const std::string& propagation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CollectGarbageLocked(const std::string& owner_uid, const std::string& propagation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordLocked(const std::string& type_key, const std::string& event,
                    const nlohmann::json& obj, const nlohmann::json& previous)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RegisterCrdLocked(const nlohmann::json& crd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnregisterCrdLocked(const nlohmann::json& crd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Type* FindType(const std::string& group, const std::string& version,
                       const std::string& plural) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddBuiltinTypes() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NextRv() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FakeApiServerOptions options_;
  HttpServer http_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  // "group/plural" -> type
  std::map<std::string, std::shared_ptr<Type>> types_ ABSL_GUARDED_BY(mu_);
  // "group/plural" -> "ns/name" -> object
  std::map<std::string, std::map<std::string, nlohmann::json>> objects_ ABSL_GUARDED_BY(mu_);
  std::deque<Change> history_ ABSL_GUARDED_BY(mu_);
  int64_t rv_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t compacted_rv_ ABSL_GUARDED_BY(mu_) = 0;  // changes with rv <= this are forgotten
  uint64_t watch_epoch_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by CloseWatches()
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> open_watches_{0};
  struct Failure {
    std::string method, prefix;
    int code;
    int remaining;
  };
  std::vector<Failure> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> request_counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::kube::testing
