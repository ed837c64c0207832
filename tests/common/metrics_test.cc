#include "common/metrics.h"

#include <thread>

#include "gtest/gtest.h"

namespace tandem::metrics {
namespace {

TEST(MetricsTest, FormatsSpecialValues) {
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatValue(0.0 / 0.0), "NaN");
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(std::stod(FormatValue(0.1)), 0.1);  // round-trips
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(EscapeHelp("line\nwith \\ and \""), "line\\nwith \\\\ and \"");
}

TEST(MetricsTest, CounterAndGaugeExposition) {
  Registry r;
  auto& c = r.AddCounter("requests_total", "Requests served.", {"code", "path"});
  c.WithLabels({"200", "/a\"b"})->Inc(2);
  c.WithLabels({"500", "/"})->Inc();
  r.AddGauge("queue_depth", "Items\nwaiting.").Get()->Set(-4.5);
  const std::string expected =
      "# HELP queue_depth Items\\nwaiting.\n"
      "# TYPE queue_depth gauge\n"
      "queue_depth -4.5\n"
      "# HELP requests_total Requests served.\n"
      "# TYPE requests_total counter\n"
      "requests_total{code=\"200\",path=\"/a\\\"b\"} 2\n"
      "requests_total{code=\"500\",path=\"/\"} 1\n";
  EXPECT_EQ(r.Serialize(), expected);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInf) {
  Registry r;
  auto& h = r.AddHistogram("latency_seconds", "Latency.", {"op"}, {0.1, 1, 10});
  Histogram* push = h.WithLabels({"push"});
  for (double v : {0.05, 0.1, 0.5, 2.0, 50.0}) push->Observe(v);
  const std::string expected =
      "# HELP latency_seconds Latency.\n"
      "# TYPE latency_seconds histogram\n"
      "latency_seconds_bucket{op=\"push\",le=\"0.1\"} 2\n"
      "latency_seconds_bucket{op=\"push\",le=\"1\"} 3\n"
      "latency_seconds_bucket{op=\"push\",le=\"10\"} 4\n"
      "latency_seconds_bucket{op=\"push\",le=\"+Inf\"} 5\n"
      "latency_seconds_sum{op=\"push\"} 52.65\n"
      "latency_seconds_count{op=\"push\"} 5\n";
  EXPECT_EQ(r.Serialize(), expected);
}

TEST(MetricsTest, SameRegistrationReturnsSameFamily) {
  Registry r;
  auto& a = r.AddCounter("x_total", "X.", {"l"});
  auto& b = r.AddCounter("x_total", "X.", {"l"});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(a.WithLabels({"v"}), b.WithLabels({"v"}));
}

TEST(MetricsTest, RemoveDropsChild) {
  Registry r;
  auto& g = r.AddGauge("jobs", "Jobs.", {"job"});
  g.WithLabels({"a"})->Set(1);
  g.WithLabels({"b"})->Set(2);
  g.Remove({"a"});
  EXPECT_EQ(r.Serialize().find("job=\"a\""), std::string::npos);
  EXPECT_NE(r.Serialize().find("job=\"b\""), std::string::npos);
}

TEST(MetricsTest, ConcurrentUpdatesAreExact) {
  Registry r;
  Counter* c = r.AddCounter("n_total", "N.").Get();
  Histogram* h = r.AddHistogram("h", "H.", {}, {0.5}).Get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        c->Inc();
        h->Observe(i % 2);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->Value(), 400000);
  EXPECT_EQ(h->Count(), 400000u);
  EXPECT_EQ(h->BucketCounts()[0], 200000u);
  EXPECT_EQ(h->Sum(), 200000);
}

TEST(MetricsTest, CallbackAndProcessMetrics) {
  Registry& r = Registry::Default();
  std::string text = r.Serialize();
  EXPECT_NE(text.find("# TYPE process_resident_memory_bytes gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter"), std::string::npos);
}

TEST(MetricsDeathTest, InvalidNamesAreProgrammingErrors) {
  Registry r;
  EXPECT_DEATH(r.AddCounter("bad-name", "x"), "invalid metric name");
  EXPECT_DEATH(r.AddCounter("ok", "x", {"__reserved"}), "invalid label name");
  r.AddCounter("dup", "x");
  EXPECT_DEATH(r.AddGauge("dup", "x"), "registered twice");
}

}  // namespace
}  // namespace tandem::metrics
