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

// Found by fuzz_yaml_json (tests/fuzz/regressions/yaml_json/invalid-utf8-0x80): a stray byte 0x80
// in a scalar became a JSON string that is not UTF-8, and the first dump() of it (the Kubernetes
// client, a validation message quoting the value) threw and aborted the process.
TEST(YamlJsonTest, RefusesScalarsThatAreNotUtf8) {
  for (const std::string& text :
       {std::string("name: caf\xe9\n"), std::string("a: [x, \"y\x80\"]\n"),
        std::string("k\xff: v\n")}) {
    auto docs = YamlToJson(text, "job.yaml");
    ASSERT_FALSE(docs.ok()) << text;
    EXPECT_NE(std::string(docs.status().message()).find("job.yaml:1:"), std::string::npos)
        << docs.status();
    EXPECT_NE(std::string(docs.status().message()).find("not valid UTF-8"), std::string::npos)
        << docs.status();
  }
  // yaml-cpp refuses a lone surrogate escape itself ("invalid unicode: 55296").
  EXPECT_FALSE(YamlToJson("a: \"\\ud800\"\n", "job.yaml").ok());
  auto ok = YamlToJson("name: \"caf\xc3\xa9 \xf0\x9f\x9a\x80\"\nesc: \"\\u00e9\"\n", "job.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)[0]["name"], "caf\xc3\xa9 \xf0\x9f\x9a\x80");
  EXPECT_EQ((*ok)[0]["esc"], "\xc3\xa9");
  EXPECT_NO_THROW((void)(*ok)[0].dump());
}

// Found by fuzz_manifest (tests/fuzz/regressions/manifest/yaml-cpp-endless-documents): yaml-cpp
// 0.7 reports documents forever, consuming no input and allocating without bound, when a top-level
// flow collection or quoted scalar is followed by ',' and a plain scalar. Refused by the limits.
TEST(YamlJsonTest, InputsOnWhichYamlCppLoopsForeverAreRefused) {
  for (const std::string& text : {std::string("{},x"), std::string("[],x"), std::string("\"s\",x"),
                                  std::string("{a: b},c"), std::string("{} , x")}) {
    auto docs = YamlToJson(text, "job.yaml");
    ASSERT_FALSE(docs.ok()) << text;
    EXPECT_NE(std::string(docs.status().message()).find("job.yaml: more than 64 documents"),
              std::string::npos)
        << docs.status();
  }
}

TEST(YamlJsonTest, FirstInvalidUtf8) {
  const size_t npos = std::string::npos;
  struct Case {
    std::string s;
    size_t want;
  };
  const Case cases[] = {
      {"", npos}, {"plain ascii", npos}, {"\xc3\xa9", npos}, {"\xf4\x8f\xbf\xbf", npos},
      {"a\x80", 1}, {"\xc0\xaf", 0},          // overlong '/'
      {"\xe0\x80\xaf", 0},                     // overlong, 3 bytes
      {"\xed\xa0\x80", 0},                     // surrogate U+D800
      {"\xf4\x90\x80\x80", 0},                 // above U+10FFFF
      {"ab\xc3", 2},                           // truncated
      {"\xc3\x28", 0},                         // bad continuation
  };
  for (const Case& c : cases) EXPECT_EQ(FirstInvalidUtf8(c.s), c.want) << c.s;
}

TEST(YamlJsonTest, MissingFileNamesPath) {
  auto docs = YamlFileToJson("/nonexistent/job.yaml");
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(docs.status().message()).find("/nonexistent/job.yaml"), std::string::npos);
}

}  // namespace
}  // namespace tandem
