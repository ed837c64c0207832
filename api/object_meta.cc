#include "api/object_meta.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tandem::api {
namespace {

using json = nlohmann::json;

std::string StringOr(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::map<std::string, std::string> StringMap(const json& obj, const char* key) {
  std::map<std::string, std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_object()) return out;
  for (const auto& [k, v] : it->items())
    if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

bool LowerAlnum(char c) { return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)); }

// The ObjectMeta fields a client may send; anything else is a typo.
constexpr const char* kMetaFields[] = {
    "name", "generateName", "namespace", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields", "selfLink"};

}  // namespace

std::string CheckDns1123Label(const std::string& v, size_t max_len) {
  if (v.empty()) return "must not be empty";
  if (v.size() > max_len) return absl::StrCat("must be at most ", max_len, " characters, got ", v.size());
  for (char c : v)
    if (!LowerAlnum(c) && c != '-')
      return absl::StrCat("must consist of lower-case letters, digits and '-', got \"", v, "\"");
  if (v.front() == '-' || v.back() == '-')
    return absl::StrCat("must start and end with a letter or digit, got \"", v, "\"");
  return "";
}

std::string CheckDns1123Subdomain(const std::string& v) {
  if (v.empty()) return "must not be empty";
  if (v.size() > 253) return absl::StrCat("must be at most 253 characters, got ", v.size());
  for (absl::string_view part : absl::StrSplit(v, '.')) {
    std::string err = CheckDns1123Label(std::string(part));
    if (!err.empty())
      return absl::StrCat("must be a DNS subdomain (lower-case letters, digits, '-' and '.'), got \"",
                          v, "\"");
  }
  return "";
}

std::string CheckDns1035Label(const std::string& v, size_t max_len) {
  std::string err = CheckDns1123Label(v, max_len);
  if (!err.empty()) return err;
  if (!std::islower(static_cast<unsigned char>(v.front())))
    return absl::StrCat("must start with a lower-case letter, got \"", v, "\"");
  return "";
}

ObjectMeta ParseObjectMeta(const json& m, const std::string& path, FieldErrors* errors) {
  ObjectMeta meta;
  if (m.is_null()) return meta;
  if (!m.is_object()) {
    errors->push_back({path, "must be an object"});
    return meta;
  }
  for (const auto& [key, value] : m.items()) {
    bool known = false;
    for (const char* k : kMetaFields) known = known || key == k;
    if (!known) {
      errors->push_back({JoinPath(path, key), absl::StrCat("unknown field \"", key, "\"")});
      continue;
    }
    if (key == "name" || key == "namespace" || key == "generateName" || key == "uid" ||
        key == "resourceVersion" || key == "creationTimestamp" || key == "deletionTimestamp") {
      if (!value.is_string() && !value.is_null())
        errors->push_back({JoinPath(path, key), "must be a string"});
    } else if (key == "labels" || key == "annotations") {
      if (value.is_object()) {
        for (const auto& [k, v] : value.items())
          if (!v.is_string())
            errors->push_back({JoinPath(JoinPath(path, key), k), "must be a string"});
      } else if (!value.is_null()) {
        errors->push_back({JoinPath(path, key), "must be a map of strings"});
      }
    } else if (key == "generation") {
      if (!value.is_number_integer() && !value.is_null())
        errors->push_back({JoinPath(path, key), "must be an integer"});
    } else {
      meta.extra[key] = value;
    }
  }
  meta.name = StringOr(m, "name");
  meta.namespace_ = StringOr(m, "namespace");
  meta.uid = StringOr(m, "uid");
  meta.resource_version = StringOr(m, "resourceVersion");
  meta.creation_timestamp = StringOr(m, "creationTimestamp");
  meta.deletion_timestamp = StringOr(m, "deletionTimestamp");
  if (auto it = m.find("generation"); it != m.end() && it->is_number_integer())
    meta.generation = it->get<int64_t>();
  meta.labels = StringMap(m, "labels");
  meta.annotations = StringMap(m, "annotations");
  if (auto it = m.find("generateName"); it != m.end() && it->is_string()) meta.extra["generateName"] = *it;
  return meta;
}

json ObjectMetaToJson(const ObjectMeta& meta) {
  json m = meta.extra.is_object() ? meta.extra : json::object();
  if (!meta.name.empty()) m["name"] = meta.name;
  if (!meta.namespace_.empty()) m["namespace"] = meta.namespace_;
  if (!meta.uid.empty()) m["uid"] = meta.uid;
  if (!meta.resource_version.empty()) m["resourceVersion"] = meta.resource_version;
  if (meta.generation != 0) m["generation"] = meta.generation;
  if (!meta.creation_timestamp.empty()) m["creationTimestamp"] = meta.creation_timestamp;
  if (!meta.deletion_timestamp.empty()) m["deletionTimestamp"] = meta.deletion_timestamp;
  if (!meta.labels.empty()) m["labels"] = meta.labels;
  if (!meta.annotations.empty()) m["annotations"] = meta.annotations;
  return m;
}

ResourceList ParseResourceList(const json& value) {
  ResourceList out;
  if (!value.is_object()) return out;
  for (const auto& [name, q] : value.items()) {
    std::string text;
    if (q.is_string()) text = q.get<std::string>();
    else if (q.is_number()) text = q.dump();
    else continue;
    auto parsed = Quantity::Parse(text);
    if (parsed.ok()) out[name] = *parsed;
  }
  return out;
}

json ResourceListToJson(const ResourceList& list) {
  json out = json::object();
  for (const auto& [name, q] : list) out[name] = q.text();
  return out;
}

std::vector<Condition> ParseConditions(const json& value) {
  std::vector<Condition> out;
  if (!value.is_array()) return out;
  for (const json& c : value) {
    if (!c.is_object()) continue;
    out.push_back({StringOr(c, "type"), StringOr(c, "status"), StringOr(c, "reason"),
                   StringOr(c, "message"), StringOr(c, "lastTransitionTime")});
  }
  return out;
}

json ConditionsToJson(const std::vector<Condition>& conditions) {
  json out = json::array();
  for (const Condition& c : conditions) {
    json j = {{"type", c.type}, {"status", c.status}};
    if (!c.reason.empty()) j["reason"] = c.reason;
    if (!c.message.empty()) j["message"] = c.message;
    if (!c.last_transition_time.empty()) j["lastTransitionTime"] = c.last_transition_time;
    out.push_back(std::move(j));
  }
  return out;
}

bool SetCondition(std::vector<Condition>* conditions, const std::string& type,
                  const std::string& status, const std::string& reason, const std::string& message,
                  const std::string& now) {
  for (Condition& c : *conditions) {
    if (c.type != type) continue;
    bool changed = c.status != status || c.reason != reason || c.message != message;
    if (c.status != status) c.last_transition_time = now;
    c.status = status;
    c.reason = reason;
    c.message = message;
    return changed;
  }
  conditions->push_back({type, status, reason, message, now});
  return true;
}

const Condition* FindCondition(const std::vector<Condition>& conditions, const std::string& type) {
  for (const Condition& c : conditions)
    if (c.type == type) return &c;
  return nullptr;
}

}  // namespace tandem::api
