// bench/scheduler-scale runs at a small size and writes the records the benchmark dashboards
// read (names and units only: timings are never asserted in tests).
#include <fstream>
#include <set>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

TEST(SchedulerBenchSmokeTest, WritesPassAdmissionsAndPeakMemoryRecords) {
  const std::string json_path = ::testing::TempDir() + "/scheduler-scale.json";
  auto r = testing::RunCommand(testing::BinDir() + "/tandem-bench-scheduler-scale --jobs 400 --nodes 40 --queues 5 "
                               "--repeats 1 --json " + json_path + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Kueue"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("YuniKorn"), std::string::npos) << r.output;
  std::ifstream in(json_path);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json records = nlohmann::json::parse(ss.str(), nullptr, false);
  ASSERT_TRUE(records.is_array()) << ss.str();
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& rec : records) by_name[rec["name"]] = rec;
  ASSERT_TRUE(by_name.count("pass") && by_name.count("admissions") && by_name.count("peak_memory")) << ss.str();
  EXPECT_EQ(by_name["pass"]["unit"], "ms");
  EXPECT_EQ(by_name["admissions"]["unit"], "jobs/s");
  EXPECT_EQ(by_name["admissions"]["peer"], 40.0);  // Kueue's published figure
  EXPECT_EQ(by_name["placements"]["peer"], 833.3);  // YuniKorn's
  EXPECT_EQ(by_name["peak_memory"]["unit"], "MiB");
  EXPECT_GT(by_name["admissions"]["tandem"].get<double>(), 0);
  EXPECT_GT(by_name["peak_memory"]["tandem"].get<double>(), 0);
}

}  // namespace
}  // namespace tandem
