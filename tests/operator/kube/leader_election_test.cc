// Leader election on a Lease in the stand-in: one leader among candidates, renewal, hand-over on
// release and take-over after expiry.
#include "operator/kube/leader_election.h"

#include <thread>

#include "gtest/gtest.h"
#include "tests/operator/kube/kube_test_env.h"
#include "tests/common/test_util.h"

namespace tandem::kube {
namespace {

LeaderElectionConfig Config(const std::string& id) {
  return {.ns = "default", .name = "tandem-operator", .identity = id, .lease_duration_s = 1,
          .renew_deadline_s = 0.6, .retry_period_s = 0.1};
}

using ::tandem::testing::Eventually;

TEST(LeaderElectionTest, OnlyOneCandidateHoldsTheLease) {
  KubeTestEnv env;
  LeaderElector a(env.client.get(), Config("a"));
  LeaderElector b(env.client.get(), Config("b"));
  EXPECT_TRUE(a.TryAcquireOrRenew());
  EXPECT_FALSE(b.TryAcquireOrRenew()) << "the lease is held and fresh";
  EXPECT_TRUE(a.TryAcquireOrRenew()) << "the holder renews";
  auto lease = env.client->Get(kLeases, "default", "tandem-operator");
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "a");
  EXPECT_EQ(b.ObservedLeader(), "a");
}

TEST(LeaderElectionTest, ReleaseHandsOverAndExpiryLetsOthersTakeOver) {
  KubeTestEnv env;
  std::atomic<bool> a_leads{false}, a_stopped{false}, b_leads{false};
  auto ca = Config("a");
  ca.on_started_leading = [&] { a_leads = true; };
  ca.on_stopped_leading = [&] { a_stopped = true; };
  LeaderElector a(env.client.get(), ca);
  std::thread ta([&] { EXPECT_TRUE(a.Run().ok()); });
  ASSERT_TRUE(Eventually([&] { return a_leads.load(); }));

  auto cb = Config("b");
  cb.on_started_leading = [&] { b_leads = true; };
  LeaderElector b(env.client.get(), cb);
  std::thread tb([&] { b.Run().IgnoreError(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(b_leads.load()) << "a renews, so b waits";

  a.Stop();  // releases the lease
  ta.join();
  EXPECT_TRUE(a_stopped.load());
  EXPECT_TRUE(Eventually([&] { return b_leads.load(); }));
  auto lease = env.client->Get(kLeases, "default", "tandem-operator");
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "b");
  EXPECT_GE((*lease)["spec"].value("leaseTransitions", 0), 0);
  b.Stop();
  tb.join();
}

TEST(LeaderElectionTest, LeaderThatCannotRenewStopsLeading) {
  KubeTestEnv env;
  std::atomic<bool> stopped{false};
  auto c = Config("a");
  c.on_stopped_leading = [&] { stopped = true; };
  LeaderElector a(env.client.get(), c);
  absl::Status result;
  std::thread t([&] { result = a.Run(); });
  ASSERT_TRUE(Eventually([&] { return a.IsLeader(); }));
  // Another holder grabs the lease behind a's back (as after a network partition).
  auto lease = env.client->Get(kLeases, "default", "tandem-operator");
  ASSERT_TRUE(lease.ok());
  (*lease)["spec"]["holderIdentity"] = "intruder";
  (*lease)["spec"]["renewTime"] = NowMicroTime();
  (*lease)["spec"]["leaseDurationSeconds"] = 3600;
  ASSERT_TRUE(env.client->Update(kLeases, *lease).ok());
  t.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_FALSE(a.IsLeader());
  EXPECT_EQ(result.code(), absl::StatusCode::kAborted);
}

}  // namespace
}  // namespace tandem::kube
