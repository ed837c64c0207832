#include "operator/kube/work_queue.h"

#include <thread>

#include "gtest/gtest.h"

namespace tandem::kube {
namespace {

TEST(WorkQueueTest, DeduplicatesQueuedKeys) {
  WorkQueue q("dedup");
  q.Add("a");
  q.Add("b");
  q.Add("a");
  EXPECT_EQ(q.Len(), 2);
  std::string k;
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "a");
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "b");
  EXPECT_EQ(q.Len(), 0);
}

TEST(WorkQueueTest, KeyAddedWhileProcessingIsRequeuedOnceAtDone) {
  WorkQueue q("processing");
  q.Add("a");
  std::string k;
  ASSERT_TRUE(q.Get(&k));
  q.Add("a");
  q.Add("a");
  EXPECT_EQ(q.Len(), 0) << "never handed to two workers at once";
  q.Done("a");
  EXPECT_EQ(q.Len(), 1);
  ASSERT_TRUE(q.Get(&k));
  q.Done("a");
  EXPECT_EQ(q.Len(), 0);
}

TEST(WorkQueueTest, AnUrgentKeyGoesAheadOfTheBacklogEveryTime) {
  WorkQueue q("urgent");
  for (int i = 0; i < 1000; ++i) q.Add("job-" + std::to_string(i));
  q.Add("!schedule");
  q.SetUrgent("!schedule");  // already waiting at the back: moved to the front
  std::string k;
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "!schedule");
  q.Add("!schedule");  // requested again while it runs: re-queued at Done, at the front
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "job-0") << "never handed out twice at once";
  q.Done("!schedule");
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "!schedule");
  q.Done("!schedule");
  q.AddAfter("!schedule", Duration(0.01));  // a due delay also lands at the front
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "!schedule");
  q.Done("!schedule");
  ASSERT_TRUE(q.Get(&k));
  EXPECT_EQ(k, "job-1") << "the other keys keep their order";
}

TEST(WorkQueueTest, ItemBackoffDoublesAndForgetResets) {
  ItemExponentialRateLimiter l(Duration(0.005), Duration(1));
  EXPECT_DOUBLE_EQ(l.When("a").count(), 0.005);
  EXPECT_DOUBLE_EQ(l.When("a").count(), 0.01);
  EXPECT_DOUBLE_EQ(l.When("a").count(), 0.02);
  EXPECT_DOUBLE_EQ(l.When("b").count(), 0.005) << "per item";
  for (int i = 0; i < 20; ++i) l.When("a");
  EXPECT_DOUBLE_EQ(l.When("a").count(), 1.0) << "capped";
  EXPECT_EQ(l.NumRequeues("a"), 24);
  l.Forget("a");
  EXPECT_EQ(l.NumRequeues("a"), 0);
  EXPECT_DOUBLE_EQ(l.When("a").count(), 0.005);
}

TEST(WorkQueueTest, TokenBucketAllowsBurstThenSpaces) {
  TokenBucketRateLimiter l(10, 3);
  EXPECT_EQ(l.When("x").count(), 0);
  EXPECT_EQ(l.When("y").count(), 0);
  EXPECT_EQ(l.When("z").count(), 0);
  double wait = l.When("w").count();
  EXPECT_GT(wait, 0.05);
  EXPECT_LE(wait, 0.1 + 1e-6);
  EXPECT_GT(l.When("v").count(), wait) << "each reservation waits longer";
}

TEST(WorkQueueTest, AddAfterAndRateLimitedDeliverLater) {
  WorkQueue q("delayed");
  q.AddAfter("later", Duration(0.05));
  EXPECT_EQ(q.Len(), 0);
  EXPECT_EQ(q.DelayedLen(), 1);
  std::string k;
  ASSERT_TRUE(q.GetFor(&k, Duration(5)));
  EXPECT_EQ(k, "later");
  q.Done(k);
  q.AddRateLimited("retry");
  ASSERT_TRUE(q.GetFor(&k, Duration(5)));
  EXPECT_EQ(k, "retry");
  EXPECT_EQ(q.NumRequeues("retry"), 1);
  q.Forget("retry");
  EXPECT_EQ(q.NumRequeues("retry"), 0);
  q.Done(k);
}

TEST(WorkQueueTest, ShutDownWakesWorkers) {
  WorkQueue q("shutdown");
  std::thread worker([&] {
    std::string k;
    EXPECT_FALSE(q.Get(&k));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  q.ShutDown();
  worker.join();
  q.Add("dropped");
  EXPECT_EQ(q.Len(), 0);
}

}  // namespace
}  // namespace tandem::kube
