// Informer: keeps a read-only, eventually consistent cache of one resource type and tells handlers
// what changed. It lists, then watches from the list's resourceVersion with bookmarks; a watch that
// ends normally is re-opened from the last resourceVersion seen (bookmarks advance it), a 410 Gone
// (HTTP 410 or a watch ERROR event with code 410) makes it re-list and diff the cache against the
// fresh list, and other failures re-try after an exponential backoff (with jitter).
//
//   kube::Informer pods(&client, kube::kPods, {.label_selector = "tandem.dev/job"});
//   pods.AddHandler({.on_add = [&](const Object& o) { queue.Add(JobKeyOf(*o)); }, ...});
//   pods.Start();
//   pods.WaitForSync(std::chrono::seconds(30));
//   std::shared_ptr<const nlohmann::json> p = pods.Get("default/w-0");
//
// Objects are shared_ptr<const json>: callers can keep them, never modify them. Handlers run on
// the informer's thread, in event order; they must be quick (enqueue a key) and must not call
// Stop(). Thread-safe otherwise.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "operator/kube/kube_api.h"

namespace tandem::kube {

using Object = std::shared_ptr<const nlohmann::json>;

struct InformerHandler {
  std::function<void(const Object&)> on_add{};
  std::function<void(const Object& old_obj, const Object& new_obj)> on_update{};
  std::function<void(const Object&)> on_delete{};
};

struct InformerOptions {
  std::string ns{};  // "" = all namespaces
  std::string label_selector{};
  std::string field_selector{};
  // Server-side watch timeout; the watch is then re-opened (client-go: 5-10 min).
  int watch_timeout_s = 300;
  // Backoff after failures: initial, doubled each time, capped (client-go: 800ms .. 30s).
  double backoff_initial_s = 0.8;
  double backoff_max_s = 30;
  // Applied to every object before it is cached (list items and watch events), to keep only
  // what readers use and so bound the cache's memory (client-go's SetTransform). It must keep
  // metadata.name, namespace, uid and resourceVersion. Unset: objects are cached as received.
  std::function<void(nlohmann::json&)> transform{};
};

// A transform for any informer: drops metadata.managedFields and kubectl's
// last-applied-configuration annotation, which a real API server keeps on every object (often
// larger than the spec) and no controller reads. Safe for objects written back with PUT: the
// server keeps the stored managedFields when a request carries none, and a /status write
// changes only status.
void DropServerBookkeeping(nlohmann::json& object);

class Informer {
 public:
  Informer(KubeApi* api, Resource resource, InformerOptions options = {});
  ~Informer();  // Stop()s

  // REQUIRES: before Start().
  void AddHandler(InformerHandler handler);
  void Start();
  void Stop();

  // True once the first list has been loaded into the cache.
  bool HasSynced() const { return synced_.load(); }
  bool WaitForSync(std::chrono::duration<double> timeout);

  // Cache reads. Key: "ns/name" (or "name" when cluster-scoped).
  Object Get(const std::string& key) const;
  std::vector<Object> List() const;
  std::vector<Object> ListNamespace(const std::string& ns) const;
  size_t Size() const;

  const Resource& resource() const { return resource_; }
  // The resourceVersion the cache is at (list, watch event or bookmark).
  std::string LastResourceVersion() const;
  // How many lists and watches were made (tests check relist-on-410 behaviour with these).
  int lists() const { return lists_.load(); }
  int watches() const { return watches_.load(); }
  int bookmarks() const { return bookmarks_.load(); }

 private:
  void Run();
  bool ListAndReplace();
  // Watches until the stream ends; returns false when a relist is needed.
  bool WatchOnce(bool* failed);
  void Apply(WatchEvent ev);
  void Sleep(double seconds);

  KubeApi* api_;
  const Resource resource_;
  const InformerOptions options_;
  std::vector<InformerHandler> handlers_;

  mutable absl::Mutex mu_;
  std::map<std::string, Object> store_ ABSL_GUARDED_BY(mu_);
  std::string resource_version_ ABSL_GUARDED_BY(mu_);
  WatchStream* current_watch_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::CondVar cv_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> synced_{false};
  std::atomic<int> lists_{0}, watches_{0}, bookmarks_{0};
  std::thread thread_;
};

}  // namespace tandem::kube
