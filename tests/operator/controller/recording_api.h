// A KubeApi that records every call ("create pods default/a-worker-0") and answers success, for
// reconcile tests: seed a FakeCache, run one Reconcile, compare the calls.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "operator/kube/api_error.h"
#include "operator/kube/kube_api.h"

namespace tandem::controller {

class RecordingApi : public kube::KubeApi {
 public:
  struct Call {
    std::string verb;  // create, update, update_status, patch, delete
    std::string resource;
    std::string key;
    nlohmann::json body;
    kube::DeleteOptions delete_options;
    std::string String() const { return absl::StrCat(verb, " ", resource, " ", key); }
  };

  std::vector<Call> calls;
  // What Get finds, by "<plural> <ns>/<name>"; everything else is NotFound.
  std::map<std::string, nlohmann::json> objects;
  // Calls other than Events (which tests check separately).
  std::vector<std::string> Summary(bool include_events = false) const {
    std::vector<std::string> out;
    for (const auto& c : calls) {
      if (!include_events && c.resource == "events") continue;
      out.push_back(c.String());
    }
    return out;
  }
  std::vector<std::string> EventReasons() const {
    std::vector<std::string> out;
    for (const auto& c : calls) {
      if (c.resource == "events" && c.verb == "create") out.push_back(c.body.value("reason", ""));
    }
    return out;
  }
  const Call* Find(const std::string& verb, const std::string& resource, const std::string& key = "") const {
    for (const auto& c : calls) {
      if (c.verb == verb && c.resource == resource && (key.empty() || c.key == key)) return &c;
    }
    return nullptr;
  }
  // The status of the last update_status call on `resource`.
  nlohmann::json LastStatus(const std::string& resource = "trainingjobs") const {
    for (auto it = calls.rbegin(); it != calls.rend(); ++it) {
      if (it->verb == "update_status" && it->resource == resource) {
        return it->body.value("status", nlohmann::json::object());
      }
    }
    return nullptr;
  }
  void Clear() { calls.clear(); }

  absl::StatusOr<nlohmann::json> Get(const kube::Resource& r, const std::string& ns, const std::string& name) override {
    calls.push_back({"get", r.plural, Key(ns, name), {}, {}});
    auto it = objects.find(r.plural + " " + Key(ns, name));
    if (it != objects.end()) return it->second;
    return kube::MakeApiError(404, "NotFound", r.plural + " " + Key(ns, name) + " not found");
  }
  absl::StatusOr<nlohmann::json> List(const kube::Resource& r, const std::string& ns, const kube::ListOptions&) override {
    calls.push_back({"list", r.plural, ns, {}, {}});
    return nlohmann::json{{"items", nlohmann::json::array()}, {"metadata", {{"resourceVersion", "1"}}}};
  }
  absl::StatusOr<nlohmann::json> Create(const kube::Resource& r, const std::string& ns, const nlohmann::json& o) override {
    calls.push_back({"create", r.plural, Key(ns, kube::NameOf(o)), o, {}});
    return Stamp(o);
  }
  absl::StatusOr<nlohmann::json> Update(const kube::Resource& r, const nlohmann::json& o) override {
    calls.push_back({"update", r.plural, Key(kube::NamespaceOf(o), kube::NameOf(o)), o, {}});
    return Stamp(o);
  }
  absl::StatusOr<nlohmann::json> UpdateStatus(const kube::Resource& r, const nlohmann::json& o) override {
    calls.push_back({"update_status", r.plural, Key(kube::NamespaceOf(o), kube::NameOf(o)), o, {}});
    return Stamp(o);
  }
  absl::StatusOr<nlohmann::json> Patch(const kube::Resource& r, const std::string& ns, const std::string& name,
                                       kube::PatchType, const nlohmann::json& patch, const std::string&) override {
    calls.push_back({"patch", r.plural, Key(ns, name), patch, {}});
    return patch;
  }
  absl::Status Delete(const kube::Resource& r, const std::string& ns, const std::string& name,
                      const kube::DeleteOptions& options) override {
    calls.push_back({"delete", r.plural, Key(ns, name), {}, options});
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<kube::WatchStream>> Watch(const kube::Resource&, const std::string&,
                                                           const kube::ListOptions&) override {
    return absl::UnimplementedError("RecordingApi does not watch");
  }

 private:
  static std::string Key(const std::string& ns, const std::string& name) {
    return ns.empty() ? name : ns + "/" + name;
  }
  nlohmann::json Stamp(nlohmann::json o) {
    o["metadata"]["resourceVersion"] = std::to_string(++rv_);
    return o;
  }
  int rv_ = 1000;
};

}  // namespace tandem::controller
