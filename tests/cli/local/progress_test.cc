#include "cli/local/progress.h"

#include "gtest/gtest.h"

namespace tandem::local {
namespace {

TEST(ProgressTest, ParsesOnlyWellFormedEventLines) {
  EXPECT_FALSE(ParseEventLine("plain log line").has_value());
  EXPECT_FALSE(ParseEventLine("@tandem {not json").has_value());
  EXPECT_FALSE(ParseEventLine("@tandem [1,2]").has_value());
  EXPECT_FALSE(ParseEventLine("@tandem {\"noevent\":1}").has_value());
  auto e = ParseEventLine("@tandem {\"event\":\"progress\",\"step\":3}");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ((*e)["step"], 3);
}

TEST(ProgressTest, AggregatesSlowestPositionAndSumsThroughput) {
  ProgressTracker t;
  t.OnEvent(0, {{"event", "progress"}, {"pass", 2}, {"passes", 3}, {"step", 50},
                {"stepsPerPass", 100}, {"loss", 0.5}, {"accuracy", 0.8}, {"examplesPerSec", 1000}});
  t.OnEvent(1, {{"event", "progress"}, {"pass", 2}, {"passes", 3}, {"step", 40},
                {"stepsPerPass", 100}, {"loss", 0.7}, {"accuracy", 0.6}, {"examplesPerSec", 900}});
  WorkerProgress a = t.Aggregate();
  EXPECT_EQ(a.pass, 2);
  EXPECT_EQ(a.step, 40);
  EXPECT_DOUBLE_EQ(a.loss, 0.6);
  EXPECT_DOUBLE_EQ(a.accuracy, 0.7);
  EXPECT_DOUBLE_EQ(a.examples_per_sec, 1900);
  t.OnEvent(1, {{"event", "resumed"}, {"step", 100}, {"lostSteps", 37}});
  t.OnEvent(0, {{"event", "resumed"}, {"step", 100}, {"lostSteps", 37}});
  EXPECT_EQ(t.lost_steps(), 74);
  EXPECT_EQ(t.resumes(), 2);
}

TEST(ProgressTest, RendersBarAndPlainLines) {
  WorkerProgress p;
  p.seen = true;
  p.pass = 2;
  p.passes = 2;
  p.step = 50;
  p.steps_per_pass = 100;
  p.loss = 0.25;
  p.accuracy = 0.9;
  p.examples_per_sec = 1234;
  // 150 of 200 steps in 30 s: 75%, ETA 10 s.
  std::string plain = ProgressDisplay::Render(p, 30, 0, false);
  EXPECT_EQ(plain, "progress  75% pass 2/2 step 50/100 loss 0.2500 acc 90.00% 1234 ex/s ETA 10s");
  std::string bar = ProgressDisplay::Render(p, 30, 120, true);
  EXPECT_EQ(bar.rfind("[", 0), 0u);
  EXPECT_NE(bar.find("#"), std::string::npos);
  EXPECT_NE(bar.find(" 75% "), std::string::npos);
}

TEST(ProgressTest, RendersAStreamWithoutAnEnd) {
  // A stream without maxSteps reports one pass with no step count (docs/streaming.md).
  WorkerProgress p;
  p.seen = true;
  p.pass = 1;
  p.passes = 1;
  p.step = 420;
  p.steps_per_pass = 0;
  p.loss = 0.5;
  p.accuracy = 0.75;
  p.examples_per_sec = 900;
  EXPECT_EQ(ProgressDisplay::Render(p, 65, 0, false),
            "stream step 420 loss 0.5000 acc 75.00% 900 ex/s 1m05s");
  EXPECT_EQ(ProgressDisplay::Render(p, 65, 120, true),
            "stream step 420 loss 0.5000 acc 75.00% 900 ex/s 1m05s");
}

}  // namespace
}  // namespace tandem::local
