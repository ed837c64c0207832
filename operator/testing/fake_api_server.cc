#include "operator/testing/fake_api_server.h"

#include <filesystem>

#include <algorithm>
#include <chrono>
#include <random>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/yaml_json.h"
#include "operator/kube/api_error.h"
#include "operator/kube/resource.h"
#include "operator/kube/selector.h"
#include "operator/testing/crd_schema.h"
#include "operator/testing/patch.h"
#include "operator/testing/table.h"

namespace tandem::kube::testing {

absl::Status InstallCrds(KubeApi* api, const std::string& crd_dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(crd_dir, ec)) {
    auto docs = YamlFileToJson(e.path().string());
    if (!docs.ok()) return docs.status();
    for (const auto& d : *docs) {
      if (auto created = api->Create(kCustomResourceDefinitions, "", d); !created.ok()) return created.status();
    }
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list ", crd_dir, ": ", ec.message()));
  return absl::OkStatus();
}


using nlohmann::json;

struct FakeApiServer::Type {
  std::string group;
  std::vector<std::string> versions;
  std::string plural, singular, kind, list_kind;
  bool namespaced = true;
  std::vector<std::string> short_names, categories;
  bool status_subresource = false;
  bool builtin = true;
  std::map<std::string, json> printer_columns;  // version -> additionalPrinterColumns
  // Custom resources: version -> its structural schema (absent: no schema, nothing enforced).
  std::map<std::string, std::shared_ptr<const CrdSchema>> schemas;
  const CrdSchema* SchemaFor(const std::string& version) const {
    auto it = schemas.find(version);
    return it == schemas.end() ? nullptr : it->second.get();
  }
  // The schema of the version an object's apiVersion names (else of the first served version).
  const CrdSchema* SchemaOf(const json& obj) const {
    auto av = obj.find("apiVersion");
    std::string v = av != obj.end() && av->is_string() ? av->get<std::string>() : "";
    if (size_t slash = v.find('/'); slash != std::string::npos) v = v.substr(slash + 1);
    if (const CrdSchema* s = SchemaFor(v)) return s;
    return versions.empty() ? nullptr : SchemaFor(versions[0]);
  }
  std::string Key() const { return group + "/" + plural; }
  std::string Qualified() const { return group.empty() ? plural : plural + "." + group; }
  std::string ApiVersion(const std::string& v) const { return group.empty() ? v : group + "/" + v; }
};

struct FakeApiServer::Route {
  std::shared_ptr<Type> type;
  std::string version;
  std::string ns;
  bool ns_in_path = false;
  std::string name;
  std::string sub;
};

namespace {

const char* kJson = "application/json";

using Headers = std::vector<std::pair<std::string, std::string>>;

void Reply(HttpResponseWriter& w, int code, const json& body, const Headers& headers = {}) {
  w.Respond(code, kJson, body.dump(), headers);
}

void ReplyError(HttpResponseWriter& w, int code, const std::string& reason,
                const std::string& message, const json& details = nullptr) {
  json s = StatusObject(code, reason, message);
  if (!details.is_null()) s["details"] = details;
  Reply(w, code, s);
}

std::string NewUid() {
  static absl::Mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  absl::MutexLock lock(&mu);
  uint64_t a = rng(), b = rng();
  return absl::StrFormat("%08x-%04x-4%03x-%04x-%012x", static_cast<uint32_t>(a >> 32),
                         static_cast<uint32_t>((a >> 16) & 0xffff), static_cast<uint32_t>(a & 0xfff),
                         static_cast<uint32_t>(0x8000 | ((b >> 48) & 0x3fff)),
                         b & 0xffffffffffffULL);
}

std::string RandomSuffix(int n) {
  static const char* kChars = "bcdfghjklmnpqrstvwxz2456789";
  static absl::Mutex mu;
  static std::mt19937 rng(std::random_device{}());
  absl::MutexLock lock(&mu);
  std::string s;
  for (int i = 0; i < n; ++i) s += kChars[rng() % 27];
  return s;
}

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 253) return false;
  for (char c : n) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'))
      return false;
  }
  return absl::ascii_isalnum(static_cast<unsigned char>(n.front())) &&
         absl::ascii_isalnum(static_cast<unsigned char>(n.back()));
}

std::string StoreKey(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

// The object without metadata (and status when it is a subresource): what `generation` tracks.
json SpecPart(const json& o, bool drop_status) {
  json c = o;
  c.erase("metadata");
  if (drop_status) c.erase("status");
  c.erase("kind");
  c.erase("apiVersion");
  return c;
}

json& Meta(json& o) {
  if (!o.contains("metadata") || !o["metadata"].is_object()) o["metadata"] = json::object();
  return o["metadata"];
}

std::string Now() { return NowRfc3339(); }

// The metadata.name errors of ObjectMeta validation (generateName filled in before).
std::vector<FieldError> NameErrors(const std::string& name) {
  if (name.empty()) return {{"FieldValueRequired", "metadata.name", "Required value: name or generateName is required"}};
  if (ValidName(name)) return {};
  return {{"FieldValueInvalid", "metadata.name",
           absl::StrCat("Invalid value: ", GoQuote(name),
                        ": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                        "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
                        "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")}};
}

// The `fieldValidation` query parameter: what the apiserver does with fields the schema does not
// declare. Warn is its default.
enum class FieldValidation { kIgnore, kWarn, kStrict };

// False for a value the apiserver refuses (ValidateFieldValidation of the request's options).
bool FieldValidationOf(const std::map<std::string, std::string>& params, FieldValidation* out) {
  auto it = params.find("fieldValidation");
  *out = FieldValidation::kWarn;
  if (it == params.end() || it->second.empty() || it->second == "Warn") return true;
  if (it->second == "Strict") {
    *out = FieldValidation::kStrict;
  } else if (it->second == "Ignore") {
    *out = FieldValidation::kIgnore;
  } else {
    return false;
  }
  return true;
}

std::string UnknownFieldList(const std::vector<std::string>& unknown) {
  std::vector<std::string> parts;
  for (const auto& f : unknown) parts.push_back(absl::StrCat("unknown field ", GoQuote(f)));
  return absl::StrJoin(parts, ", ");
}

// One `Warning: 299 - "unknown field \"spec.foo\""` header per pruned field.
Headers UnknownFieldWarnings(const std::vector<std::string>& unknown) {
  Headers h;
  for (const auto& f : unknown) h.emplace_back("Warning", absl::StrCat("299 - ", GoQuote(absl::StrCat("unknown field ", GoQuote(f)))));
  return h;
}

// What the apiserver's decoding does to a custom resource: numbers as Go decodes them, pruning
// (the pruned paths are returned), then defaulting.
std::vector<std::string> DecodeCustomResource(const CrdSchema& schema, json& obj) {
  NormalizeNumbers(obj);
  std::vector<std::string> unknown = schema.Prune(obj);
  schema.Default(obj);
  return unknown;
}

}  // namespace

