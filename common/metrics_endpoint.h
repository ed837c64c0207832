// Serves a registry at /metrics (Prometheus text format 0.0.4), and /healthz and /readyz.
//
//   tandem::HealthState health;
//   tandem::MetricsEndpoint endpoint(tandem::metrics::Registry::Default(), &health);
//   TANDEM_RETURN_IF_ERROR(endpoint.Start("0.0.0.0", flags.metrics_port));
//   ...
//   health.SetReady(true);     // /readyz answers 200 from now on
//
// /healthz answers 200 while the process is alive and not marked unhealthy; /readyz answers 200
// only once the component said it is ready, and 503 with the reason otherwise.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/http_server.h"
#include "common/metrics.h"

namespace tandem {

class HealthState {
 public:
  void SetReady(bool ready, const std::string& reason = "");
  void SetHealthy(bool healthy, const std::string& reason = "");
  bool ready(std::string* reason) const;
  bool healthy(std::string* reason) const;

 private:
  mutable absl::Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;
  std::string ready_reason_ ABSL_GUARDED_BY(mu_) = "starting";
  std::string health_reason_ ABSL_GUARDED_BY(mu_);
};

class MetricsEndpoint {
 public:
  // `health` may be null: then /healthz and /readyz always answer 200.
  MetricsEndpoint(metrics::Registry& registry, HealthState* health);
  // Port 0 picks a free port; a negative port disables the endpoint (Start returns OK).
  absl::Status Start(const std::string& host, int port);
  // Serves one more route beside /metrics, /healthz and /readyz. Call before Start().
  void Handle(const std::string& method, const std::string& path, HttpHandler handler) {
    server_.Handle(method, path, std::move(handler));
  }
  void Stop() { server_.Stop(); }
  int port() const { return server_.port(); }

 private:
  HttpServer server_;
};

// Routes /metrics, /healthz and /readyz on a server of the caller's (one that serves more).
void AddMetricsRoutes(HttpServer& server, metrics::Registry& registry, HealthState* health);

// Content type of the Prometheus text exposition format.
inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace tandem
