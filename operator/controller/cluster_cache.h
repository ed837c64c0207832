// What reconcilers read: a read-only view of the cluster, keyed like informers ("ns/name").
// InformerCache serves it from informers; FakeCache from a map (tests seed it, then run one
// reconcile and compare the API calls made).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "operator/kube/informer.h"

namespace tandem::controller {

class ClusterCache {
 public:
  virtual ~ClusterCache() = default;
  // nullptr when absent.
  virtual kube::Object Get(const kube::Resource& r, const std::string& key) const = 0;
  virtual std::vector<kube::Object> List(const kube::Resource& r) const = 0;
};

class InformerCache : public ClusterCache {
 public:
  // REQUIRES: `informer` outlives this cache. One informer per resource plural.
  void Add(kube::Informer* informer) { informers_[informer->resource().plural] = informer; }
  kube::Object Get(const kube::Resource& r, const std::string& key) const override;
  std::vector<kube::Object> List(const kube::Resource& r) const override;

 private:
  std::map<std::string, kube::Informer*> informers_;
};

// Creates an informer over `r` with `base`'s timeouts and backoff, all namespaces and
// `label_selector`, the cache transform of `r` (cache_transform.h), keeps it in `informers` and
// serves it from `cache`. Controllers build their
// informers with it.
kube::Informer* AddInformer(kube::KubeApi* api, const kube::Resource& r, const kube::InformerOptions& base,
                            const std::string& label_selector,
                            std::vector<std::unique_ptr<kube::Informer>>* informers, InformerCache* cache);

class FakeCache : public ClusterCache {
 public:
  // Stores a copy of `object` (kind and apiVersion filled from `r`).
  void Put(const kube::Resource& r, nlohmann::json object);
  void Remove(const kube::Resource& r, const std::string& key);
  kube::Object Get(const kube::Resource& r, const std::string& key) const override;
  std::vector<kube::Object> List(const kube::Resource& r) const override;

 private:
  mutable absl::Mutex mu_;
  // plural -> key -> object
  std::map<std::string, std::map<std::string, kube::Object>> objects_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::controller
