#include "operator/testing/patch.h"

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tandem::kube::testing {
namespace {

// Merge keys of well-known list fields (by field name; the path does not matter in practice).
const char* MergeKeyFor(const std::string& field) {
  static const std::map<std::string, const char*> kKeys = {
      {"containers", "name"},      {"initContainers", "name"}, {"ephemeralContainers", "name"},
      {"volumes", "name"},         {"env", "name"},            {"volumeMounts", "mountPath"},
      {"conditions", "type"},      {"ownerReferences", "uid"}, {"imagePullSecrets", "name"},
      {"containerPorts", "containerPort"}, {"volumeDevices", "devicePath"},
      {"hostAliases", "ip"},       {"topologySpreadConstraints", "topologyKey"},
  };
  auto it = kKeys.find(field);
  return it == kKeys.end() ? nullptr : it->second;
}

nlohmann::json StrategicMerge(const nlohmann::json& target, const nlohmann::json& patch,
                              const std::string& field);

nlohmann::json MergeList(const nlohmann::json& target, const nlohmann::json& patch,
                         const std::string& field, const std::string& parent_field) {
  if (field == "ports") {
    // Container ports merge by containerPort, Service ports by port.
    const char* key = nullptr;
    for (const auto& e : patch) {
      if (e.is_object() && e.contains("containerPort")) key = "containerPort";
      if (e.is_object() && e.contains("port")) key = "port";
    }
    if (key == nullptr || !target.is_array()) return patch;
    nlohmann::json out = target;
    for (const auto& e : patch) {
      bool merged = false;
      for (auto& t : out) {
        if (t.is_object() && e.is_object() && t.contains(key) && t[key] == e[key]) {
          t = StrategicMerge(t, e, "");
          merged = true;
        }
      }
      if (!merged) out.push_back(e);
    }
    return out;
  }
  if (field == "finalizers" && parent_field == "metadata") {
    nlohmann::json out = target.is_array() ? target : nlohmann::json::array();
    for (const auto& e : patch) {
      if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
    }
    return out;
  }
  const char* key = MergeKeyFor(field);
  if (key == nullptr || !target.is_array()) {
    // Without a merge key the list is replaced; drop directive elements.
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : patch) {
      if (!(e.is_object() && e.contains("$patch"))) out.push_back(e);
    }
    return out;
  }
  for (const auto& e : patch) {
    if (e.is_object() && e.value("$patch", "") == "replace") {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& x : patch) {
        if (!(x.is_object() && x.contains("$patch"))) out.push_back(x);
      }
      return out;
    }
  }
  nlohmann::json out = target;
  for (const auto& e : patch) {
    if (!e.is_object() || !e.contains(key)) {
      out.push_back(e);
      continue;
    }
    bool del = e.value("$patch", "") == "delete";
    bool found = false;
    for (auto it = out.begin(); it != out.end(); ++it) {
      if (it->is_object() && it->contains(key) && (*it)[key] == e[key]) {
        found = true;
        if (del) {
          out.erase(it);
        } else {
          *it = StrategicMerge(*it, e, "");
        }
        break;
      }
    }
    if (!found && !del) out.push_back(StrategicMerge(nlohmann::json::object(), e, ""));
  }
  return out;
}

nlohmann::json StrategicMerge(const nlohmann::json& target, const nlohmann::json& patch,
                              const std::string& field) {
  if (!patch.is_object()) return patch;
  if (patch.value("$patch", "") == "delete") return nullptr;
  nlohmann::json out = target.is_object() ? target : nlohmann::json::object();
  if (patch.value("$patch", "") == "replace") {
    out = nlohmann::json::object();
  }
  if (patch.contains("$retainKeys") && patch["$retainKeys"].is_array()) {
    nlohmann::json kept = nlohmann::json::object();
    for (const auto& k : patch["$retainKeys"]) {
      if (k.is_string() && out.contains(k.get<std::string>())) kept[k.get<std::string>()] = out[k.get<std::string>()];
    }
    out = kept;
  }
  std::map<std::string, nlohmann::json> orders;
  for (const auto& [k, v] : patch.items()) {
    if (k == "$patch" || k == "$retainKeys") continue;
    if (absl::StartsWith(k, "$setElementOrder/")) {
      orders[k.substr(17)] = v;
      continue;
    }
    if (absl::StartsWith(k, "$deleteFromPrimitiveList/")) {
      std::string f = k.substr(25);
      if (out.contains(f) && out[f].is_array() && v.is_array()) {
        nlohmann::json kept = nlohmann::json::array();
        for (const auto& x : out[f]) {
          if (std::find(v.begin(), v.end(), x) == v.end()) kept.push_back(x);
        }
        out[f] = kept;
      }
      continue;
    }
    if (v.is_null()) {
      out.erase(k);
    } else if (v.is_object()) {
      nlohmann::json merged = StrategicMerge(out.contains(k) ? out[k] : nlohmann::json(), v, k);
      if (merged.is_null()) {
        out.erase(k);
      } else {
        out[k] = merged;
      }
    } else if (v.is_array()) {
      out[k] = MergeList(out.contains(k) ? out[k] : nlohmann::json(), v, k, field);
    } else {
      out[k] = v;
    }
  }
  // Apply $setElementOrder: reorder the list by the given keys, leaving others at the end.
  for (const auto& [f, order] : orders) {
    if (!out.contains(f) || !out[f].is_array() || !order.is_array()) continue;
    const char* key = MergeKeyFor(f);
    nlohmann::json sorted = nlohmann::json::array();
    nlohmann::json rest = out[f];
    for (const auto& o : order) {
      for (auto it = rest.begin(); it != rest.end(); ++it) {
        bool same = key != nullptr && o.is_object() && it->is_object() && o.contains(key)
                        ? (*it).value(key, nlohmann::json()) == o[key]
                        : *it == o;
        if (same) {
          sorted.push_back(*it);
          rest.erase(it);
          break;
        }
      }
    }
    for (const auto& r : rest) sorted.push_back(r);
    out[f] = sorted;
  }
  return out;
}

}  // namespace

nlohmann::json MergePatch(const nlohmann::json& target, const nlohmann::json& patch) {
  if (!patch.is_object()) return patch;
  nlohmann::json out = target.is_object() ? target : nlohmann::json::object();
  for (const auto& [k, v] : patch.items()) {
    if (v.is_null()) {
      out.erase(k);
    } else {
      out[k] = MergePatch(out.contains(k) ? out[k] : nlohmann::json(), v);
    }
  }
  return out;
}

absl::StatusOr<nlohmann::json> JsonPatch(const nlohmann::json& target, const nlohmann::json& patch) {
  if (!patch.is_array()) return absl::InvalidArgumentError("json patch: expected an array of operations");
  try {
    return target.patch(patch);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("json patch: ", e.what()));
  }
}

absl::StatusOr<nlohmann::json> StrategicMergePatch(const nlohmann::json& target,
                                                   const nlohmann::json& patch) {
  if (!patch.is_object()) {
    return absl::InvalidArgumentError("strategic merge patch: expected a JSON object");
  }
  return StrategicMerge(target, patch, "");
}

}  // namespace tandem::kube::testing
