#include "common/yaml_json.h"

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(YamlJsonTest, ConvertsScalarsByCoreSchema) {
  auto docs = YamlToJson(
      "a: 1\nb: 2.5\nc: true\nd: ~\ne: hello\nf: \"3\"\ng: [1, x]\nh: 1e3\ni: 0x10\nj: -7\n",
      "t.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  const auto& j = (*docs)[0];
  EXPECT_EQ(j["a"], 1);
  EXPECT_TRUE(j["a"].is_number_integer());
  EXPECT_EQ(j["b"], 2.5);
  EXPECT_EQ(j["c"], true);
  EXPECT_TRUE(j["d"].is_null());
  EXPECT_EQ(j["e"], "hello");
  EXPECT_EQ(j["f"], "3");
  EXPECT_EQ(j["g"], nlohmann::json::parse("[1, \"x\"]"));
  EXPECT_EQ(j["h"], 1000.0);
  EXPECT_EQ(j["i"], "0x10");
  EXPECT_EQ(j["j"], -7);
}

TEST(YamlJsonTest, MultipleDocuments) {
  auto docs = YamlToJson("a: 1\n---\nb: 2\n---\n", "t.yaml");
  ASSERT_TRUE(docs.ok());
  EXPECT_EQ(docs->size(), 2u);
}

TEST(YamlJsonTest, SyntaxErrorNamesLineAndColumn) {
  auto docs = YamlToJson("a: 1\nb: [1, 2\n", "bad.yaml");
  ASSERT_FALSE(docs.ok());
  EXPECT_NE(std::string(docs.status().message()).find("bad.yaml:"), std::string::npos);
}

TEST(YamlJsonTest, RejectsDuplicateKeys) {
  auto docs = YamlToJson("a: 1\na: 2\n", "dup.yaml");
  ASSERT_FALSE(docs.ok());
  EXPECT_NE(std::string(docs.status().message()).find("duplicate key 'a'"), std::string::npos);
}

TEST(YamlJsonTest, RefusesAliasBombs) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c, ++prev) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
  }
  auto docs = YamlToJson(bomb, "bomb.yaml");
  ASSERT_FALSE(docs.ok());
  EXPECT_NE(std::string(docs.status().message()).find("refusing to expand"), std::string::npos);
}

TEST(YamlJsonTest, RefusesDeepNestingWithoutCrashing) {
  std::string deep(200000, '[');
  auto docs = YamlToJson(deep, "deep.yaml");
  ASSERT_FALSE(docs.ok());
  EXPECT_NE(std::string(docs.status().message()).find("nesting deeper"), std::string::npos);
  std::string indented;
  for (int i = 0; i < 2000; ++i) indented += std::string(i, ' ') + "k:\n";
  EXPECT_FALSE(YamlToJson(indented, "indent.yaml").ok());
}

TEST(YamlJsonTest, RefusesBinaryAndOversizedInput) {
  EXPECT_FALSE(YamlToJson(std::string("a: \0\x01\x02", 6), "bin").ok());
  YamlLimits small;
  small.max_bytes = 10;
  EXPECT_FALSE(YamlToJson("a: 12345678901234", "big", small).ok());
}

TEST(YamlJsonTest, MissingFileNamesPath) {
  auto docs = YamlFileToJson("/nonexistent/job.yaml");
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(docs.status().message()).find("/nonexistent/job.yaml"), std::string::npos);
}

}  // namespace
}  // namespace tandem
