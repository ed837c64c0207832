// ProgressProber and HttpGet over real loopback sockets: a metrics endpoint whose answer the test
// changes (good numbers, garbage, an HTTP error, chunked, a slow peer, a dead port).
#include "operator/controller/progress_prober.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/socket.h"
#include "gtest/gtest.h"
#include "operator/controller/http_get.h"
#include "operator/controller/operator_metrics.h"
#include "tests/common/test_util.h"

namespace tandem::controller {
namespace {

using ::tandem::testing::Eventually;

double Scrapes(const std::string& result) {
  return OperatorMetrics::Get().progress_scrapes.WithLabels({result})->Value();
}

// A trainer stand-in: /metrics answers whatever `body`/`status` say; "chunked" streams it.
class FakeTrainer {
 public:
  FakeTrainer() {
    server_.Handle("GET", "/metrics", [this](const HttpRequest&, HttpResponseWriter& w) {
      hits++;
      std::string body;
      int status;
      bool chunked;
      {
        std::lock_guard<std::mutex> lock(mu_);
        body = body_;
        status = status_;
        chunked = chunked_;
      }
      if (chunked) {
        w.BeginChunked(status, "text/plain");
        for (size_t i = 0; i < body.size(); i += 7) w.WriteChunk(body.substr(i, 7));
        w.EndChunked();
      } else {
        w.Respond(status, "text/plain", body);
      }
    });
    EXPECT_TRUE(server_.Start("127.0.0.1", 0).ok());
  }
  void Set(std::string body, int status = 200, bool chunked = false) {
    std::lock_guard<std::mutex> lock(mu_);
    body_ = std::move(body);
    status_ = status;
    chunked_ = chunked;
  }
  int port() const { return server_.port(); }
  std::atomic<int> hits{0};

