#include "api/quantity.h"

#include "gtest/gtest.h"

namespace tandem::api {
namespace {

struct Case {
  const char* text;
  int64_t milli;
};

class QuantityParseTest : public ::testing::TestWithParam<Case> {};

TEST_P(QuantityParseTest, ParsesExactly) {
  auto q = Quantity::Parse(GetParam().text);
  ASSERT_TRUE(q.ok()) << GetParam().text << ": " << q.status();
  EXPECT_EQ(q->milli(), GetParam().milli) << GetParam().text;
  EXPECT_EQ(q->text(), GetParam().text);
}

INSTANTIATE_TEST_SUITE_P(
    Valid, QuantityParseTest,
    ::testing::Values(Case{"0", 0}, Case{"1", 1000}, Case{"500m", 500}, Case{"0.5", 500},
                      Case{".5", 500}, Case{"1.", 1000}, Case{"2.25", 2250}, Case{"+3", 3000},
                      Case{"-2", -2000}, Case{"1k", 1000000}, Case{"1Ki", 1024000},
                      Case{"2Gi", 2147483648000LL}, Case{"1Mi", 1048576000}, Case{"1M", 1000000000},
                      Case{"1e3", 1000000}, Case{"1E3", 1000000}, Case{"1e-3", 1}, Case{"1e+2", 100000},
                      Case{"100n", 1},  // rounded up to 1m as Kubernetes' MilliValue()
                      Case{"1u", 1}, Case{"1500u", 2}, Case{"0.0001", 1}, Case{"1.5Gi", 1610612736000LL},
                      Case{"128974848", 128974848000LL}, Case{"129e6", 129000000000LL},
                      Case{"123Mi", 128974848000LL}, Case{"8Pi", 9007199254740992000LL},
                      Case{"000012", 12000}, Case{"0.000", 0}));

class QuantityRejectTest : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantityRejectTest, Rejects) {
  auto q = Quantity::Parse(GetParam());
  EXPECT_FALSE(q.ok()) << GetParam() << " parsed as " << q->milli();
}

INSTANTIATE_TEST_SUITE_P(Invalid, QuantityRejectTest,
                         ::testing::Values("", "m", "Gi", "1Gb", "1 Gi", " 1", "1.2.3", "1e", "1e+",
                                           "1ee3", "--1", "1KiB", "0x10", "1i", "abc", "1.5.", "9Ei",
                                           "1e99", "99999999999999999999999999999999999999999",
                                           "1e99999"));

TEST(QuantityTest, ValueRoundsUpAndComparesByValue) {
  EXPECT_EQ(Quantity::Parse("1500m")->value(), 2);
  EXPECT_EQ(*Quantity::Parse("1"), *Quantity::Parse("1000m"));
  EXPECT_LT(*Quantity::Parse("999m"), *Quantity::Parse("1"));
  EXPECT_EQ(Quantity::FromMilli(1500).text(), "1500m");
  EXPECT_EQ(Quantity::FromMilli(2000).text(), "2");
  EXPECT_TRUE(Quantity::Parse("4")->is_whole());
  EXPECT_FALSE(Quantity::Parse("0.5")->is_whole());
}

TEST(QuantityTest, ErrorsNameTheProblem) {
  auto q = Quantity::Parse("2GB");
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("unknown suffix 'GB'"), std::string::npos) << q.status();
}

}  // namespace
}  // namespace tandem::api
