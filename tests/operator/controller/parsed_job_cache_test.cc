// ParsedJobCache: one parse per uid + resourceVersion, a new version (or another copy of one)
// parsed again, deleted jobs dropped, the size bounded (least recently used first), invalid jobs
// cached with their errors.
#include "operator/controller/parsed_job_cache.h"

#include <atomic>

#include "gtest/gtest.h"

namespace tandem::controller {
namespace {

using nlohmann::json;

// As the informer caches it: shared, immutable.
kube::Object Job(const std::string& name, const std::string& rv, int workers = 2) {
  return std::make_shared<const json>(json{{"apiVersion", "tandem.dev/v1alpha1"},
          {"kind", "TrainingJob"},
          {"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}, {"resourceVersion", rv}}},
          {"spec",
           {{"queue", "team-a"},
            {"image", "tandem/tandem:0.1.0"},
            {"workers", {{"count", workers}}},
            {"passes", 1},
            {"model", {{"inputs", {{{"name", "x"}, {"source", "features"}, {"shape", {4}}}}}}},
            {"data", {{"train", {{"format", "idx"}}}}}}}});
}

// Validators that count their calls: a parse runs them once, a cache hit never.
struct Counting {
  std::atomic<int> calls{0};
  api::SectionValidators validators() {
    api::SectionValidators v;
    v.Add("model", [this](const json&, const json&, const std::string&, api::FieldErrors*) { ++calls; });
    return v;
  }
};

TEST(ParsedJobCacheTest, ParsesEachVersionOnce) {
  Counting c;
  const api::SectionValidators v = c.validators();
  ParsedJobCache cache(100);
  kube::Object a10 = Job("a", "10");
  auto a1 = cache.Get(a10, v);
  auto a2 = cache.Get(a10, v);
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(a1.get(), a2.get()) << "the same parse is handed out again";
  EXPECT_EQ(a1->job.spec.workers.count, 2);
  EXPECT_TRUE(a1->errors.empty());
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 1);

  // An update (new resourceVersion) is parsed again and replaces the entry.
  kube::Object a11 = Job("a", "11", 5);
  auto a3 = cache.Get(a11, v);
  EXPECT_EQ(c.calls, 2);
  EXPECT_EQ(a3->job.spec.workers.count, 5);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Get(a11, v).get(), a3.get());
  EXPECT_EQ(c.calls, 2);
  // Another copy of that version (a relist) is parsed again, never assumed equal.
  EXPECT_EQ(cache.Get(Job("a", "11", 7), v)->job.spec.workers.count, 7);
  EXPECT_EQ(c.calls, 3);
  EXPECT_EQ(cache.size(), 1u);
  // The earlier parse a caller still holds stays valid.
  EXPECT_EQ(a1->job.spec.workers.count, 2);
}

TEST(ParsedJobCacheTest, DeletedJobsLeave) {
  Counting c;
  const api::SectionValidators v = c.validators();
  ParsedJobCache cache(100);
  kube::Object a = Job("a", "1"), b = Job("b", "1"), cj = Job("c", "1");
  cache.Get(a, v);
  cache.Get(b, v);
  cache.Get(cj, v);
  cache.Forget("uid-a");
  EXPECT_EQ(cache.size(), 2u);
  cache.Retain({"uid-c"});
  EXPECT_EQ(cache.size(), 1u);
  cache.Get(cj, v);
  EXPECT_EQ(c.calls, 3) << "c stayed cached";
  cache.Get(b, v);
  EXPECT_EQ(c.calls, 4) << "b was dropped, so it is parsed again";
}

TEST(ParsedJobCacheTest, BoundedLeastRecentlyUsedFirst) {
  Counting c;
  const api::SectionValidators v = c.validators();
  ParsedJobCache cache(2);
  kube::Object a = Job("a", "1"), b = Job("b", "1"), cj = Job("c", "1");
  cache.Get(a, v);
  cache.Get(b, v);
  cache.Get(a, v);   // a is now the most recent
  cache.Get(cj, v);  // evicts b
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(c.calls, 3);
  cache.Get(a, v);
  EXPECT_EQ(c.calls, 3) << "a was kept";
  cache.Get(b, v);
  EXPECT_EQ(c.calls, 4) << "b was evicted";
}

TEST(ParsedJobCacheTest, InvalidJobsAreCachedWithTheirErrors) {
  Counting c;
  const api::SectionValidators v = c.validators();
  ParsedJobCache cache(10);
  kube::Object bad = Job("bad", "3", 0);  // workers.count must be >= 1
  auto p = cache.Get(bad, v);
  ASSERT_FALSE(p->errors.empty());
  EXPECT_EQ(p->errors[0].path, "spec.workers.count");
  EXPECT_EQ(cache.Get(bad, v).get(), p.get());
}

TEST(ParsedJobCacheTest, ObjectsWithoutAVersionAreNotCached) {
  Counting c;
  const api::SectionValidators v = c.validators();
  ParsedJobCache cache(10);
  kube::Object j = Job("a", "");
  cache.Get(j, v);
  cache.Get(j, v);
  EXPECT_EQ(c.calls, 2);
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace tandem::controller
