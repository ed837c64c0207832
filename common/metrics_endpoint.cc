#include "common/metrics_endpoint.h"

#include "absl/synchronization/mutex.h"

namespace tandem {

void HealthState::SetReady(bool ready, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  ready_ = ready;
  ready_reason_ = reason;
}

void HealthState::SetHealthy(bool healthy, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  healthy_ = healthy;
  health_reason_ = reason;
}

bool HealthState::ready(std::string* reason) const {
  absl::MutexLock lock(&mu_);
  *reason = ready_reason_;
  return ready_;
}

bool HealthState::healthy(std::string* reason) const {
  absl::MutexLock lock(&mu_);
  *reason = health_reason_;
  return healthy_;
}

MetricsEndpoint::MetricsEndpoint(metrics::Registry& registry, HealthState* health) {
  AddMetricsRoutes(server_, registry, health);
}

void AddMetricsRoutes(HttpServer& server, metrics::Registry& registry, HealthState* health) {
  server.Handle("GET", "/metrics", [&registry](const HttpRequest&, HttpResponseWriter& w) {
    w.Respond(200, kPrometheusContentType, registry.Serialize());
  });
  server.Handle("GET", "/healthz", [health](const HttpRequest&, HttpResponseWriter& w) {
    std::string reason;
    if (health == nullptr || health->healthy(&reason)) {
      w.Respond(200, "text/plain", "ok\n");
    } else {
      w.Respond(503, "text/plain", "unhealthy: " + reason + "\n");
    }
  });
  server.Handle("GET", "/readyz", [health](const HttpRequest&, HttpResponseWriter& w) {
    std::string reason;
    if (health == nullptr || health->ready(&reason)) {
      w.Respond(200, "text/plain", "ok\n");
    } else {
      w.Respond(503, "text/plain", "not ready: " + reason + "\n");
    }
  });
}

absl::Status MetricsEndpoint::Start(const std::string& host, int port) {
  if (port < 0) return absl::OkStatus();
  return server_.Start(host, port);
}

}  // namespace tandem
