// serve/request.h: the predict request parser's fast path (a scanner for the common shape)
// against its general parser (a JSON document): where the fast path answers, both give
// bit-identical examples; every request the fast path declines - malformed, unusual or wrong -
// gets the general parser's answer, so the error messages have one source.
#include "serve/request.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tandem::serve {
namespace {

using trainer::InputSource;

Signature TestSignature() {
  Signature s;
  s.inputs = {{.name = "x", .source = InputSource::kFeatures, .model_input = 0, .size = 3},
              {.name = "ids", .source = InputSource::kFields, .model_input = 1, .size = 3},
              {.name = "words", .source = InputSource::kTokens, .model_input = 2, .size = 4, .vocab = 10}};
  s.output_size = 2;
  return s;
}

const RequestLimits kLimits{.max_examples = 4, .max_ids_per_field = 3};

void ExpectSame(const std::vector<Example>& a, const std::vector<Example>& b, const std::string& body) {
  ASSERT_EQ(a.size(), b.size()) << body;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].inputs.size(), b[i].inputs.size()) << body;
    for (size_t k = 0; k < a[i].inputs.size(); ++k) {
      const InputValue& x = a[i].inputs[k];
      const InputValue& y = b[i].inputs[k];
      EXPECT_EQ(x.ids, y.ids) << body;
      EXPECT_EQ(x.offsets, y.offsets) << body;
      ASSERT_EQ(x.values.size(), y.values.size()) << body;
      EXPECT_EQ(std::memcmp(x.values.data(), y.values.data(), x.values.size() * sizeof(float)), 0)
          << body << " input " << k;
    }
  }
}

// The fast path takes `body` and agrees with the general parser.
void ExpectFast(const std::string& body) {
  const Signature sig = TestSignature();
  auto fast = internal::ParsePredictRequestFast(body, sig, kLimits);
  ASSERT_TRUE(fast.has_value()) << "the fast path declined " << body;
  auto general = internal::ParsePredictRequestGeneral(body, sig, kLimits);
  ASSERT_TRUE(general.ok()) << body << ": " << general.status();
  ExpectSame(*fast, *general, body);
}

// The fast path declines `body`, and ParsePredictRequest answers what the general parser does.
void ExpectDeclined(const std::string& body) {
  const Signature sig = TestSignature();
  EXPECT_FALSE(internal::ParsePredictRequestFast(body, sig, kLimits).has_value()) << body;
  auto general = internal::ParsePredictRequestGeneral(body, sig, kLimits);
  auto parsed = ParsePredictRequest(body, sig, kLimits);
  ASSERT_EQ(parsed.ok(), general.ok()) << body;
  if (parsed.ok()) {
    ExpectSame(*parsed, *general, body);
  } else {
    EXPECT_EQ(parsed.status(), general.status()) << body;
  }
}

std::string Body(const std::string& x, const std::string& ids = "[1, [2, 3], null]",
                 const std::string& words = "[1, 2]") {
  return absl::StrCat(R"({"instances": [{"x": )", x, R"(, "ids": )", ids, R"(, "words": )", words, "}]}");
}

TEST(RequestFastPathTest, TakesCommonRequestsWithTheGeneralParsersValues) {
  ExpectFast(Body("[0.1, 0.2, 0.3]"));
  ExpectFast(Body("[0, -0, 1]"));                                 // -0 is an integer: +0
  ExpectFast(Body("[1e-3, -2.5E+2, 3.4028234e38]"));              // FLT_MAX itself
  ExpectFast(Body("[1e-320, 9007199254740993, 18446744073709551615]"));  // subnormal, > 2^53, 2^64-1
  ExpectFast(Body("[123456789012345678901234567890, 0.30000000000000004, 1.00000005960464477539]"));
  ExpectFast(Body("[1,2,3]", "[2147483647, [], [0, 0, 0]]", "[9, 0, 0, 9]"));
  ExpectFast("\r\n\t {\"instances\":[{\"words\":[3],\"ids\":[null,null,null],\"x\":[1,2,3]},"
             "{\"x\":[4,5,6],\"ids\":[1,2,3],\"words\":[1,2,3,4]}]} \n");
}

