#include "api/worker_result.h"

#include <cmath>
#include <string>

#include "gtest/gtest.h"

namespace tandem::api {
namespace {

TEST(WorkerResultTest, RendersOneLineAndParsesBack) {
  WorkerResult r{.steps = 1200, .passes = 3, .test_accuracy = 0.9125, .test_loss = 0.25, .test_auc = 0.75,
                 .examples_per_sec = 4100.5};
  std::string line = RenderWorkerResult(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_LT(line.size(), 300u) << "far below the kubelet's 4096 bytes";
  auto back = ParseWorkerResult(line);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, r);
}

TEST(WorkerResultTest, NonFiniteValuesAreLeftOut) {
  WorkerResult r{.steps = 5, .passes = 1, .test_accuracy = std::nan(""), .test_loss = INFINITY};
  std::string line = RenderWorkerResult(r);
  EXPECT_EQ(line.find("testAccuracy"), std::string::npos) << line;
  EXPECT_EQ(line.find("testLoss"), std::string::npos) << line;
  auto back = ParseWorkerResult(line);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->test_accuracy.has_value());
  EXPECT_FALSE(back->test_loss.has_value());
  EXPECT_EQ(back->steps, 5);
}

TEST(WorkerResultTest, WhatIsNotAResultIsRefusedWithTheReason) {
  struct Case {
    std::string message, error;
  };
  for (const Case& c : {
           Case{"tandem-trainer: spec.data: cannot open x\n", "not a JSON object"},
           Case{"[1,2]", "not a JSON object"},
           Case{R"({"steps":3})", "kind"},
           Case{R"({"kind":"other/result","steps":3})", "kind"},
           Case{R"({"kind":"tandem.dev/result","steps":-1})", "steps: must be an integer >= 0"},
           Case{R"({"kind":"tandem.dev/result","passes":1.5})", "passes: must be an integer >= 0"},
           Case{R"({"kind":"tandem.dev/result","testAccuracy":1.5})", "testAccuracy: must be a number in [0, 1]"},
           Case{R"({"kind":"tandem.dev/result","testAuc":"0.7"})", "testAuc"},
           Case{R"({"kind":"tandem.dev/result","examplesPerSec":-3})", "examplesPerSec"},
           Case{std::string(5000, ' '), "more than a termination message holds"},
       }) {
    auto r = ParseWorkerResult(c.message);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_NE(r.status().message().find(c.error), std::string::npos) << r.status();
  }
}

}  // namespace
}  // namespace tandem::api
