// The membership file (api/membership.h): the optional pserver layout is additive (a file
// without it reads as before) and checked field by field.
#include "api/membership.h"

#include "gtest/gtest.h"

namespace tandem::api {
namespace {

TEST(MembershipTest, PServerLayoutRoundTripsAndIsOptional) {
  Membership m{.epoch = 3, .peers = {{"127.0.0.1", 4001}, {"127.0.0.1", 4003}}, .reason = "r"};
  auto plain = ParseMembership(RenderMembership(m), "f");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, m);
  EXPECT_EQ(RenderMembership(m).find("pservers"), std::string::npos);
  m.pserver_epoch = 2;
  m.pservers = {{.slot = 0, .endpoint = {"127.0.0.1", 5001}}, {.slot = 2, .endpoint = {"127.0.0.1", 5003}}};
  auto with = ParseMembership(RenderMembership(m), "f");
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_EQ(*with, m);
}

TEST(MembershipTest, BadPServerLayoutsNameTheField) {
  const std::string head = R"({"epoch": 2, "peers": ["127.0.0.1:1"], )";
  struct Case {
    std::string tail, field;
  } cases[] = {
      {R"("pservers": [{"slot": 0, "endpoint": "127.0.0.1:2"}]})", "pserverEpoch"},
      {R"("pserverEpoch": 3, "pservers": [{"slot": 0, "endpoint": "127.0.0.1:2"}]})", "pserverEpoch"},
      {R"("pserverEpoch": 1, "pservers": []})", "pservers"},
      {R"("pserverEpoch": 1, "pservers": [{"endpoint": "127.0.0.1:2"}]})", "pservers[0].slot"},
      {R"("pserverEpoch": 1, "pservers": [{"slot": 0, "endpoint": "nope"}]})", "pservers[0].endpoint"},
      {R"("pserverEpoch": 1, "pservers": [{"slot": 1, "endpoint": "127.0.0.1:2"},
          {"slot": 1, "endpoint": "127.0.0.1:3"}]})", "pservers[1].slot"},
      {R"("pserverEpoch": 1})", "pserverEpoch"},
  };
  for (const Case& c : cases) {
    auto m = ParseMembership(head + c.tail, "membership.json");
    ASSERT_FALSE(m.ok()) << c.tail;
    EXPECT_NE(m.status().message().find(c.field + ":"), std::string::npos) << m.status();
    EXPECT_NE(m.status().message().find("membership.json"), std::string::npos) << m.status();
  }
}

}  // namespace
}  // namespace tandem::api
