// RenderRunReport: the page holds the run's events as data for its script, whatever they contain.
#include "cli/local/report.h"

#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem::local {
namespace {

// The JSON the page's script parses (the text of <script id="tandem-data">).
nlohmann::json Payload(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"tandem-data\">";
  size_t begin = html.find(open);
  EXPECT_NE(begin, std::string::npos);
  begin += open.size();
  size_t end = html.find("</script>", begin);
  EXPECT_NE(end, std::string::npos);
  return nlohmann::json::parse(html.substr(begin, end - begin));
}

TEST(RunReportTest, EmbedsEveryEventAndSkipsMalformedLines) {
  std::string jsonl =
      R"j({"event":"progress","worker":0,"pass":1,"step":10,"stepsPerPass":100,"loss":0.5,"time":1})j" "\n"
      "not json\n"
      "[1,2]\n"
      R"j({"event":"supervisor","message":"restarted worker-1/trainer (pid 7)","time":2})j" "\n";
  std::string html = RenderRunReport(jsonl, R"j({"test_accuracy":0.9,"restarts":1})j", "run-1");
  nlohmann::json data = Payload(html);
  ASSERT_EQ(data["events"].size(), 2u);
  EXPECT_EQ(data["events"][0]["loss"], 0.5);
  EXPECT_EQ(data["summary"]["restarts"], 1);
  for (const char* id : {"chart-loss", "chart-accuracy", "chart-throughput", "chart-split"}) {
    EXPECT_NE(html.find(std::string("id=\"") + id + "\""), std::string::npos) << id;
  }
}

TEST(RunReportTest, TextThatWouldEndTheScriptOrInjectMarkupStaysData) {
  // A process' message or the folder name may contain anything.
  std::string jsonl = R"j({"event":"supervisor","message":"</script><script>alert(1)</script>","time":1})j" "\n";
  std::string html = RenderRunReport(jsonl, "", "<b>run</b>");
  EXPECT_EQ(html.find("</script><script>alert"), std::string::npos);  // the data block is not closed early
  EXPECT_EQ(html.find("<b>run</b>"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;run&lt;/b&gt;"), std::string::npos);
  EXPECT_EQ(Payload(html)["events"][0]["message"], "</script><script>alert(1)</script>");
}

TEST(RunReportTest, NoNetwork) {
  std::string html = RenderRunReport("", "", "r");
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(html.find(" src="), std::string::npos);
  EXPECT_EQ(html.find(" href="), std::string::npos);
}

TEST(RunReportTest, WriteNamesTheMissingFile) {
  absl::Status s = WriteRunReport("/nonexistent/run");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent/run/metrics.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace tandem::local
