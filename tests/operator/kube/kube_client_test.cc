// The Kubernetes client against the API server stand-in over real HTTP: CRUD, typed errors,
// optimistic concurrency, the status subresource, patches, selectors and watches.
#include "operator/kube/kube_client.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "operator/kube/api_error.h"
#include "common/status.h"
#include "operator/kube/conflict_retry.h"
#include "tests/operator/kube/kube_test_env.h"

namespace tandem::kube {
namespace {

using nlohmann::json;

json Pod(const std::string& name, json labels = json::object()) {
  return {{"metadata", {{"name", name}, {"labels", labels}}},
          {"spec", {{"containers", {{{"name", "trainer"}, {"image", "tandem:1"}}}}}}};
}

TEST(KubeClientTest, CreateGetUpdateDelete) {
  KubeTestEnv env;
  auto created = env.client->Create(kPods, "default", Pod("w-0"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(UidOf(*created).empty());
  EXPECT_EQ((*created)["metadata"]["generation"], 1);
  EXPECT_EQ((*created)["status"]["phase"], "Pending");

  auto got = env.client->Get(kPods, "default", "w-0");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(UidOf(*got), UidOf(*created));

  json changed = *got;
  changed["spec"]["containers"][0]["image"] = "tandem:2";
  auto updated = env.client->Update(kPods, changed);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ((*updated)["metadata"]["generation"], 2);
  EXPECT_GT(std::stoll(ResourceVersionOf(*updated)), std::stoll(ResourceVersionOf(*got)));

  ASSERT_TRUE(env.client->Delete(kPods, "default", "w-0").ok());
  auto gone = env.client->Get(kPods, "default", "w-0");
  EXPECT_TRUE(kube::IsNotFound(gone.status()));
  EXPECT_EQ(HttpCodeOf(gone.status()), 404);
  EXPECT_EQ(ReasonOf(gone.status()), "NotFound");
}

TEST(KubeClientTest, TypedErrorsCarryCodeAndReason) {
  KubeTestEnv env;
  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("a")).ok());
  auto dup = env.client->Create(kPods, "default", Pod("a"));
  EXPECT_TRUE(kube::IsAlreadyExists(dup.status())) << dup.status();
  EXPECT_EQ(HttpCodeOf(dup.status()), 409);
  EXPECT_EQ(ReasonOf(dup.status()), "AlreadyExists");

  auto bad = env.client->Create(kPods, "default", Pod("Not_A_Name"));
  EXPECT_EQ(HttpCodeOf(bad.status()), 422);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);

  auto no_ns = env.client->Create(kPods, "nope", Pod("a"));
  EXPECT_TRUE(kube::IsNotFound(no_ns.status()));
  EXPECT_NE(no_ns.status().message().find("namespaces \"nope\" not found"), std::string::npos);

  // A stale resourceVersion is a Conflict, and the typed error survives added context.
  auto cur = env.client->Get(kPods, "default", "a");
  ASSERT_TRUE(cur.ok());
  json first = *cur, second = *cur;
  first["metadata"]["labels"]["x"] = "1";
  second["metadata"]["labels"]["x"] = "2";
  ASSERT_TRUE(env.client->Update(kPods, first).ok());
  auto stale = env.client->Update(kPods, second);
  EXPECT_TRUE(IsConflict(stale.status())) << stale.status();
  EXPECT_TRUE(IsConflict(tandem::Annotate(stale.status(), "reconcile default/a")));
  EXPECT_EQ(HttpCodeOf(tandem::Annotate(stale.status(), "ctx")), 409);

  // Nothing listening: a transport error, retryable, code 0.
  KubeConfig dead;
  dead.server = "http://127.0.0.1:1";
  KubeClient nobody(dead, {.request_timeout_s = 2});
  auto unreachable = nobody.Get(kPods, "default", "a");
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsRetryable(unreachable.status()));
}

