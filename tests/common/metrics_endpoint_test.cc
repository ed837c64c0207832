// Scrapes a live /metrics endpoint and runs Prometheus' own `promtool check metrics` on it.
#include "common/metrics_endpoint.h"

#include <cstdio>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

using testing::HttpRequestTo;
using testing::RunCommand;

TEST(MetricsEndpointTest, HealthAndReadiness) {
  HealthState health;
  metrics::Registry registry;
  MetricsEndpoint endpoint(registry, &health);
  ASSERT_TRUE(endpoint.Start("127.0.0.1", 0).ok());
  EXPECT_EQ(HttpRequestTo(endpoint.port(), "GET", "/healthz").status, 200);
  auto not_ready = HttpRequestTo(endpoint.port(), "GET", "/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_NE(not_ready.body.find("starting"), std::string::npos);
  health.SetReady(true);
  EXPECT_EQ(HttpRequestTo(endpoint.port(), "GET", "/readyz").status, 200);
  health.SetHealthy(false, "disk full");
  EXPECT_EQ(HttpRequestTo(endpoint.port(), "GET", "/healthz").status, 503);
}

TEST(MetricsEndpointTest, LiveScrapePassesPromtool) {
  metrics::Registry registry;
  metrics::RegisterProcessMetrics(registry);
  auto& requests = registry.AddCounter("tandem_test_requests_total",
                                       "Requests by \"code\";\nbackslash \\ too.", {"code", "peer"});
  requests.WithLabels({"200", "10.0.0.1:\"x\"\n\\"})->Inc(3);
  registry.AddGauge("tandem_test_queue_depth", "Depth.", {"queue"}).WithLabels({"a"})->Set(-2);
  auto& lat = registry.AddHistogram("tandem_test_latency_seconds", "Latency.", {"op"},
                                    metrics::LatencyBuckets());
  for (int i = 0; i < 100; ++i) lat.WithLabels({"push"})->Observe(i * 0.01);
  lat.WithLabels({"pull"})->Observe(1e9);

  MetricsEndpoint endpoint(registry, nullptr);
  ASSERT_TRUE(endpoint.Start("127.0.0.1", 0).ok());
  auto scrape = HttpRequestTo(endpoint.port(), "GET", "/metrics");
  ASSERT_EQ(scrape.status, 200);
  EXPECT_NE(scrape.headers.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(scrape.body.find("tandem_test_latency_seconds_bucket{op=\"pull\",le=\"+Inf\"} 1"),
            std::string::npos);

  std::string path = ::testing::TempDir() + "/scrape.prom";
  std::ofstream(path) << scrape.body;
  auto which = RunCommand("command -v promtool");
  if (which.exit_code != 0) GTEST_FAIL() << "promtool is not installed (package prometheus)";
  auto check = RunCommand("promtool check metrics < " + path);
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n--- scrape ---\n" << scrape.body;
}

}  // namespace
}  // namespace tandem