FakeApiServer::FakeApiServer(FakeApiServerOptions options)
    : options_(std::move(options)), http_(HttpServerOptions{.max_connections = 512}) {
  {
    absl::MutexLock lock(&mu_);
    AddBuiltinTypes();
  }
  for (const auto& ns : options_.namespaces) {
    json o = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}},
              {"spec", {{"finalizers", {"kubernetes"}}}}};
    json out;
    absl::MutexLock lock(&mu_);
    CreateLocked(*types_.at("/namespaces"), "", o, false, &out);
  }
  auto handler = [this](const HttpRequest& req, HttpResponseWriter& w) { Serve(req, w); };
  for (const char* p : {"/api", "/apis", "/version", "/openapi", "/healthz", "/readyz", "/livez"}) {
    http_.HandlePrefix(p, handler);
  }
}

FakeApiServer::~FakeApiServer() { Stop(); }

absl::Status FakeApiServer::Start(const std::string& host, int port) { return http_.Start(host, port); }

void FakeApiServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_.SignalAll();
  }
  http_.Stop();
}

std::string FakeApiServer::url() const { return absl::StrCat("http://127.0.0.1:", port()); }

void FakeApiServer::Compact() {
  absl::MutexLock lock(&mu_);
  history_.clear();
  compacted_rv_ = rv_;
  changed_.SignalAll();
}

void FakeApiServer::CloseWatches() {
  absl::MutexLock lock(&mu_);
  ++watch_epoch_;
  changed_.SignalAll();
}

void FakeApiServer::FailNext(const std::string& method, const std::string& path_prefix,
                             int http_code, int count) {
  absl::MutexLock lock(&mu_);
  failures_.push_back({method, path_prefix, http_code, count});
}

int64_t FakeApiServer::CurrentResourceVersion() {
  absl::MutexLock lock(&mu_);
  return rv_;
}

int FakeApiServer::RequestCount(const std::string& method, const std::string& path_prefix) {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [k, v] : request_counts_) {
    if (absl::StartsWith(k, method + " " + path_prefix)) n += v;
  }
  return n;
}

