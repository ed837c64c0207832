// The Prometheus text parser on good and hostile input, and trainer metrics extraction.
#include "operator/controller/prometheus_text.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "operator/controller/progress_prober.h"

namespace tandem::controller {
namespace {

TEST(PrometheusTextTest, ParsesTheExpositionFormat) {
  const char* text =
      "# HELP tandem_trainer_steps_total Training steps completed.\n"
      "# TYPE tandem_trainer_steps_total counter\n"
      "tandem_trainer_steps_total{job=\"mnist\"} 1200\n"
      "\n"
      "   # indented comment\n"
      "tandem_trainer_loss{job=\"mnist\",} 0.25 1700000000000\r\n"
      "weird:name_1 { a = \"x\\\\y\\\"z\\n\" , b=\"\" } -1.5e-3\n"
      "up +Inf\n"
      "down -inf\n"
      "nothing NaN\n"
      "tandem_trainer_pass\t2";
  auto s = ParsePrometheusText(text);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), 7u);
  EXPECT_EQ((*s)[0].name, "tandem_trainer_steps_total");
  EXPECT_EQ(*(*s)[0].Label("job"), "mnist");
  EXPECT_DOUBLE_EQ((*s)[0].value, 1200);
  EXPECT_DOUBLE_EQ((*s)[1].value, 0.25);
  EXPECT_EQ((*s)[2].name, "weird:name_1");
  EXPECT_EQ(*(*s)[2].Label("a"), "x\\y\"z\n");
  EXPECT_EQ(*(*s)[2].Label("b"), "");
  EXPECT_DOUBLE_EQ((*s)[2].value, -1.5e-3);
  EXPECT_TRUE(std::isinf((*s)[3].value) && (*s)[3].value > 0);
  EXPECT_TRUE(std::isinf((*s)[4].value) && (*s)[4].value < 0);
  EXPECT_TRUE(std::isnan((*s)[5].value));
  EXPECT_DOUBLE_EQ((*s)[6].value, 2);
  EXPECT_EQ(FindSample(*s, "tandem_trainer_loss", {{"job", "mnist"}})->value, 0.25);
  EXPECT_EQ(FindSample(*s, "tandem_trainer_loss", {{"job", "other"}}), nullptr);
  EXPECT_TRUE(ParsePrometheusText("").ok());
  EXPECT_TRUE(ParsePrometheusText("# only a comment").ok());
}

TEST(PrometheusTextTest, RefusesMalformedLinesNamingTheLine) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"ok 1\n9bad 1", "line 2: expected a metric name"},
      {"m", "line 1: expected a blank before the value"},
      {"m ", "missing value"},
      {"m abc", "invalid value 'abc'"},
      {"m 1 2 3", "unexpected text after the value"},
      {"m 1 12.5", "invalid timestamp"},
      {"m 0x10", "invalid value"},
      {"m{a=\"1\" 1", "expected ',' or '}'"},
      {"m{a=1} 1", "expected '\"'"},
      {"m{a=\"unterminated} 1", "unterminated value of label a"},
      {"m{a=\"x\\q\"} 1", "invalid escape"},
      {"m{a=\"1\",a=\"2\"} 1", "duplicate label a"},
      {"m{1a=\"x\"} 1", "expected a label name"},
      {"m{a:b=\"x\"} 1", "expected '='"},
      {"m{a} 1", "expected '='"},
      {"m 1\nm2 \xff\xfe", "line 2: invalid value '?" "?'"},
      {"{a=\"b\"} 1", "expected a metric name"},
  };
  for (const auto& c : cases) {
    auto s = ParsePrometheusText(c.text);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_NE(s.status().message().find(c.error), std::string::npos) << c.text << " -> " << s.status();
  }
  std::string nul("m 1\nx\0y 2", 10);
  auto s = ParsePrometheusText(nul);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("line 2: NUL"), std::string::npos) << s.status();
}