TEST(RequestFastPathTest, DeclinesEverythingElseAndTheGeneralParserDecides) {
  const std::vector<std::string> bodies = {
      "", "{}", "[]", "{\"instances\": []}", "{\"instances\": [{}]}", "null",
      Body("[[0.1, 0.2], [0.3]]"),                      // nested: accepted by the general parser
      Body("[0.1, 0.2]"), Body("[0.1, 0.2, 0.3, 0.4]"), Body("[0.1, \"a\", 0.3]"),
      Body("[01, 2, 3]"), Body("[1., 2, 3]"), Body("[.5, 2, 3]"), Body("[+1, 2, 3]"), Body("[1e, 2, 3]"),
      Body("[NaN, 2, 3]"), Body("[1e39, 2, 3]"), Body("[1e400, 2, 3]"), Body("[-1e39, 2, 3]"),
      Body("[1, 2, 3]", "[1.0, 2, 3]"),                 // an integral float id: accepted
      Body("[1, 2, 3]", "[-1, 2, 3]"), Body("[1, 2, 3]", "[-0, 2, 3]"), Body("[1, 2, 3]", "[2147483648, 2, 3]"),
      Body("[1, 2, 3]", "[1, 2]"), Body("[1, 2, 3]", "[1, 2, 3, 4]"), Body("[1, 2, 3]", "[[1, 2, 3, 4], 2, 3]"),
      Body("[1, 2, 3]", "[1, 2, 1e2]"), Body("[1, 2, 3]", "[1, [[2]], 3]"),
      Body("[1, 2, 3]", "[1, 2, 3]", "[]"), Body("[1, 2, 3]", "[1, 2, 3]", "[10]"),
      Body("[1, 2, 3]", "[1, 2, 3]", "[1, 2, 3, 4, 5]"),
      R"({"instances": [{"x": [1, 2, 3], "ids": [1, 2, 3], "words": [1], "x": [1, 2, 3]}]})",  // duplicate
      R"({"instances": [{"x": [1, 2, 3], "ids": [1, 2, 3]}]})",                                 // missing
      R"({"instances": [{"x": [1, 2, 3], "ids": [1, 2, 3], "words": [1], "y": 1}]})",           // unknown
      R"({"instances": [{"\u0078": [1, 2, 3], "ids": [1, 2, 3], "words": [1]}]})",              // escaped key
      R"({"instances": [{"x": [1, 2, 3], "ids": [1, 2, 3], "words": [1]}], "more": 1})",
      R"({"instances": [{"x": [1, 2, 3], "ids": [1, 2, 3], "words": [1]}]} trailing)",
      R"({"instances": [{"x": [1, 2, 3], "ids": [1, 2, 3], "words": [1]}]})" + std::string(1, '\0'),
      Body("[1, 2, 3]") + ",",
  };
  for (const std::string& b : bodies) ExpectDeclined(b);
  // More examples than the limit.
  std::string many = "{\"instances\": [";
  for (int i = 0; i < 5; ++i) absl::StrAppend(&many, i ? "," : "", R"({"x": [1, 2, 3], "ids": [1, 2, 3], "words": [1]})");
  ExpectDeclined(many + "]}");
}

// Random numbers printed every way JSON allows: both parsers read the same floats.
TEST(RequestFastPathTest, RandomNumbersReadAlike) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mant(-10, 10);
  std::uniform_int_distribution<int> exp(-45, 38), fmt(0, 3);
  for (int r = 0; r < 300; ++r) {
    std::string x = "[";
    for (int i = 0; i < 3; ++i) {
      char buf[64];
      const double v = mant(rng) * std::pow(10.0, exp(rng));
      const char* f[] = {"%.17g", "%.9e", "%.3f", "%.0f"};
      std::snprintf(buf, sizeof(buf), f[fmt(rng)], v);
      absl::StrAppend(&x, i ? ", " : "", buf);
    }
    x += "]";
    const std::string body = Body(x);
    const Signature sig = TestSignature();
    auto fast = internal::ParsePredictRequestFast(body, sig, kLimits);
    auto general = internal::ParsePredictRequestGeneral(body, sig, kLimits);
    if (fast.has_value()) {
      ASSERT_TRUE(general.ok()) << body;
      ExpectSame(*fast, *general, body);
    }
  }
}

}  // namespace
}  // namespace tandem::serve
