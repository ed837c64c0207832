// The informer against the stand-in: initial list, watch events, bookmarks, relist on 410 Gone
// (with the missed changes delivered as a diff), and reconnection after the stream breaks.
#include "operator/kube/informer.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/operator/kube/kube_test_env.h"
#include "tests/common/test_util.h"

namespace tandem::kube {
namespace {

using nlohmann::json;

json Pod(const std::string& name) {
  return {{"metadata", {{"name", name}}}, {"spec", {{"containers", json::array()}}}};
}

// Polls `cond` for up to 10 s (events arrive asynchronously; no timing is asserted).
using ::tandem::testing::Eventually;

struct Recorder {
  std::mutex mu;
  std::vector<std::string> events;
  InformerHandler Handler() {
    return {.on_add = [this](const Object& o) { Add("add " + NameOf(*o)); },
            .on_update = [this](const Object&, const Object& o) { Add("update " + NameOf(*o)); },
            .on_delete = [this](const Object& o) { Add("delete " + NameOf(*o)); }};
  }
  void Add(const std::string& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
  }
  bool Has(const std::string& e) {
    std::lock_guard<std::mutex> lock(mu);
    return std::find(events.begin(), events.end(), e) != events.end();
  }
};

TEST(InformerTest, ListsThenWatches) {
  KubeTestEnv env({.bookmark_interval_s = 0.05});
  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("before")).ok());
  Informer inf(env.client.get(), kPods, {.ns = "default"});
  Recorder rec;
  inf.AddHandler(rec.Handler());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(std::chrono::seconds(10)));
  EXPECT_TRUE(rec.Has("add before"));
  ASSERT_NE(inf.Get("default/before"), nullptr);
  EXPECT_EQ((*inf.Get("default/before"))["kind"], "Pod");

  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("after")).ok());
  ASSERT_TRUE(env.client->Patch(kPods, "default", "after", PatchType::kMerge,
                                {{"metadata", {{"labels", {{"x", "y"}}}}}}).ok());
  ASSERT_TRUE(env.client->Delete(kPods, "default", "before").ok());
  EXPECT_TRUE(Eventually([&] { return rec.Has("delete before") && rec.Has("update after"); }));
  EXPECT_EQ(inf.Get("default/before"), nullptr);
  ASSERT_NE(inf.Get("default/after"), nullptr);
  EXPECT_EQ((*inf.Get("default/after"))["metadata"]["labels"]["x"], "y");
  EXPECT_TRUE(Eventually([&] { return inf.bookmarks() > 0; }));
  EXPECT_EQ(inf.lists(), 1);
  inf.Stop();
}

TEST(InformerTest, RelistsOn410AndDeliversWhatItMissed) {
  KubeTestEnv env;
  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("stays")).ok());
  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("goes")).ok());
  Informer inf(env.client.get(), kPods, {.ns = "default", .backoff_initial_s = 0.01, .backoff_max_s = 0.05});
  Recorder rec;
  inf.AddHandler(rec.Handler());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(std::chrono::seconds(10)));
  ASSERT_TRUE(Eventually([&] { return env.server.OpenWatches() == 1; }));

  // While the informer's watch is down, objects change and history is compacted: the informer
  // re-watches from a version that is gone, gets 410, re-lists and diffs.
  env.server.FailNext("GET", "/api/v1/namespaces/default/pods", 503, 3);
  env.server.CloseWatches();
  ASSERT_TRUE(env.client->Delete(kPods, "default", "goes").ok());
  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("new")).ok());
  env.server.Compact();
  EXPECT_TRUE(Eventually([&] { return rec.Has("delete goes") && rec.Has("add new"); }));
  EXPECT_GE(inf.lists(), 2) << "a 410 makes it list again";
  EXPECT_EQ(inf.Size(), 2u);
  EXPECT_NE(inf.Get("default/stays"), nullptr);
  EXPECT_NE(inf.Get("default/new"), nullptr);
  inf.Stop();
}

TEST(InformerTest, ReconnectsWhenTheWatchEnds) {
  KubeTestEnv env;
  Informer inf(env.client.get(), kPods, {.ns = "default", .backoff_initial_s = 0.01, .backoff_max_s = 0.05});
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(std::chrono::seconds(10)));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Eventually([&] { return env.server.OpenWatches() == 1; }));
    env.server.CloseWatches();
    ASSERT_TRUE(env.client->Create(kPods, "default", Pod(absl::StrCat("p", i))).ok());
    EXPECT_TRUE(Eventually([&] { return inf.Get("default/p" + std::to_string(i)) != nullptr; }));
  }
  EXPECT_EQ(inf.lists(), 1) << "a normal end of stream re-watches from the last version, no relist";
  EXPECT_GE(inf.watches(), 4);
  inf.Stop();
}

TEST(InformerTest, StopsPromptlyWhileWatching) {
  KubeTestEnv env;
  Informer inf(env.client.get(), kPods, {.ns = "default"});
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(std::chrono::seconds(10)));
  ASSERT_TRUE(Eventually([&] { return env.server.OpenWatches() == 1; }));
  inf.Stop();  // must return (the test would hang otherwise)
  EXPECT_TRUE(Eventually([&] { return env.server.OpenWatches() == 0; }));
}

}  // namespace
}  // namespace tandem::kube