TEST(PrometheusTextTest, LimitsBoundHostileInput) {
  PromParseLimits small{.max_bytes = 1000, .max_line_bytes = 50, .max_samples = 3, .max_labels = 2};
  EXPECT_FALSE(ParsePrometheusText(std::string(1001, '#'), small).ok());
  EXPECT_FALSE(ParsePrometheusText("m{" + std::string(60, 'a') + "=\"\"} 1", small).ok());
  EXPECT_FALSE(ParsePrometheusText("a 1\nb 1\nc 1\nd 1", small).ok());
  EXPECT_TRUE(ParsePrometheusText("a 1\nb 1\nc 1", small).ok());
  EXPECT_FALSE(ParsePrometheusText("m{a=\"\",b=\"\",c=\"\"} 1", small).ok());
  // A huge label value on one line and a very long number are refused, not slow.
  EXPECT_FALSE(ParsePrometheusText("m{a=\"" + std::string(100000, 'x') + "\"} 1").ok());
  auto big = ParsePrometheusText("m 1" + std::string(400, '0'));
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_TRUE(std::isinf((*big)[0].value)) << "overflow is +Inf, as in Go";
}

TEST(PrometheusTextTest, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  const std::string alphabet = "m{}=\",\\ \t\n#01.eE+-naNIf_:x\r\xff";
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    int n = static_cast<int>(rng() % 80);
    for (int k = 0; k < n; ++k) text += alphabet[rng() % alphabet.size()];
    auto s = ParsePrometheusText(text);  // ok or an error; never a crash or a hang
    if (s.ok()) {
      for (const auto& sample : *s) EXPECT_FALSE(sample.name.empty());
    }
  }
}

TEST(TrainerMetricsTest, ExtractsTheJobsNumbers) {
  const char* text =
      "tandem_trainer_steps_total{job=\"other\"} 5\n"
      "tandem_trainer_steps_total{job=\"mnist\"} 1200\n"
      "tandem_trainer_pass{job=\"mnist\"} 2\n"
      "tandem_trainer_loss{job=\"mnist\"} NaN\n"
      "tandem_trainer_accuracy{job=\"mnist\"} 0.9\n"
      "tandem_trainer_test_accuracy{job=\"mnist\"} 0.85\n"
      "tandem_trainer_examples_per_second{job=\"mnist\"} 4096.5\n";
  auto m = TrainerMetricsFromText(text, "mnist");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->steps, 1200);
  EXPECT_EQ(m->pass, 2);
  EXPECT_EQ(m->loss, 0) << "NaN is unknown";
  EXPECT_DOUBLE_EQ(m->accuracy, 0.9);
  EXPECT_DOUBLE_EQ(m->test_accuracy, 0.85);
  EXPECT_DOUBLE_EQ(m->examples_per_sec, 4096.5);

  // Unlabelled samples are accepted; another job's are not.
  EXPECT_TRUE(TrainerMetricsFromText("tandem_trainer_steps_total 1\ntandem_trainer_pass 0\n", "mnist").ok());
  auto other = TrainerMetricsFromText("tandem_trainer_steps_total{job=\"x\"} 1\ntandem_trainer_pass{job=\"x\"} 0\n", "mnist");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("for job mnist"), std::string::npos) << other.status();
  // Not a trainer, or a malformed body, or counts that are not counts.
  EXPECT_FALSE(TrainerMetricsFromText("tandem_pserver_pushes_total 3\n", "mnist").ok());
  EXPECT_FALSE(TrainerMetricsFromText("<html>hello</html>", "mnist").ok());
  EXPECT_FALSE(TrainerMetricsFromText("tandem_trainer_steps_total -1\ntandem_trainer_pass 0\n", "mnist").ok());
  EXPECT_FALSE(TrainerMetricsFromText("tandem_trainer_steps_total +Inf\ntandem_trainer_pass 0\n", "mnist").ok());
  EXPECT_FALSE(TrainerMetricsFromText("tandem_trainer_steps_total 1e300\ntandem_trainer_pass 0\n", "mnist").ok());
}

}  // namespace
}  // namespace tandem::controller
