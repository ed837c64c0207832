#include "operator/controller/cluster_cache.h"

#include "operator/controller/cache_transform.h"

#include "absl/synchronization/mutex.h"

namespace tandem::controller {

kube::Object InformerCache::Get(const kube::Resource& r, const std::string& key) const {
  auto it = informers_.find(r.plural);
  return it == informers_.end() ? nullptr : it->second->Get(key);
}

std::vector<kube::Object> InformerCache::List(const kube::Resource& r) const {
  auto it = informers_.find(r.plural);
  return it == informers_.end() ? std::vector<kube::Object>{} : it->second->List();
}

void FakeCache::Put(const kube::Resource& r, nlohmann::json object) {
  object["kind"] = r.kind;
  object["apiVersion"] = r.ApiVersion();
  std::string key = kube::ObjectKey::Of(object).String();
  absl::MutexLock lock(&mu_);
  objects_[r.plural][key] = std::make_shared<const nlohmann::json>(std::move(object));
}

void FakeCache::Remove(const kube::Resource& r, const std::string& key) {
  absl::MutexLock lock(&mu_);
  objects_[r.plural].erase(key);
}

kube::Object FakeCache::Get(const kube::Resource& r, const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(r.plural);
  if (it == objects_.end()) return nullptr;
  auto o = it->second.find(key);
  return o == it->second.end() ? nullptr : o->second;
}

std::vector<kube::Object> FakeCache::List(const kube::Resource& r) const {
  absl::MutexLock lock(&mu_);
  std::vector<kube::Object> out;
  auto it = objects_.find(r.plural);
  if (it == objects_.end()) return out;
  for (const auto& [k, v] : it->second) out.push_back(v);
  return out;
}

kube::Informer* AddInformer(kube::KubeApi* api, const kube::Resource& r, const kube::InformerOptions& base,
                            const std::string& label_selector,
                            std::vector<std::unique_ptr<kube::Informer>>* informers, InformerCache* cache) {
  kube::InformerOptions o = base;
  o.ns.clear();
  o.label_selector = label_selector;
  o.field_selector.clear();
  o.transform = CacheTransformFor(r);  // only the fields the controllers read
  informers->push_back(std::make_unique<kube::Informer>(api, r, o));
  cache->Add(informers->back().get());
  return informers->back().get();
}

}  // namespace tandem::controller