void FakeApiServer::AddBuiltinTypes() {
  auto add = [this](std::string group, std::string version, std::string plural, std::string kind,
                    bool namespaced, std::vector<std::string> short_names, bool status,
                    std::vector<std::string> categories = {}) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto t = std::make_shared<Type>();
    t->group = group;
    t->versions = {version};
    t->plural = plural;
    t->kind = kind;
    t->singular = absl::AsciiStrToLower(kind);
    t->list_kind = kind + "List";
    t->namespaced = namespaced;
    t->short_names = std::move(short_names);
    t->status_subresource = status;
    t->categories = std::move(categories);
    types_[t->Key()] = t;
  };
  add("", "v1", "pods", "Pod", true, {"po"}, true, {"all"});
  add("", "v1", "services", "Service", true, {"svc"}, true, {"all"});
  add("", "v1", "secrets", "Secret", true, {}, false);
  add("", "v1", "configmaps", "ConfigMap", true, {"cm"}, false);
  add("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, {"pvc"}, true);
  add("", "v1", "events", "Event", true, {"ev"}, false);
  add("", "v1", "nodes", "Node", false, {"no"}, true);
  add("", "v1", "namespaces", "Namespace", false, {"ns"}, true);
  add("", "v1", "serviceaccounts", "ServiceAccount", true, {"sa"}, false);
  add("coordination.k8s.io", "v1", "leases", "Lease", true, {}, false);
  add("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, {"netpol"}, false);
  add("apps", "v1", "deployments", "Deployment", true, {"deploy"}, true, {"all"});
  add("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false,
      {"crd", "crds"}, true);
}

const FakeApiServer::Type* FakeApiServer::FindType(const std::string& group,
                                                   const std::string& version,
                                                   const std::string& plural) const {
  auto it = types_.find(group + "/" + plural);
  if (it == types_.end()) return nullptr;
  const auto& v = it->second->versions;
  if (std::find(v.begin(), v.end(), version) == v.end()) return nullptr;
  return it->second.get();
}

std::string FakeApiServer::NextRv() { return std::to_string(++rv_); }

void FakeApiServer::RecordLocked(const std::string& type_key, const std::string& event,
                                 const json& obj, const json& previous) {
  int64_t rv = 0;
  absl::SimpleAtoi(ResourceVersionOf(obj), &rv);
  history_.push_back({rv, type_key, event, obj, previous});
  while (history_.size() > options_.compaction_window) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
  changed_.SignalAll();
}

void FakeApiServer::RegisterCrdLocked(const json& crd) {
  const json& spec = crd["spec"];
  auto t = std::make_shared<Type>();
  t->builtin = false;
  t->group = spec.value("group", "");
  const json names = spec.value("names", json::object());
  t->plural = names.value("plural", "");
  t->kind = names.value("kind", "");
  t->singular = names.value("singular", absl::AsciiStrToLower(t->kind));
  t->list_kind = names.value("listKind", t->kind + "List");
  t->short_names = names.value("shortNames", std::vector<std::string>{});
  t->categories = names.value("categories", std::vector<std::string>{});
  t->namespaced = spec.value("scope", "Namespaced") == "Namespaced";
  if (spec.contains("versions") && spec["versions"].is_array()) {
    for (const auto& v : spec["versions"]) {
      if (!v.value("served", true)) continue;
      std::string name = v.value("name", "");
      t->versions.push_back(name);
      if (v.contains("subresources") && v["subresources"].is_object() &&
          v["subresources"].contains("status")) {
        t->status_subresource = true;
      }
      if (v.contains("additionalPrinterColumns")) t->printer_columns[name] = v["additionalPrinterColumns"];
      if (const json* s = FieldAt(v, "schema.openAPIV3Schema"); s != nullptr && s->is_object()) {
        t->schemas[name] = std::make_shared<const CrdSchema>(*s);
      }
    }
  }
  auto existing = types_.find(t->Key());
  types_[t->Key()] = t;
  if (existing == types_.end()) {
    objects_[t->Key()];
  } else {
    // A changed CRD: the apiserver prunes and defaults stored objects with the new schema when
    // it reads them; here they are brought up to date at once (no new resourceVersion, as a read).
    for (auto& [k, obj] : objects_[t->Key()]) {
      if (const CrdSchema* schema = t->SchemaOf(obj)) DecodeCustomResource(*schema, obj);
    }
  }
}

void FakeApiServer::UnregisterCrdLocked(const json& crd) {
  const json& spec = crd["spec"];
  std::string key = spec.value("group", "") + "/" + spec["names"].value("plural", "");
  auto it = objects_.find(key);
  if (it != objects_.end()) {
    for (const auto& [k, obj] : it->second) {
      json gone = obj;
      Meta(gone)["resourceVersion"] = NextRv();
      RecordLocked(key, "DELETED", gone, obj);
    }
    objects_.erase(it);
  }
  types_.erase(key);
}

int FakeApiServer::CreateLocked(const Type& t, const std::string& ns, json obj, bool dry_run,
                                json* out) {
  if (!obj.is_object()) {
    *out = StatusObject(400, "BadRequest", "the body of the request is not a JSON object");
    return 400;
  }
  if (obj.contains("kind") && obj["kind"] != t.kind) {
    *out = StatusObject(400, "BadRequest",
                        absl::StrCat("the kind of the object (", obj["kind"].dump(),
                                     ") does not match the resource (", t.kind, ")"));
    return 400;
  }
  obj["kind"] = t.kind;
  if (!obj.contains("apiVersion") || !obj["apiVersion"].is_string()) obj["apiVersion"] = t.ApiVersion(t.versions[0]);
  json& m = Meta(obj);
  std::string name = m.value("name", "");
  if (name.empty() && m.contains("generateName") && m["generateName"].is_string()) {
    name = m["generateName"].get<std::string>() + RandomSuffix(5);
    m["name"] = name;
  }
  std::vector<FieldError> invalid = NameErrors(name);
  if (!invalid.empty() && t.builtin) {
    *out = InvalidStatus(t.kind, t.group, name, invalid);
    return 422;
  }
  if (t.namespaced) {
    std::string body_ns = m.value("namespace", "");
    if (!body_ns.empty() && body_ns != ns) {
      *out = StatusObject(400, "BadRequest",
                          "the namespace of the provided object does not match the namespace sent on the request");
      return 400;
    }
    m["namespace"] = ns;
    if (objects_["/namespaces"].count(ns) == 0) {
      *out = StatusObject(404, "NotFound", absl::StrCat("namespaces \"", ns, "\" not found"));
      (*out)["details"] = {{"name", ns}, {"kind", "namespaces"}};
      return 404;
    }
  } else {
    m.erase("namespace");
  }
  if (!t.builtin) {
    // Validation after the strategy's PrepareForCreate (a status subresource's status dropped),
    // with ObjectMeta's, before storage (so an invalid object is a 422 even if the name is taken).
    if (t.status_subresource) obj.erase("status");
    if (const CrdSchema* schema = t.SchemaOf(obj)) {
      std::vector<FieldError> errs = schema->Validate(obj);
      invalid.insert(invalid.end(), errs.begin(), errs.end());
    }
    if (!invalid.empty()) {
      *out = InvalidStatus(t.kind, t.group, name, invalid);
      return 422;
    }
  }
  auto& bucket = objects_[t.Key()];
  std::string key = StoreKey(t.namespaced ? ns : "", name);
  if (bucket.count(key) != 0) {
    *out = StatusObject(409, "AlreadyExists",
                        absl::StrCat(t.Qualified(), " \"", name, "\" already exists"));
    (*out)["details"] = {{"name", name}, {"group", t.group}, {"kind", t.plural}};
    return 409;
  }
  if (t.Key() == "apiextensions.k8s.io/customresourcedefinitions") {
    const json* group = FieldAt(obj, "spec.group");
    const json* plural = FieldAt(obj, "spec.names.plural");
    if (group == nullptr || plural == nullptr || !group->is_string() || !plural->is_string() ||
        name != plural->get<std::string>() + "." + group->get<std::string>()) {
      *out = StatusObject(422, "Invalid",
                          absl::StrCat("CustomResourceDefinition.apiextensions.k8s.io \"", name,
                                       "\" is invalid: metadata.name: must be spec.names.plural+\".\"+spec.group"));
      return 422;
    }
  }
  m["uid"] = NewUid();
  m["creationTimestamp"] = Now();
  m["generation"] = 1;
  m.erase("deletionTimestamp");
  m.erase("deletionGracePeriodSeconds");
  m.erase("managedFields");
  if (t.kind == "Pod") {
    obj["status"] = {{"phase", "Pending"}};
  } else if (t.kind == "Namespace") {
    obj["status"] = {{"phase", "Active"}};
  } else if (t.kind == "Service") {
    json& spec = obj["spec"];
    if (!spec.is_object()) spec = json::object();
    if (!spec.contains("clusterIP")) {
      spec["clusterIP"] = absl::StrCat("10.96.", (rv_ / 250) % 250, ".", rv_ % 250 + 1);
    }
    if (!spec.contains("type")) spec["type"] = "ClusterIP";
  } else if (t.kind == "Secret") {
    if (obj.contains("stringData") && obj["stringData"].is_object()) {
      for (const auto& [k, v] : obj["stringData"].items()) {
        obj["data"][k] = absl::Base64Escape(v.is_string() ? v.get<std::string>() : v.dump());
      }
      obj.erase("stringData");
    }
    if (!obj.contains("type")) obj["type"] = "Opaque";
  } else if (t.kind == "CustomResourceDefinition") {
    json names = obj["spec"].value("names", json::object());
    if (!names.contains("singular")) names["singular"] = absl::AsciiStrToLower(names.value("kind", ""));
    if (!names.contains("listKind")) names["listKind"] = names.value("kind", "") + "List";
    std::vector<std::string> stored;
    for (const auto& v : obj["spec"].value("versions", json::array())) {
      if (v.value("storage", false)) stored.push_back(v.value("name", ""));
    }
    obj["status"] = {{"acceptedNames", names},
                     {"storedVersions", stored},
                     {"conditions",
                      {{{"type", "NamesAccepted"}, {"status", "True"}, {"reason", "NoConflicts"},
                        {"message", "no conflicts found"}, {"lastTransitionTime", Now()}},
                       {{"type", "Established"}, {"status", "True"}, {"reason", "InitialNamesAccepted"},
                        {"message", "the initial names have been accepted"},
                        {"lastTransitionTime", Now()}}}}};
  }
  if (dry_run) {
    *out = obj;
    return 201;
  }
  m["resourceVersion"] = NextRv();
  bucket[key] = obj;
  RecordLocked(t.Key(), "ADDED", obj, nullptr);
  if (t.kind == "CustomResourceDefinition") RegisterCrdLocked(obj);
  *out = obj;
  // The garbage collector removes an object all of whose owners are gone (e.g. a child created
  // by a controller whose cache still showed a deleted owner). The real one does it moments
  // later; here it happens at once, after the create succeeded.
  if (const json* refs = FieldAt(obj, "metadata.ownerReferences"); refs != nullptr && refs->is_array() && !refs->empty()) {
    std::set<std::string> owners;
    for (const auto& r : *refs) owners.insert(r.value("uid", ""));
    bool any_alive = false;
    for (const auto& [tk, objs] : objects_) {
      for (const auto& [k, o] : objs) any_alive = any_alive || owners.count(UidOf(o)) != 0;
    }
    if (!any_alive) RemoveLocked(t, key, "Background");
  }
  return 201;
}

int FakeApiServer::UpdateLocked(const Type& t, const std::string& ns, const std::string& name,
                                json obj, bool status_only, bool dry_run, json* out) {
  auto& bucket = objects_[t.Key()];
  std::string key = StoreKey(t.namespaced ? ns : "", name);
  auto it = bucket.find(key);
  if (it == bucket.end()) {
    *out = StatusObject(404, "NotFound", absl::StrCat(t.Qualified(), " \"", name, "\" not found"));
    (*out)["details"] = {{"name", name}, {"group", t.group}, {"kind", t.plural}};
    return 404;
  }
  if (!obj.is_object()) {
    *out = StatusObject(400, "BadRequest", "the body of the request is not a JSON object");
    return 400;
  }
  const json old = it->second;
  json& m = Meta(obj);
  if (m.contains("name") && m["name"] != name) {
    *out = StatusObject(400, "BadRequest",
                        absl::StrCat("the name of the object (", m["name"].dump(),
                                     ") does not match the name on the URL (", name, ")"));
    return 400;
  }
  std::string rv = m.value("resourceVersion", "");
  if (rv.empty() && !t.builtin) {
    // Custom resources do not allow unconditional updates (their strategy's
    // AllowUnconditionalUpdate is false); a patch carries the stored resourceVersion.
    *out = InvalidStatus(t.kind, t.group, name, {{"FieldValueInvalid", "metadata.resourceVersion",
                                                  "Invalid value: 0: must be specified for an update"}});
    (*out)["message"] = absl::StrCat(t.Qualified(), " ", GoQuote(name),
                                     " is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update");
    (*out)["details"]["kind"] = t.plural;  // the apiserver names the resource here, not the kind
    return 422;
  }
  if (!rv.empty() && rv != ResourceVersionOf(old)) {
    *out = StatusObject(409, "Conflict",
                        absl::StrCat("Operation cannot be fulfilled on ", t.Qualified(), " \"", name,
                                     "\": the object has been modified; please apply your changes "
                                     "to the latest version and try again"));
    (*out)["details"] = {{"name", name}, {"group", t.group}, {"kind", t.plural}};
    return 409;
  }
  json result;
  if (status_only) {
    result = old;
    if (obj.contains("status")) {
      result["status"] = obj["status"];
    } else {
      result.erase("status");
    }
  } else {
    result = obj;
    result["kind"] = t.kind;
    if (!result.contains("apiVersion")) result["apiVersion"] = old["apiVersion"];
    json& rm = Meta(result);
    const json& om = old["metadata"];
    for (const char* f : {"uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation", "namespace", "name"}) {
      if (om.contains(f)) {
        rm[f] = om[f];
      } else {
        rm.erase(f);
      }
    }
    rm.erase("managedFields");
    if (t.status_subresource) {
      if (old.contains("status")) {
        result["status"] = old["status"];
      } else {
        result.erase("status");
      }
    }
    if (t.kind == "Secret" && result.contains("stringData") && result["stringData"].is_object()) {
      for (const auto& [k, v] : result["stringData"].items()) {
        result["data"][k] = absl::Base64Escape(v.is_string() ? v.get<std::string>() : v.dump());
      }
      result.erase("stringData");
    }
    if (SpecPart(result, t.status_subresource) != SpecPart(old, t.status_subresource)) {
      rm["generation"] = old["metadata"].value("generation", 1) + 1;
    }
  }
  if (const CrdSchema* schema = t.builtin ? nullptr : t.SchemaOf(result)) {
    // The main resource validates all but the status when /status is its own subresource; the
    // status subresource validates only the status (kube-apiserver's status strategy).
    std::vector<FieldError> errs;
    if (status_only) {
      errs = schema->ValidateStatus(result);
    } else if (t.status_subresource) {
      json without_status = result;
      without_status.erase("status");
      errs = schema->Validate(without_status);
    } else {
      errs = schema->Validate(result);
    }
    if (!errs.empty()) {
      *out = InvalidStatus(t.kind, t.group, name, errs);
      return 422;
    }
  }
  Meta(result)["resourceVersion"] = ResourceVersionOf(old);
  if (result == old) {  // a no-op write does not bump the resourceVersion
    *out = old;
    return 200;
  }
  if (dry_run) {
    *out = result;
    return 200;
  }
  Meta(result)["resourceVersion"] = NextRv();
  it->second = result;
  RecordLocked(t.Key(), "MODIFIED", result, old);
  if (t.kind == "CustomResourceDefinition") RegisterCrdLocked(result);
  *out = result;
  // The last finalizer removed from an object being deleted: now it goes.
  const json* fin = FieldAt(result, "metadata.finalizers");
  if (FieldAt(result, "metadata.deletionTimestamp") != nullptr &&
      (fin == nullptr || !fin->is_array() || fin->empty())) {
    RemoveLocked(t, key, "Background");
  }
  return 200;
}

void FakeApiServer::RemoveLocked(const Type& t, const std::string& key, const std::string& propagation) {
  auto& bucket = objects_[t.Key()];
  auto it = bucket.find(key);
  if (it == bucket.end()) return;
  json old = it->second;
  bucket.erase(it);
  json gone = old;
  Meta(gone)["resourceVersion"] = NextRv();
  RecordLocked(t.Key(), "DELETED", gone, old);
  std::string uid = UidOf(old);
  if (t.kind == "CustomResourceDefinition") UnregisterCrdLocked(old);
  if (t.kind == "Namespace") {
    std::string ns = NameOf(old);
    for (auto& [type_key, objs] : objects_) {
      auto tt = types_.find(type_key);
      if (tt == types_.end() || !tt->second->namespaced) continue;
      std::vector<std::string> keys;
      for (const auto& [k, o] : objs) {
        if (NamespaceOf(o) == ns) keys.push_back(k);
      }
      for (const auto& k : keys) RemoveLocked(*tt->second, k, "Background");
    }
  }
  CollectGarbageLocked(uid, propagation);
}

void FakeApiServer::CollectGarbageLocked(const std::string& owner_uid, const std::string& propagation) {
  if (owner_uid.empty()) return;
  std::set<std::string> live_uids;
  for (const auto& [tk, objs] : objects_) {
    for (const auto& [k, o] : objs) live_uids.insert(UidOf(o));
  }
  struct Dependent {
    std::shared_ptr<Type> type;
    std::string key;
  };
  std::vector<Dependent> to_delete, to_orphan;
  for (const auto& [tk, objs] : objects_) {
    auto tt = types_.find(tk);
    if (tt == types_.end()) continue;
    for (const auto& [k, o] : objs) {
      const json* refs = FieldAt(o, "metadata.ownerReferences");
      if (refs == nullptr || !refs->is_array()) continue;
      bool mine = false, solid = false;
      for (const auto& r : *refs) {
        std::string u = r.value("uid", "");
        if (u == owner_uid) mine = true;
        else if (live_uids.count(u) != 0) solid = true;
      }
      if (!mine) continue;
      if (propagation == "Orphan" || solid) {
        to_orphan.push_back({tt->second, k});
      } else {
        to_delete.push_back({tt->second, k});
      }
    }
  }
  for (const auto& d : to_orphan) {
    auto& obj = objects_[d.type->Key()][d.key];
    json old = obj;
    json kept = json::array();
    for (const auto& r : obj["metadata"]["ownerReferences"]) {
      if (r.value("uid", "") != owner_uid) kept.push_back(r);
    }
    if (kept.empty()) {
      obj["metadata"].erase("ownerReferences");
    } else {
      obj["metadata"]["ownerReferences"] = kept;
    }
    obj["metadata"]["resourceVersion"] = NextRv();
    RecordLocked(d.type->Key(), "MODIFIED", obj, old);
  }
  for (const auto& d : to_delete) {
    auto& bucket = objects_[d.type->Key()];
    auto it = bucket.find(d.key);
    if (it == bucket.end()) continue;
    const json* fin = FieldAt(it->second, "metadata.finalizers");
    if (fin != nullptr && fin->is_array() && !fin->empty()) {
      if (FieldAt(it->second, "metadata.deletionTimestamp") == nullptr) {
        json old = it->second;
        it->second["metadata"]["deletionTimestamp"] = Now();
        it->second["metadata"]["deletionGracePeriodSeconds"] = 0;
        it->second["metadata"]["resourceVersion"] = NextRv();
        RecordLocked(d.type->Key(), "MODIFIED", it->second, old);
      }
      continue;
    }
    RemoveLocked(*d.type, d.key, "Background");
  }
}

int FakeApiServer::DeleteLocked(const Type& t, const std::string& ns, const std::string& name,
                                const json& options, bool dry_run, json* out) {
  auto& bucket = objects_[t.Key()];
  std::string key = StoreKey(t.namespaced ? ns : "", name);
  auto it = bucket.find(key);
  if (it == bucket.end()) {
    *out = StatusObject(404, "NotFound", absl::StrCat(t.Qualified(), " \"", name, "\" not found"));
    (*out)["details"] = {{"name", name}, {"group", t.group}, {"kind", t.plural}};
    return 404;
  }
  json& obj = it->second;
  if (options.is_object() && options.contains("preconditions") && options["preconditions"].is_object()) {
    const json& pre = options["preconditions"];
    std::string uid = pre.value("uid", "");
    std::string rv = pre.value("resourceVersion", "");
    if ((!uid.empty() && uid != UidOf(obj)) || (!rv.empty() && rv != ResourceVersionOf(obj))) {
      *out = StatusObject(409, "Conflict",
                          absl::StrCat("Operation cannot be fulfilled on ", t.Qualified(), " \"", name,
                                       "\": Precondition failed: UID in precondition: ", uid,
                                       ", UID in object meta: ", UidOf(obj)));
      return 409;
    }
  }
  std::string propagation = "Background";
  if (options.is_object()) {
    propagation = options.value("propagationPolicy", propagation);
    if (options.contains("orphanDependents") && options["orphanDependents"].is_boolean() &&
        options["orphanDependents"].get<bool>()) {
      propagation = "Orphan";
    }
  }
  if (dry_run) {
    *out = obj;
    return 200;
  }
  const json* fin = FieldAt(obj, "metadata.finalizers");
  if (fin != nullptr && fin->is_array() && !fin->empty()) {
    if (FieldAt(obj, "metadata.deletionTimestamp") == nullptr) {
      json old = obj;
      obj["metadata"]["deletionTimestamp"] = Now();
      obj["metadata"]["deletionGracePeriodSeconds"] = 0;
      obj["metadata"]["resourceVersion"] = NextRv();
      RecordLocked(t.Key(), "MODIFIED", obj, old);
    }
    *out = obj;
    return 200;
  }
  json final_state = obj;
  if (t.kind == "Pod" && options.is_object() && options.contains("gracePeriodSeconds") &&
      options["gracePeriodSeconds"].is_number_integer()) {
    // No kubelet: the pod goes at once, but the grace period it was given is on its last state.
    final_state["metadata"]["deletionTimestamp"] = Now();
    final_state["metadata"]["deletionGracePeriodSeconds"] = options["gracePeriodSeconds"];
    obj = final_state;
  }
  if (propagation == "Foreground") {
    // Dependents first, then the owner (the real server parks the owner behind a
    // foregroundDeletion finalizer meanwhile).
    CollectGarbageLocked(UidOf(final_state), "Background");
  }
  RemoveLocked(t, key, propagation);
  *out = final_state;
  return 200;
}

void FakeApiServer::ServeDiscovery(const HttpRequest& req, HttpResponseWriter& w, bool* handled) {
  *handled = true;
  std::string path = req.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto resource_entries = [this](const std::string& group, const std::string& version)
                              ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    json resources = json::array();
    for (const auto& [k, t] : types_) {
      if (t->group != group) continue;
      if (std::find(t->versions.begin(), t->versions.end(), version) == t->versions.end()) continue;
      json r = {{"name", t->plural},
                {"singularName", t->singular},
                {"namespaced", t->namespaced},
                {"kind", t->kind},
                {"verbs", {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}}};
      if (!t->short_names.empty()) r["shortNames"] = t->short_names;
      if (!t->categories.empty()) r["categories"] = t->categories;
      resources.push_back(r);
      if (t->status_subresource) {
        resources.push_back({{"name", t->plural + "/status"},
                             {"singularName", ""},
                             {"namespaced", t->namespaced},
                             {"kind", t->kind},
                             {"verbs", {"get", "patch", "update"}}});
      }
    }
    return resources;
  };
  auto group_entry = [this](const std::string& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::set<std::string> versions;
    std::string preferred;
    for (const auto& [k, t] : types_) {
      if (t->group != group) continue;
      for (const auto& v : t->versions) versions.insert(v);
      if (preferred.empty() && !t->versions.empty()) preferred = t->versions[0];
    }
    json vs = json::array();
    for (const auto& v : versions) vs.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
    return json{{"name", group},
                {"versions", vs},
                {"preferredVersion", {{"groupVersion", group + "/" + preferred}, {"version", preferred}}}};
  };
  absl::MutexLock lock(&mu_);
  if (path == "/version") {
    Reply(w, 200, {{"major", "1"}, {"minor", "32"}, {"gitVersion", "v1.32.0-tandem-fake"},
                   {"gitCommit", "0000000000000000000000000000000000000000"}, {"gitTreeState", "clean"},
                   {"buildDate", "2026-01-01T00:00:00Z"}, {"goVersion", "n/a"}, {"compiler", "n/a"},
                   {"platform", "linux/amd64"}});
  } else if (path == "/healthz" || path == "/readyz" || path == "/livez") {
    w.Respond(200, "text/plain", "ok");
  } else if (path == "/api") {
    Reply(w, 200, {{"kind", "APIVersions"}, {"versions", {"v1"}},
                   {"serverAddressByClientCIDRs",
                    {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", absl::StrCat("127.0.0.1:", port())}}}}});
  } else if (path == "/api/v1") {
    Reply(w, 200, {{"kind", "APIResourceList"}, {"groupVersion", "v1"}, {"resources", resource_entries("", "v1")}});
  } else if (path == "/apis") {
    std::set<std::string> groups;
    for (const auto& [k, t] : types_) {
      if (!t->group.empty()) groups.insert(t->group);
    }
    json list = json::array();
    for (const auto& g : groups) list.push_back(group_entry(g));
    Reply(w, 200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", list}});
  } else {
    std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
    bool known_group = false;
    if (parts.size() >= 2 && parts[0] == "apis") {
      for (const auto& [k, t] : types_) known_group = known_group || t->group == parts[1];
    }
    if (parts.size() == 2 && known_group) {
      json g = group_entry(parts[1]);
      g["kind"] = "APIGroup";
      g["apiVersion"] = "v1";
      Reply(w, 200, g);
    } else if (parts.size() == 3 && known_group) {
      json res = resource_entries(parts[1], parts[2]);
      if (res.empty()) {
        ReplyError(w, 404, "NotFound", "the server could not find the requested resource");
      } else {
        Reply(w, 200, {{"kind", "APIResourceList"}, {"apiVersion", "v1"},
                       {"groupVersion", parts[1] + "/" + parts[2]}, {"resources", res}});
      }
    } else if (path == "/openapi/v3") {
      // The OpenAPI v3 index: one document per group-version. kubectl reads it to learn that
      // PATCH accepts ?fieldValidation= (server-side validation) before `apply`.
      json paths = json::object();
      std::set<std::string> gvs;
      for (const auto& [k, t] : types_) {
        for (const auto& v : t->versions) gvs.insert(t->group.empty() ? "api/" + v : "apis/" + t->group + "/" + v);
      }
      for (const auto& gv : gvs) {
        paths[gv] = {{"serverRelativeURL", absl::StrCat("/openapi/v3/", gv, "?hash=", rv_)}};
      }
      Reply(w, 200, {{"paths", paths}});
    } else if (absl::StartsWith(path, "/openapi/v3/")) {
      std::string gv = path.substr(12);
      std::vector<std::string> p = absl::StrSplit(gv, '/');
      std::string group, version;
      if (p.size() == 2 && p[0] == "api") {
        version = p[1];
      } else if (p.size() == 3 && p[0] == "apis") {
        group = p[1];
        version = p[2];
      }
      json paths = json::object();
      json fv = {{"name", "fieldValidation"}, {"in", "query"},
                 {"description", "accepted; this stand-in does not validate fields"},
                 {"schema", {{"type", "string"}}}};
      for (const auto& [k, t] : types_) {
        if (t->group != group ||
            std::find(t->versions.begin(), t->versions.end(), version) == t->versions.end()) continue;
        std::string base = "/" + gv + (t->namespaced ? "/namespaces/{namespace}/" : "/") + t->plural;
        json gvk = {{"group", group}, {"version", version}, {"kind", t->kind}};
        json op = {{"x-kubernetes-group-version-kind", gvk}, {"parameters", {fv}},
                   {"responses", {{"200", {{"description", "OK"}}}}}};
        paths[base] = {{"post", op}, {"get", op}};
        paths[base + "/{name}"] = {{"get", op}, {"put", op}, {"patch", op}, {"delete", op}};
      }
      if (paths.empty()) {
        ReplyError(w, 404, "NotFound", "the server could not find the requested resource");
      } else {
        Reply(w, 200, {{"openapi", "3.0.0"}, {"info", {{"title", "Kubernetes"}, {"version", "v1.32.0"}}},
                       {"paths", paths}, {"components", {{"schemas", json::object()}}}});
      }
    } else if (absl::StartsWith(path, "/openapi") || absl::StartsWith(path, "/version")) {
      ReplyError(w, 404, "NotFound", "the server could not find the requested resource");
    } else {
      *handled = false;
    }
  }
}

void FakeApiServer::Serve(const HttpRequest& req, HttpResponseWriter& w) {
  if (options_.on_request) options_.on_request(req);
  {
    absl::MutexLock lock(&mu_);
    request_counts_[req.method + " " + req.path]++;
    if (!options_.token.empty() && req.Header("authorization") != "Bearer " + options_.token) {
      ReplyError(w, 401, "Unauthorized", "Unauthorized");
      return;
    }
    for (auto& f : failures_) {
      if (f.remaining > 0 && f.method == req.method && absl::StartsWith(req.path, f.prefix)) {
        --f.remaining;
        std::string reason = f.code == 409 ? "Conflict" : "";
        ReplyError(w, f.code, reason, absl::StrCat("injected failure ", f.code, " for ", req.method, " ", req.path));
        return;
      }
    }
  }
  bool handled = false;
  ServeDiscovery(req, w, &handled);
  if (handled) return;

  std::string path = req.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  Route route;
  std::string group, version;
  size_t rest = 0;
  if (parts.size() >= 3 && parts[0] == "api") {
    version = parts[1];
    rest = 2;
  } else if (parts.size() >= 4 && parts[0] == "apis") {
    group = parts[1];
    version = parts[2];
    rest = 3;
  } else {
    ReplyError(w, 404, "NotFound", "the server could not find the requested resource");
    return;
  }
  std::vector<std::string> r(parts.begin() + rest, parts.end());
  std::string plural;
  if (r.size() >= 3 && r[0] == "namespaces" && !(r.size() == 3 && (r[2] == "status" || r[2] == "finalize"))) {
    route.ns = r[1];
    route.ns_in_path = true;
    plural = r[2];
    if (r.size() > 3) route.name = r[3];
    if (r.size() > 4) route.sub = r[4];
    if (r.size() > 5) {
      ReplyError(w, 404, "NotFound", "the server could not find the requested resource");
      return;
    }
  } else {
    plural = r[0];
    if (r.size() > 1) route.name = r[1];
    if (r.size() > 2) route.sub = r[2];
    if (r.size() > 3) {
      ReplyError(w, 404, "NotFound", "the server could not find the requested resource");
      return;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    const Type* t = FindType(group, version, plural);
    if (t == nullptr) {
      ReplyError(w, 404, "NotFound", "the server could not find the requested resource");
      return;
    }
    route.type = types_.at(t->Key());
  }
  route.version = version;
  if (route.ns_in_path && !route.type->namespaced) {
    ReplyError(w, 404, "NotFound", "the server could not find the requested resource");
    return;
  }
  if (!route.sub.empty() && !(route.sub == "status" && route.type->status_subresource)) {
    ReplyError(w, 404, "NotFound", "the server could not find the requested resource");
    return;
  }
  ServeResource(req, w, route);
}

void FakeApiServer::ServeResource(const HttpRequest& req, HttpResponseWriter& w, const Route& route) {
  const Type& t = *route.type;
  auto params = req.QueryParams();
  bool dry_run = params.count("dryRun") != 0 && params["dryRun"] == "All";
  bool namespaced_op = t.namespaced && route.ns_in_path;
  if (req.method == "GET" && route.name.empty()) {
    if (params.count("watch") && (params["watch"] == "true" || params["watch"] == "1")) {
      ServeWatch(req, w, route);
      return;
    }
    auto ls = LabelSelector::Parse(params["labelSelector"]);
    auto fs = FieldSelector::Parse(params["fieldSelector"]);
    if (!ls.ok() || !fs.ok()) {
      ReplyError(w, 400, "BadRequest", std::string(!ls.ok() ? ls.status().message() : fs.status().message()));
      return;
    }
    std::vector<json> items;
    std::string rv;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [k, o] : objects_[t.Key()]) {
        if (namespaced_op && NamespaceOf(o) != route.ns) continue;
        if (!ls->Matches(o) || !fs->Matches(o)) continue;
        items.push_back(o);
      }
      rv = std::to_string(rv_);
    }
    if (absl::StrContains(req.Header("accept"), "as=Table")) {
      std::string include = params.count("includeObject") ? params["includeObject"] : "Metadata";
      auto pc = t.printer_columns.find(route.version);
      Reply(w, 200, BuildTable(t.kind, pc == t.printer_columns.end() ? json() : pc->second, items, rv, include));
      return;
    }
    json list = {{"kind", t.list_kind}, {"apiVersion", t.ApiVersion(route.version)},
                 {"metadata", {{"resourceVersion", rv}}}, {"items", items}};
    Reply(w, 200, list);
    return;
  }
  json body;
  if (!req.body.empty() && req.method != "GET") {
    body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) {
      ReplyError(w, 400, "BadRequest", "the request body is not valid JSON");
      return;
    }
  }
  json out;
  int code = 0;
  Headers headers;
  // A custom resource with a schema is decoded as the apiserver decodes it (pruned, defaulted)
  // before anything else: a strict request with unknown fields stops here (400 for a body that is
  // the object; a patch is refused after it is applied, below), a warning one gets Warning headers.
  const CrdSchema* schema = t.builtin ? nullptr : t.SchemaFor(route.version);
  FieldValidation field_validation;
  if (!FieldValidationOf(params, &field_validation) &&
      (req.method == "POST" || req.method == "PUT" || req.method == "PATCH")) {
    const std::string options = req.method == "POST" ? "CreateOptions" : req.method == "PUT" ? "UpdateOptions" : "PatchOptions";
    const std::vector<FieldError> errs = {
        {"FieldValueNotSupported", "fieldValidation",
         absl::StrCat("Unsupported value: ", GoQuote(params["fieldValidation"]),
                      ": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"")}};
    json st = InvalidStatus(options, "meta.k8s.io", "", errs);
    st["details"].erase("name");
    Reply(w, 422, st);
    return;
  }
  if (schema != nullptr && (req.method == "POST" || req.method == "PUT") && body.is_object()) {
    std::vector<std::string> unknown = DecodeCustomResource(*schema, body);
    if (!unknown.empty() && field_validation == FieldValidation::kStrict) {
      ReplyError(w, 400, "BadRequest",
                 absl::StrCat(t.kind, " in version ", GoQuote(route.version), " cannot be handled as a ", t.kind,
                              ": strict decoding error: ", UnknownFieldList(unknown)));
      return;
    }
    if (field_validation == FieldValidation::kWarn) headers = UnknownFieldWarnings(unknown);
  }
  if (req.method == "GET") {
    absl::MutexLock lock(&mu_);
    auto& bucket = objects_[t.Key()];
    auto it = bucket.find(StoreKey(t.namespaced ? route.ns : "", route.name));
    if (it == bucket.end()) {
      ReplyError(w, 404, "NotFound", absl::StrCat(t.Qualified(), " \"", route.name, "\" not found"),
                 {{"name", route.name}, {"group", t.group}, {"kind", t.plural}});
      return;
    }
    if (absl::StrContains(req.Header("accept"), "as=Table")) {
      auto pc = t.printer_columns.find(route.version);
      std::string include = params.count("includeObject") ? params["includeObject"] : "Metadata";
      Reply(w, 200, BuildTable(t.kind, pc == t.printer_columns.end() ? json() : pc->second,
                               {it->second}, std::to_string(rv_), include));
      return;
    }
    Reply(w, 200, it->second);
    return;
  }
  if (t.namespaced && !route.ns_in_path) {
    ReplyError(w, 405, "MethodNotAllowed", "a namespaced resource needs a namespace in the path");
    return;
  }
  if (req.method == "POST" && route.name.empty()) {
    absl::MutexLock lock(&mu_);
    code = CreateLocked(t, route.ns, body, dry_run, &out);
  } else if (req.method == "PUT" && !route.name.empty()) {
    absl::MutexLock lock(&mu_);
    code = UpdateLocked(t, route.ns, route.name, body, route.sub == "status", dry_run, &out);
  } else if (req.method == "PATCH" && !route.name.empty()) {
    std::string ct = absl::AsciiStrToLower(req.Header("content-type"));
    absl::MutexLock lock(&mu_);
    auto& bucket = objects_[t.Key()];
    auto it = bucket.find(StoreKey(t.namespaced ? route.ns : "", route.name));
    if (it == bucket.end()) {
      ReplyError(w, 404, "NotFound", absl::StrCat(t.Qualified(), " \"", route.name, "\" not found"),
                 {{"name", route.name}, {"group", t.group}, {"kind", t.plural}});
      return;
    }
    json current = it->second;
    absl::StatusOr<json> patched;
    if (absl::StartsWith(ct, "application/merge-patch+json")) {
      patched = MergePatch(current, body);
    } else if (absl::StartsWith(ct, "application/json-patch+json")) {
      patched = JsonPatch(current, body);
    } else if (absl::StartsWith(ct, "application/strategic-merge-patch+json")) {
      if (!t.builtin) {
        ReplyError(w, 415, "UnsupportedMediaType",
                   "the body of the request was in an unknown format - accepted media types include: "
                   "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml");
        return;
      }
      patched = StrategicMergePatch(current, body);
    } else {
      ReplyError(w, 415, "UnsupportedMediaType",
                 absl::StrCat("patch type '", ct, "' is not supported by this stand-in (server-side "
                              "apply is not implemented); use merge, JSON or strategic merge patch"));
      return;
    }
    if (!patched.ok()) {
      ReplyError(w, 422, "Invalid", std::string(patched.status().message()));
      return;
    }
    if (schema != nullptr && patched->is_object()) {
      const std::string merged = patched->dump();
      std::vector<std::string> unknown = DecodeCustomResource(*schema, *patched);
      if (!unknown.empty() && field_validation == FieldValidation::kStrict) {
        // kube-apiserver's words for a strict patch: the patched object as the bad value of "patch".
        const std::string cause = absl::StrCat("Invalid value: ", GoQuote(merged), ": strict decoding error: ",
                                               UnknownFieldList(unknown));
        json st = StatusObject(422, "Invalid", absl::StrCat(" \"\" is invalid: patch: ", cause));
        st["details"] = {{"causes", {{{"reason", "FieldValueInvalid"}, {"message", cause}, {"field", "patch"}}}}};
        Reply(w, 422, st);
        return;
      }
      if (field_validation == FieldValidation::kWarn) headers = UnknownFieldWarnings(unknown);
    }
    // A resourceVersion in the patch is a precondition; otherwise the patch applies to the latest.
    json& pm = Meta(*patched);
    const json* patch_rv = FieldAt(body, "metadata.resourceVersion");
    if (patch_rv == nullptr) pm["resourceVersion"] = ResourceVersionOf(current);
    code = UpdateLocked(t, route.ns, route.name, *patched, route.sub == "status", dry_run, &out);
  } else if (req.method == "DELETE" && !route.name.empty()) {
    absl::MutexLock lock(&mu_);
    code = DeleteLocked(t, route.ns, route.name, body, dry_run, &out);
  } else if (req.method == "DELETE" && route.name.empty()) {
    auto ls = LabelSelector::Parse(params["labelSelector"]);
    auto fs = FieldSelector::Parse(params["fieldSelector"]);
    if (!ls.ok() || !fs.ok()) {
      ReplyError(w, 400, "BadRequest", "bad selector");
      return;
    }
    absl::MutexLock lock(&mu_);
    std::vector<std::pair<std::string, std::string>> victims;
    for (const auto& [k, o] : objects_[t.Key()]) {
      if (namespaced_op && NamespaceOf(o) != route.ns) continue;
      if (ls->Matches(o) && fs->Matches(o)) victims.emplace_back(NamespaceOf(o), NameOf(o));
    }
    json items = json::array();
    for (const auto& [ns, name] : victims) {
      json one;
      if (DeleteLocked(t, ns, name, body, dry_run, &one) == 200) items.push_back(one);
    }
    out = {{"kind", t.list_kind}, {"apiVersion", t.ApiVersion(route.version)},
           {"metadata", {{"resourceVersion", std::to_string(rv_)}}}, {"items", items}};
    code = 200;
  } else {
    ReplyError(w, 405, "MethodNotAllowed", absl::StrCat(req.method, " is not supported on ", req.path));
    return;
  }
  Reply(w, code, out, headers);
}

void FakeApiServer::ServeWatch(const HttpRequest& req, HttpResponseWriter& w, const Route& route) {
  const Type& t = *route.type;
  auto params = req.QueryParams();
  auto ls = LabelSelector::Parse(params["labelSelector"]);
  auto fs = FieldSelector::Parse(params["fieldSelector"]);
  if (!ls.ok() || !fs.ok()) {
    ReplyError(w, 400, "BadRequest", std::string(!ls.ok() ? ls.status().message() : fs.status().message()));
    return;
  }
  bool bookmarks = params["allowWatchBookmarks"] == "true" || params["allowWatchBookmarks"] == "1";
  int timeout_s = options_.default_watch_timeout_s;
  if (params.count("timeoutSeconds")) absl::SimpleAtoi(params["timeoutSeconds"], &timeout_s);
  bool namespaced_op = t.namespaced && route.ns_in_path;
  auto matches = [&](const json& o) {
    if (!o.is_object()) return false;
    if (namespaced_op && NamespaceOf(o) != route.ns) return false;
    return ls->Matches(o) && fs->Matches(o);
  };
  auto line = [](const std::string& type, const json& o) {
    return json{{"type", type}, {"object", o}}.dump() + "\n";
  };
  std::string start = params["resourceVersion"];
  int64_t cursor = 0;
  std::vector<std::string> initial;
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    epoch = watch_epoch_;
    if (start.empty() || start == "0") {
      for (const auto& [k, o] : objects_[t.Key()]) {
        if (matches(o)) initial.push_back(line("ADDED", o));
      }
      cursor = rv_;
    } else if (!absl::SimpleAtoi(start, &cursor)) {
      ReplyError(w, 400, "BadRequest", absl::StrCat("invalid resourceVersion \"", start, "\""));
      return;
    } else if (cursor < compacted_rv_) {
      std::string msg = absl::StrCat("too old resource version: ", cursor, " (", compacted_rv_, ")");
      if (options_.gone_as_http_error) {
        ReplyError(w, 410, "Expired", msg);
        return;
      }
      initial.push_back(json{{"type", "ERROR"}, {"object", StatusObject(410, "Expired", msg)}}.dump() + "\n");
      cursor = -1;  // end after sending the error
    }
  }
  if (!w.BeginChunked(200, kJson)) return;
  ++open_watches_;
  struct Closer {
    std::atomic<int>& n;
    ~Closer() { --n; }
  } closer{open_watches_};
  for (const auto& l : initial) {
    if (!w.WriteChunk(l)) return;
  }
  if (cursor < 0) {
    w.EndChunked();
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  auto next_bookmark = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(options_.bookmark_interval_s));
  while (true) {
    std::vector<std::string> out;
    bool end = false;
    {
      absl::MutexLock lock(&mu_);
      auto has_news = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || watch_epoch_ != epoch || (!history_.empty() && history_.back().rv > cursor) ||
               cursor < compacted_rv_;
      };
      const absl::Time until = absl::Now() + absl::Milliseconds(200);
      while (!has_news() && !changed_.WaitWithDeadline(&mu_, until)) {
      }
      if (stopping_ || watch_epoch_ != epoch) {
        end = true;
      } else if (cursor < compacted_rv_) {
        out.push_back(json{{"type", "ERROR"},
                           {"object", StatusObject(410, "Expired",
                                                   absl::StrCat("too old resource version: ", cursor,
                                                                " (", compacted_rv_, ")"))}}
                          .dump() + "\n");
        end = true;
      } else {
        auto it = std::upper_bound(history_.begin(), history_.end(), cursor,
                                   [](int64_t v, const Change& c) { return v < c.rv; });
        for (; it != history_.end(); ++it) {
          cursor = it->rv;
          if (it->type_key != t.Key()) continue;
          bool now = it->event != "DELETED" && matches(it->object);
          bool before = !it->previous.is_null() && matches(it->previous);
          if (it->event == "DELETED") {
            if (before) out.push_back(line("DELETED", it->object));
          } else if (now && before) {
            out.push_back(line("MODIFIED", it->object));
          } else if (now) {
            out.push_back(line("ADDED", it->object));
          } else if (before) {
            out.push_back(line("DELETED", it->object));  // left the selector
          }
        }
        cursor = std::max(cursor, rv_);
        auto now = std::chrono::steady_clock::now();
        if (bookmarks && now >= next_bookmark) {
          out.push_back(line("BOOKMARK", {{"kind", t.kind}, {"apiVersion", t.ApiVersion(route.version)},
                                          {"metadata", {{"resourceVersion", std::to_string(cursor)}}}}));
          next_bookmark = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(options_.bookmark_interval_s));
        }
        if (now >= deadline) end = true;
      }
    }
    for (const auto& l : out) {
      if (!w.WriteChunk(l)) return;
    }
    if (end || !w.Alive()) break;
  }
  w.EndChunked();
}

}  // namespace tandem::kube::testing
