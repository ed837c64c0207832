#include "operator/controller/cache_transform.h"

#include "common/job_certificates.h"
#include "operator/controller/job_tls.h"
#include "operator/controller/worker_builder.h"
#include "operator/kube/informer.h"

namespace tandem::controller {
namespace {

using nlohmann::json;

// Keeps only `keys` of object[field] (when it is an object).
void KeepKeys(json& object, const char* field, std::initializer_list<const char*> keys) {
  auto it = object.find(field);
  if (it == object.end() || !it->is_object()) return;
  json kept = json::object();
  for (const char* k : keys) {
    if (auto v = it->find(k); v != it->end()) kept[k] = std::move(*v);
  }
  *it = std::move(kept);
}

// Keeps only `keys` of every element of the array object[field].
void KeepKeysOfEach(json& object, const char* field, std::initializer_list<const char*> keys) {
  auto it = object.find(field);
  if (it == object.end() || !it->is_array()) return;
  for (auto& e : *it) {
    if (!e.is_object()) continue;
    json kept = json::object();
    for (const char* k : keys) {
      if (auto v = e.find(k); v != e.end()) kept[k] = std::move(*v);
    }
    e = std::move(kept);
  }
}

void PrunePod(json& pod) {
  KeepKeys(pod, "spec", {"nodeName", "containers"});
  if (auto spec = pod.find("spec"); spec != pod.end() && spec->is_object()) {
    KeepKeysOfEach(*spec, "containers", {"name", "resources", "env"});
    if (auto cs = spec->find("containers"); cs != spec->end() && cs->is_array()) {
      for (auto& c : *cs) {
        auto env = c.find("env");
        if (env == c.end() || !env->is_array()) continue;
        json kept = json::array();
        for (auto& e : *env) {
          if (e.is_object() && e.value("name", "") == "TANDEM_METRICS_PORT") kept.push_back(std::move(e));
        }
        if (kept.empty()) c.erase(env);
        else *env = std::move(kept);
      }
    }
  }
  KeepKeys(pod, "status", {"phase", "podIP", "conditions", "containerStatuses"});
  if (auto st = pod.find("status"); st != pod.end() && st->is_object()) {
    KeepKeysOfEach(*st, "conditions", {"type", "status"});
    KeepKeysOfEach(*st, "containerStatuses", {"name", "state"});
  }
}

void PruneNode(json& node) {
  KeepKeys(node, "spec", {"unschedulable", "taints"});
  KeepKeys(node, "status", {"allocatable", "capacity", "conditions"});
  if (auto st = node.find("status"); st != node.end() && st->is_object()) {
    KeepKeysOfEach(*st, "conditions", {"type", "status"});
  }
}

void MetadataOnly(json& object) {
  for (auto it = object.begin(); it != object.end();) {
    const std::string& k = it.key();
    if (k == "metadata" || k == "kind" || k == "apiVersion") ++it;
    else it = object.erase(it);
  }
}

}  // namespace

std::function<void(json&)> CacheTransformFor(const kube::Resource& r) {
  if (r.plural == kube::kPods.plural && r.group == kube::kPods.group) {
    return [](json& o) { kube::DropServerBookkeeping(o); PrunePod(o); };
  }
  if (r.plural == kube::kNodes.plural && r.group == kube::kNodes.group) {
    return [](json& o) { kube::DropServerBookkeeping(o); PruneNode(o); };
  }
  if (r.plural == kube::kConfigMaps.plural && r.group == kube::kConfigMaps.group) {
    // The job's trust bundle and issued certificate (job_tls.h reads them back after a restart
    // of the operator) and an elastic job's membership (compared before it is rewritten), not
    // the manifest copy.
    return [](json& o) {
      kube::DropServerBookkeeping(o);
      json data = o.value("data", json::object());
      MetadataOnly(o);
      json kept = json::object();
      for (const char* k : {tls::kCaBundleFile, kIssuedCertKey, kMembershipKey}) {
        if (auto v = data.find(k); v != data.end()) kept[k] = std::move(*v);
      }
      if (!kept.empty()) o["data"] = std::move(kept);
    };
  }
  for (const kube::Resource* m : {&kube::kServices, &kube::kNetworkPolicies, &kube::kDeployments}) {
    if (r.plural == m->plural && r.group == m->group) {
      return [](json& o) { kube::DropServerBookkeeping(o); MetadataOnly(o); };
    }
  }
  return [](json& o) { kube::DropServerBookkeeping(o); };
}

}  // namespace tandem::controller