 private:
  std::mutex mu_;
  std::string body_;
  int status_ = 200;
  bool chunked_ = false;
  HttpServer server_;
};

std::string TrainerText(const std::string& job, int steps, int pass, double loss) {
  metrics::Registry r;  // what the trainer serves, through the same serializer
  r.AddCounter("tandem_trainer_steps_total", "steps", {"job"}).WithLabels({job})->Inc(steps);
  r.AddGauge("tandem_trainer_pass", "pass", {"job"}).WithLabels({job})->Set(pass);
  r.AddGauge("tandem_trainer_loss", "loss", {"job"}).WithLabels({job})->Set(loss);
  r.AddGauge("tandem_trainer_accuracy", "acc", {"job"}).WithLabels({job})->Set(0.5);
  r.AddGauge("tandem_trainer_examples_per_second", "eps", {"job"}).WithLabels({job})->Set(100);
  return r.Serialize();
}

TEST(HttpGetTest, ReadsPlainAndChunkedBodiesAndReportsErrors) {
  FakeTrainer t;
  t.Set("hello");
  auto body = HttpGet({.host = "127.0.0.1", .port = t.port(), .path = "/metrics"});
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "hello");
  std::string big(100000, 'x');
  t.Set(big, 200, /*chunked=*/true);
  body = HttpGet({.host = "127.0.0.1", .port = t.port(), .path = "/metrics"});
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, big);
  body = HttpGet({.host = "127.0.0.1", .port = t.port(), .path = "/metrics", .max_body_bytes = 1000});
  EXPECT_FALSE(body.ok()) << "over the size limit";
  t.Set(big, 200, false);
  body = HttpGet({.host = "127.0.0.1", .port = t.port(), .path = "/metrics", .max_body_bytes = 1000});
  EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument) << body.status();
  t.Set("nope", 500);
  body = HttpGet({.host = "127.0.0.1", .port = t.port(), .path = "/metrics"});
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition) << body.status();
  EXPECT_NE(body.status().message().find("HTTP 500"), std::string::npos);
  body = HttpGet({.host = "127.0.0.1", .port = t.port(), .path = "/elsewhere"});
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition) << body.status();
  EXPECT_EQ(HttpGet({.host = "trainer.local", .port = 80}).status().code(), absl::StatusCode::kInvalidArgument)
      << "no DNS on the scrape path";
  EXPECT_EQ(HttpGet({.host = "127.0.0.1", .port = 0}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HttpGetTest, AKeepAlivePeerDoesNotHoldTheScrapeUntilItsDeadline) {
  // Answers a whole response with Content-Length, then keeps the connection open.
  auto listener = net::Listener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::atomic<bool> done{false};
  std::thread peer([&] {
    auto c = listener->Accept(net::Clock::now() + std::chrono::seconds(30));
    if (!c.ok()) return;
    char buf[4096];
    (void)::recv(c->get(), buf, sizeof(buf), 0);
    const char* reply = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    (void)::send(c->get(), reply, std::strlen(reply), MSG_NOSIGNAL);
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
  // A 30 s deadline: a client waiting for the close would time out and fail after 30 s.
  auto body = HttpGet({.host = "127.0.0.1", .port = listener->port(), .timeout_s = 30});
  done = true;
  peer.join();
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "hello");
}

TEST(HttpGetTest, DeadAndSilentPeersFailWithinTheTimeout) {
  // A port nobody listens on: refused.
  auto free_ports = net::PickFreeLoopbackPorts(1);
  ASSERT_TRUE(free_ports.ok()) << free_ports.status();
  const int dead_port = (*free_ports)[0];
  EXPECT_EQ(HttpGet({.host = "127.0.0.1", .port = dead_port, .timeout_s = 1}).status().code(),
            absl::StatusCode::kUnavailable);

  // A peer that accepts and never answers: a timeout, not a hang.
  auto silent = net::Listener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(silent.ok()) << silent.status();
  auto r = HttpGet({.host = "127.0.0.1", .port = silent->port(), .timeout_s = 0.2});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
}

TEST(ProgressProberTest, ScrapesCachesAndKeepsTheLastGoodSample) {
  FakeTrainer t;
  t.Set(TrainerText("mnist", 120, 1, 0.5));
  std::atomic<int> updates{0};
  ProgressProber prober({.interval_s = 0.05, .timeout_s = 1, .threads = 2,
                         .on_update = [&](const std::string& key) {
                           EXPECT_EQ(key, "default/mnist");
                           updates++;
                         },
                         .now = [] { return 1800000000.0; }});
  prober.Start();
  const TrainerEndpoint ep{"mnist", "127.0.0.1", t.port()};
  EXPECT_FALSE(prober.Observe("default/mnist", ep).has_value()) << "nothing scraped yet; never waits";
  ASSERT_TRUE(Eventually([&] { return prober.Observe("default/mnist", ep).has_value(); }));
  auto s = prober.Observe("default/mnist", ep);
  EXPECT_EQ(s->metrics.steps, 120);
  EXPECT_EQ(s->metrics.pass, 1);
  EXPECT_DOUBLE_EQ(s->metrics.loss, 0.5);
  EXPECT_DOUBLE_EQ(s->changed_at, 1800000000.0);
  ASSERT_TRUE(Eventually([&] { return updates.load() == 1; }));

  // New numbers: an update; the same numbers again: none.
  t.Set(TrainerText("mnist", 240, 1, 0.4));
  ASSERT_TRUE(Eventually([&] { return prober.Observe("default/mnist", ep)->metrics.steps == 240; }));
  ASSERT_TRUE(Eventually([&] { return updates.load() == 2; }));
  int hits = t.hits;
  ASSERT_TRUE(Eventually([&] { return t.hits > hits + 3; })) << "scraped every interval";
  EXPECT_EQ(updates.load(), 2) << "unchanged numbers do not wake the reconciler";

  // Garbage and HTTP errors are counted and leave the last good sample.
  double invalid = Scrapes("invalid"), http = Scrapes("http_error");
  t.Set("<html>not metrics</html>");
  ASSERT_TRUE(Eventually([&] { return Scrapes("invalid") > invalid; }));
  t.Set("oops", 503);
  ASSERT_TRUE(Eventually([&] { return Scrapes("http_error") > http; }));
  EXPECT_EQ(prober.Observe("default/mnist", ep)->metrics.steps, 240);

  // Forget stops scraping.
  prober.Forget("default/mnist");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let an in-flight scrape end
  hits = t.hits;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(t.hits.load(), hits) << "a forgotten job is not scraped";
  prober.Stop();
}

TEST(ProgressProberTest, UnreachableEndpointIsCountedAndANewEndpointIsScrapedAtOnce) {
  FakeTrainer t;
  t.Set(TrainerText("j", 7, 0, 1.0));
  ProgressProber prober({.interval_s = 3600, .timeout_s = 0.5, .threads = 1});
  prober.Start();
  double unreachable = Scrapes("unreachable");
  // Port 1 on loopback: refused at once.
  EXPECT_FALSE(prober.Observe("ns/j", {"j", "127.0.0.1", 1}).has_value());
  ASSERT_TRUE(Eventually([&] { return Scrapes("unreachable") > unreachable; }));
  EXPECT_FALSE(prober.Observe("ns/j", {"j", "127.0.0.1", 1}).has_value());
  // The pod came back on another address: no waiting for the (hour-long) interval.
  ASSERT_TRUE(Eventually([&] { return prober.Observe("ns/j", {"j", "127.0.0.1", t.port()}).has_value(); }));
  EXPECT_EQ(prober.Observe("ns/j", {"j", "127.0.0.1", t.port()})->metrics.steps, 7);
  prober.Stop();
}

}  // namespace
}  // namespace tandem::controller