TEST(KubeClientTest, UpdateWithRetryWinsAgainstConcurrentWriters) {
  KubeTestEnv env;
  ASSERT_TRUE(env.client->Create(kConfigMaps, "default", {{"metadata", {{"name", "counter"}}},
                                                          {"data", {{"n", "0"}}}}).ok());
  constexpr int kThreads = 4, kIncrements = 10;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        auto r = UpdateWithRetry(env.client.get(), kConfigMaps, "default", "counter",
                                 [](json& cm) {
                                   int n = std::stoi(cm["data"]["n"].get<std::string>());
                                   cm["data"]["n"] = std::to_string(n + 1);
                                   return absl::OkStatus();
                                 },
                                 false, {.attempts = 50, .initial_delay_s = 0.001, .factor = 1.5});
        if (!r.ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto cm = env.client->Get(kConfigMaps, "default", "counter");
  ASSERT_TRUE(cm.ok());
  EXPECT_EQ((*cm)["data"]["n"], std::to_string(kThreads * kIncrements));
}

TEST(KubeClientTest, StatusSubresourceSeparatesSpecAndStatus) {
  KubeTestEnv env;
  env.RegisterCrds();
  json job = {{"metadata", {{"name", "a"}}}, {"spec", {{"workers", {{"count", 2}}}}},
              {"status", {{"phase", "Hacked"}}}};
  auto created = env.client->Create(kTrainingJobs, "default", job);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(created->contains("status")) << "status is dropped on create";

  // Writing status through the main resource is ignored ...
  json main = *created;
  main["status"] = {{"phase", "Running"}};
  auto after_main = env.client->Update(kTrainingJobs, main);
  ASSERT_TRUE(after_main.ok());
  EXPECT_FALSE(after_main->contains("status"));
  EXPECT_EQ(ResourceVersionOf(*after_main), ResourceVersionOf(*created)) << "a no-op write";

  // ... and /status ignores everything but status, and does not bump generation.
  json st = *after_main;
  st["status"] = {{"phase", "Queued"}};
  st["spec"]["workers"]["count"] = 99;
  auto after_status = env.client->UpdateStatus(kTrainingJobs, st);
  ASSERT_TRUE(after_status.ok()) << after_status.status();
  EXPECT_EQ((*after_status)["status"]["phase"], "Queued");
  EXPECT_EQ((*after_status)["spec"]["workers"]["count"], 2);
  EXPECT_EQ((*after_status)["metadata"]["generation"], 1);

  // A spec change bumps generation and keeps status.
  json spec = *after_status;
  spec["spec"]["workers"]["count"] = 3;
  auto after_spec = env.client->Update(kTrainingJobs, spec);
  ASSERT_TRUE(after_spec.ok());
  EXPECT_EQ((*after_spec)["metadata"]["generation"], 2);
  EXPECT_EQ((*after_spec)["status"]["phase"], "Queued");

  // Merge patch on /status.
  auto patched = env.client->Patch(kTrainingJobs, "default", "a", PatchType::kMerge,
                                   {{"status", {{"phase", "Running"}}}}, "status");
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["status"]["phase"], "Running");
}

