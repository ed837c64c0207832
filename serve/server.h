// tandem-serve's server: follows a publish directory (common/model_snapshot.h), keeps the newest
// valid model version loaded, and answers predictions over HTTP/JSON (and gRPC, serve/grpc_service.h)
// through the dynamic batcher (serve/batcher.h). docs/serving.md has the API and the metrics.
//
//   ModelServer::Options o{.model_dir = "/ckpt/published", .port = 8080, .workers = 4};
//   TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<ModelServer> server, ModelServer::Start(o));
//
// HTTP routes: POST /v1/predict (serve/request.h), GET /v1/model (the loaded version's
// manifest), /metrics, /healthz, /readyz (200 only once a model is loaded).
// Hot reload: a watcher thread lists the directory every `poll_interval`; a newer version is
// verified and loaded beside the current one, then swapped in with one pointer assignment. A
// request holds the version it was validated against until it is answered, so requests in flight
// finish on the old version and none fails. A version that fails to load (corrupt, half-copied)
// is logged, counted and skipped; the current one keeps serving.
// Thread-safety: all methods are thread-safe.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/http_server.h"
#include "common/metrics_endpoint.h"
#include "serve/batcher.h"
#include "serve/model.h"
#include "serve/request.h"

namespace tandem::metrics {
class Counter;
class Gauge;
class Histogram;
}  // namespace tandem::metrics

namespace tandem::serve {

class GrpcEndpoint;  // serve/grpc_service.h

struct ServerOptions {
  std::string model_dir;  // the publish directory; REQUIRES: not empty
  std::string host = "0.0.0.0";
  int port = 8080;        // 0: a free port (see port())
  int grpc_port = -1;     // -1: no gRPC; 0: a free port (see grpc_port())
  int workers = 1;        // inference threads, each with its own copy of the dense weights
  int threads_per_worker = 1;
  int max_batch_size = 32;
  absl::Duration max_queue_delay = absl::Milliseconds(1);
  size_t max_queued_examples = 65536;
  absl::Duration poll_interval = absl::Seconds(1);
  size_t max_body_bytes = 8 << 20;  // larger bodies get 413
  int max_connections = 1024;
  RequestLimits limits;
};

class ModelServer {
 public:
  static absl::StatusOr<std::unique_ptr<ModelServer>> Start(const ServerOptions& options);
  ~ModelServer();  // Stop()s

  int port() const { return http_.port(); }
  int grpc_port() const { return grpc_port_; }
  // The version being served (null until one is loaded).
  std::shared_ptr<const ServedModel> current() const;
  // Loads the newest loadable version above the current one; returns whether one was loaded.
  // The watcher calls it; tests call it to skip the wait.
  absl::StatusOr<bool> Reload();
  // Runs a parsed request on `model` (HTTP and gRPC share it).
  BatchResult Predict(std::shared_ptr<const ServedModel> model, std::vector<Example> examples);
  // Counts one request's outcome in the metrics (code: an HTTP status).
  void Record(const char* protocol, int code, double seconds, size_t examples);
  const ServerOptions& options() const { return options_; }
  void Stop();

 private:
  explicit ModelServer(const ServerOptions& options);
  void HandlePredict(const HttpRequest& req, HttpResponseWriter& w);
  void WatchLoop();

  const ServerOptions options_;
  HealthState health_;
  HttpServer http_;
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<GrpcEndpoint> grpc_;
  int grpc_port_ = -1;

  mutable absl::Mutex mu_;
  std::shared_ptr<const ServedModel> model_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> failed_versions_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex reload_mu_;  // one load at a time
  std::thread watcher_;

  struct Metrics;
  Metrics* m_;  // process-wide
};

}  // namespace tandem::serve
