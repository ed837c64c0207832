#include "operator/kube/resource.h"

#include <chrono>
#include <cmath>
#include <ctime>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace tandem::kube {

const Resource kPods{"", "v1", "pods", "Pod", true};
const Resource kServices{"", "v1", "services", "Service", true};
const Resource kSecrets{"", "v1", "secrets", "Secret", true};
const Resource kConfigMaps{"", "v1", "configmaps", "ConfigMap", true};
const Resource kNetworkPolicies{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true};
const Resource kDeployments{"apps", "v1", "deployments", "Deployment", true};
const Resource kPersistentVolumeClaims{"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true};
const Resource kEvents{"", "v1", "events", "Event", true};
const Resource kNodes{"", "v1", "nodes", "Node", false};
const Resource kNamespaces{"", "v1", "namespaces", "Namespace", false};
const Resource kLeases{"coordination.k8s.io", "v1", "leases", "Lease", true};
const Resource kCustomResourceDefinitions{"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                          "CustomResourceDefinition", false};
const Resource kTrainingJobs{"tandem.dev", "v1alpha1", "trainingjobs", "TrainingJob", true};
const Resource kQueues{"tandem.dev", "v1alpha1", "queues", "Queue", false};
const Resource kSweeps{"tandem.dev", "v1alpha1", "sweeps", "Sweep", true};

std::string Resource::ApiVersion() const {
  return group.empty() ? version : absl::StrCat(group, "/", version);
}

std::string Resource::CollectionPath(const std::string& ns) const {
  std::string base = group.empty() ? absl::StrCat("/api/", version)
                                   : absl::StrCat("/apis/", group, "/", version);
  if (namespaced && !ns.empty()) return absl::StrCat(base, "/namespaces/", ns, "/", plural);
  return absl::StrCat(base, "/", plural);
}

std::string Resource::ObjectPath(const std::string& ns, const std::string& name,
                                 const std::string& subresource) const {
  std::string p = absl::StrCat(CollectionPath(namespaced ? ns : ""), "/", name);
  if (!subresource.empty()) absl::StrAppend(&p, "/", subresource);
  return p;
}

std::string ObjectKey::String() const { return ns.empty() ? name : absl::StrCat(ns, "/", name); }

ObjectKey ObjectKey::Parse(const std::string& key) {
  auto slash = key.find('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

ObjectKey ObjectKey::Of(const nlohmann::json& object) { return {NamespaceOf(object), NameOf(object)}; }

namespace {
std::string MetaString(const nlohmann::json& o, const char* field) {
  if (!o.is_object()) return "";
  auto m = o.find("metadata");
  if (m == o.end() || !m->is_object()) return "";
  auto f = m->find(field);
  if (f == m->end() || !f->is_string()) return "";
  return f->get<std::string>();
}
}  // namespace

std::string NameOf(const nlohmann::json& o) { return MetaString(o, "name"); }
std::string NamespaceOf(const nlohmann::json& o) { return MetaString(o, "namespace"); }
std::string UidOf(const nlohmann::json& o) { return MetaString(o, "uid"); }
std::string ResourceVersionOf(const nlohmann::json& o) { return MetaString(o, "resourceVersion"); }

const nlohmann::json* FieldAt(const nlohmann::json& object, const std::string& dotted_path) {
  const nlohmann::json* cur = &object;
  for (absl::string_view part : absl::StrSplit(dotted_path, '.', absl::SkipEmpty())) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(std::string(part));
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

nlohmann::json StatusUpdateBody(const nlohmann::json& object, nlohmann::json status) {
  nlohmann::json meta = nlohmann::json::object();
  meta["name"] = NameOf(object);
  if (std::string ns = NamespaceOf(object); !ns.empty()) meta["namespace"] = ns;
  if (std::string uid = UidOf(object); !uid.empty()) meta["uid"] = uid;
  if (std::string rv = ResourceVersionOf(object); !rv.empty()) meta["resourceVersion"] = rv;
  nlohmann::json body = {{"metadata", std::move(meta)}, {"status", std::move(status)}};
  for (const char* k : {"apiVersion", "kind"}) {
    if (auto it = object.find(k); it != object.end()) body[k] = *it;
  }
  return body;
}

nlohmann::json ControllerRef(const nlohmann::json& owner) {
  return {{"apiVersion", owner.value("apiVersion", "")},
          {"kind", owner.value("kind", "")},
          {"name", NameOf(owner)},
          {"uid", UidOf(owner)},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

std::string ControllerUidOf(const nlohmann::json& object) {
  const nlohmann::json* refs = FieldAt(object, "metadata.ownerReferences");
  if (refs == nullptr || !refs->is_array()) return "";
  for (const auto& r : *refs) {
    if (r.is_object() && r.value("controller", false)) return r.value("uid", "");
  }
  return "";
}

std::string FormatRfc3339(double epoch_seconds, bool micro) {
  double whole = std::floor(epoch_seconds);
  std::time_t t = static_cast<std::time_t>(whole);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!micro) return absl::StrCat(buf, "Z");
  int us = static_cast<int>((epoch_seconds - whole) * 1e6);
  return absl::StrFormat("%s.%06dZ", buf, us);
}

namespace {
double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

std::string NowRfc3339() { return FormatRfc3339(NowSeconds()); }
std::string NowMicroTime() { return FormatRfc3339(NowSeconds(), true); }

absl::StatusOr<double> ParseRfc3339(const std::string& text) {
  std::tm tm{};
  const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return absl::InvalidArgumentError(absl::StrCat("bad timestamp '", text, "'"));
  double frac = 0;
  if (*rest == '.') {
    const char* start = rest;
    ++rest;
    while (*rest >= '0' && *rest <= '9') ++rest;
    double v = 0;
    if (absl::SimpleAtod(std::string(start, rest), &v)) frac = v;
  }
  double offset = 0;
  if (*rest == '+' || *rest == '-') {
    int hh = 0, mm = 0;
    if (std::sscanf(rest + 1, "%d:%d", &hh, &mm) == 2) offset = (hh * 3600 + mm * 60) * (*rest == '+' ? 1 : -1);
  } else if (*rest != 'Z' && *rest != 'z') {
    return absl::InvalidArgumentError(absl::StrCat("bad timestamp '", text, "': no time zone"));
  }
  return static_cast<double>(timegm(&tm)) + frac - offset;
}

}  // namespace tandem::kube