TEST(KubeClientTest, PatchesAndSelectors) {
  KubeTestEnv env;
  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("a", {{"job", "x"}, {"rank", "0"}})).ok());
  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("b", {{"job", "x"}, {"rank", "1"}})).ok());
  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("c", {{"job", "y"}})).ok());

  auto xs = env.client->List(kPods, "default", {.label_selector = "job=x"});
  ASSERT_TRUE(xs.ok());
  EXPECT_EQ((*xs)["items"].size(), 2u);
  auto notx = env.client->List(kPods, "", {.label_selector = "job notin (x),!rank"});
  ASSERT_TRUE(notx.ok());
  ASSERT_EQ((*notx)["items"].size(), 1u);
  EXPECT_EQ(NameOf((*notx)["items"][0]), "c");
  auto by_name = env.client->List(kPods, "default", {.field_selector = "metadata.name=b"});
  ASSERT_TRUE(by_name.ok());
  ASSERT_EQ((*by_name)["items"].size(), 1u);
  auto bad = env.client->List(kPods, "default", {.label_selector = "job in x"});
  EXPECT_EQ(HttpCodeOf(bad.status()), 400);

  auto merged = env.client->Patch(kPods, "default", "a", PatchType::kMerge,
                                  {{"metadata", {{"labels", {{"rank", nullptr}, {"extra", "1"}}}}}});
  ASSERT_TRUE(merged.ok());
  EXPECT_FALSE((*merged)["metadata"]["labels"].contains("rank"));
  EXPECT_EQ((*merged)["metadata"]["labels"]["extra"], "1");

  auto jp = env.client->Patch(kPods, "default", "a", PatchType::kJson,
                              json::array({{{"op", "replace"}, {"path", "/metadata/labels/job"}, {"value", "z"}}}));
  ASSERT_TRUE(jp.ok()) << jp.status();
  EXPECT_EQ((*jp)["metadata"]["labels"]["job"], "z");

  // Strategic merge: containers merge by name instead of being replaced.
  auto sm = env.client->Patch(kPods, "default", "a", PatchType::kStrategicMerge,
                              {{"spec", {{"containers", {{{"name", "pserver"}, {"image", "ps:1"}}}}}}});
  ASSERT_TRUE(sm.ok()) << sm.status();
  EXPECT_EQ((*sm)["spec"]["containers"].size(), 2u);

  auto missing = env.client->Patch(kPods, "default", "nope", PatchType::kMerge, json::object());
  EXPECT_TRUE(kube::IsNotFound(missing.status()));
}

TEST(KubeClientTest, FinalizersDelayDeletionAndOwnersCollectDependents) {
  KubeTestEnv env;
  env.RegisterCrds();
  auto job = env.client->Create(kTrainingJobs, "default",
                                {{"metadata", {{"name", "owner"}, {"finalizers", {"tandem.dev/cleanup"}}}},
                                 {"spec", json::object()}});
  ASSERT_TRUE(job.ok());
  json child = Pod("child");
  child["metadata"]["ownerReferences"] = {ControllerRef(*job)};
  ASSERT_TRUE(env.client->Create(kPods, "default", child).ok());
  json svc = {{"metadata", {{"name", "child-svc"}, {"ownerReferences", {ControllerRef(*job)}}}},
              {"spec", {{"clusterIP", "None"}}}};
  ASSERT_TRUE(env.client->Create(kServices, "default", svc).ok());

  ASSERT_TRUE(env.client->Delete(kTrainingJobs, "default", "owner").ok());
  auto terminating = env.client->Get(kTrainingJobs, "default", "owner");
  ASSERT_TRUE(terminating.ok()) << "a finalizer keeps it";
  EXPECT_TRUE((*terminating)["metadata"].contains("deletionTimestamp"));
  EXPECT_TRUE(env.client->Get(kPods, "default", "child").ok());

  auto released = env.client->Patch(kTrainingJobs, "default", "owner", PatchType::kMerge,
                                     {{"metadata", {{"finalizers", nullptr}}}});
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_TRUE(kube::IsNotFound(env.client->Get(kTrainingJobs, "default", "owner").status()));
  EXPECT_TRUE(kube::IsNotFound(env.client->Get(kPods, "default", "child").status()));
  EXPECT_TRUE(kube::IsNotFound(env.client->Get(kServices, "default", "child-svc").status()));
}

