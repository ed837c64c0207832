#include "trainer/collective/peer_list.h"

#include "gtest/gtest.h"
#include "trainer/collective/exit_codes.h"

namespace tandem::collective {
namespace {

TEST(PeerListTest, ParsesHostsPortsAndIpv6) {
  auto eps = ParsePeerEndpoints("a.svc:7070, 10.0.0.2:7071,[::1]:9");
  ASSERT_TRUE(eps.ok()) << eps.status();
  ASSERT_EQ(eps->size(), 3u);
  EXPECT_EQ((*eps)[0].host, "a.svc");
  EXPECT_EQ((*eps)[1].port, 7071);
  EXPECT_EQ((*eps)[2].host, "::1");
  EXPECT_EQ((*eps)[2].ToString(), "[::1]:9");
}

TEST(PeerListTest, RejectsBadEntriesNamingThem) {
  struct Bad {
    const char* text;
    const char* why;
  } cases[] = {{"", "empty"},           {"a:1,,b:2", "entry 1"}, {"host", "missing ':port'"},
               {"h:0", "1..65535"},     {"h:99999", "1..65535"}, {"h:x", "integer"},
               {":80", "empty host"},   {"::1:80", "bracketed"}, {"[::1:80", "[ipv6]:port"}};
  for (const Bad& c : cases) {
    auto eps = ParsePeerEndpoints(c.text);
    ASSERT_FALSE(eps.ok()) << c.text;
    EXPECT_NE(eps.status().message().find(c.why), std::string::npos) << eps.status();
  }
}

TEST(PeerListTest, ValidatesRankAndWorldSize) {
  auto eps = *ParsePeerEndpoints("a:1,b:2");
  EXPECT_TRUE(MakePeerList(eps, 1, 2).ok());
  EXPECT_FALSE(MakePeerList(eps, 2, 2).ok());
  EXPECT_FALSE(MakePeerList(eps, -1, 2).ok());
  EXPECT_FALSE(MakePeerList(eps, 0, 3).ok());
  EXPECT_EQ(MakePeerList(eps, 0, 2)->Describe(1), "rank 1 (b:2)");
}

TEST(ExitCodesTest, PeerFailuresAreRetryable) {
  EXPECT_EQ(kPeerFailureExitCode, 75);
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("rank 2 died")), 75);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("rank 2 stalled")), 75);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("ranks disagree")), 1);
}

}  // namespace
}  // namespace tandem::collective