TEST(KubeClientTest, WatchStreamsChangesAndBookmarks) {
  KubeTestEnv env({.bookmark_interval_s = 0.1});
  auto list = env.client->List(kPods, "default");
  ASSERT_TRUE(list.ok());
  std::string rv = (*list)["metadata"]["resourceVersion"];
  auto stream = env.client->Watch(kPods, "default", {.resource_version = rv});
  ASSERT_TRUE(stream.ok()) << stream.status();

  ASSERT_TRUE(env.client->Create(kPods, "default", Pod("w")).ok());
  ASSERT_TRUE(env.client->Patch(kPods, "default", "w", PatchType::kMerge,
                                {{"metadata", {{"labels", {{"a", "b"}}}}}}).ok());
  ASSERT_TRUE(env.client->Delete(kPods, "default", "w").ok());
  std::vector<std::string> types;
  int bookmarks = 0;
  while (types.size() < 3 || bookmarks == 0) {
    auto ev = (*stream)->Next();
    ASSERT_TRUE(ev.ok()) << ev.status();
    ASSERT_TRUE(ev->has_value());
    if ((*ev)->type == "BOOKMARK") {
      ++bookmarks;
      EXPECT_FALSE(ResourceVersionOf((*ev)->object).empty());
    } else {
      types.push_back((*ev)->type);
      EXPECT_EQ(NameOf((*ev)->object), "w");
    }
  }
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "MODIFIED", "DELETED"}));
  (*stream)->Cancel();
}

// A watch that carries no bytes for watch_idle_timeout_s is dead (the apiserver sends a bookmark
// about every minute): Next() fails, and the informer watches again. One that keeps getting
// bookmarks outlives the idle timeout many times over.
TEST(KubeClientTest, SilentWatchBreaksAfterTheIdleTimeoutAndABusyOneDoesNot) {
  for (bool silent : {true, false}) {
    KubeTestEnv env({.bookmark_interval_s = silent ? 3600.0 : 0.2});
    KubeConfig cfg;
    cfg.server = env.server.url();
    KubeClient client(cfg, {.watch_idle_timeout_s = 1});
    auto stream = client.Watch(kPods, "default", {.resource_version = "", .allow_watch_bookmarks = true, .timeout_seconds = 60});
    ASSERT_TRUE(stream.ok()) << stream.status();
    const auto start = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    absl::Status broke;
    int bookmarks = 0;
    while (broke.ok() && seconds() < 4) {
      auto ev = (*stream)->Next();
      if (!ev.ok()) broke = ev.status();
      else if (ev->has_value() && (*ev)->type == "BOOKMARK") ++bookmarks;
      else if (!ev->has_value()) break;
    }
    if (silent) {
      EXPECT_FALSE(broke.ok()) << "a watch without a byte for 4 s is still open";
      EXPECT_LT(seconds(), 4);
    } else {
      EXPECT_TRUE(broke.ok()) << broke << " after " << seconds() << " s and " << bookmarks << " bookmarks";
      EXPECT_GE(bookmarks, 10);
    }
    (*stream)->Cancel();
  }
}

TEST(KubeClientTest, WatchFromCompactedVersionIsGone) {
  for (bool as_http : {false, true}) {
    KubeTestEnv env({.compaction_window = 2, .gone_as_http_error = as_http});
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(env.client->Create(kPods, "default", Pod(absl::StrCat("p", i))).ok());
    auto stream = env.client->Watch(kPods, "default", {.resource_version = "2"});
    absl::Status s = stream.status();
    if (stream.ok()) {
      auto ev = (*stream)->Next();
      s = ev.status();
    }
    EXPECT_TRUE(IsGone(s)) << "as_http=" << as_http << ": " << s;
    EXPECT_EQ(HttpCodeOf(s), 410);
  }
}

TEST(KubeClientTest, BearerTokenIsSent) {
  KubeTestEnv env({.token = "s3cret"});
  EXPECT_TRUE(env.client->List(kPods, "default").ok());
  KubeConfig wrong;
  wrong.server = env.server.url();
  wrong.token = "nope";
  KubeClient other(wrong);
  auto denied = other.List(kPods, "default");
  EXPECT_EQ(HttpCodeOf(denied.status()), 401);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace tandem::kube
