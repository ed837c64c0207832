// Types shared by the TrainingJob and Queue APIs: object metadata, resource lists, conditions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "api/field_error.h"
#include "api/quantity.h"
#include "nlohmann/json.hpp"

namespace tandem::api {

inline constexpr char kGroup[] = "tandem.dev";
inline constexpr char kVersion[] = "v1alpha1";
inline constexpr char kApiVersion[] = "tandem.dev/v1alpha1";
inline constexpr char kResourceCpu[] = "cpu";
inline constexpr char kResourceMemory[] = "memory";
inline constexpr char kResourceGpu[] = "nvidia.com/gpu";

// metadata: the fields Tandem reads, typed; every other field the API server sends
// (managedFields, ownerReferences, finalizers, ...) is kept in `extra` so objects round-trip.
struct ObjectMeta {
  std::string name;
  std::string namespace_;  // empty for cluster-scoped objects; TrainingJobs default to "default"
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
  std::string creation_timestamp;  // RFC 3339, set by the API server
  std::string deletion_timestamp;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  nlohmann::json extra = nlohmann::json::object();

  bool operator==(const ObjectMeta&) const = default;
};

// Resource name -> quantity. Names: cpu, memory, nvidia.com/gpu.
using ResourceList = std::map<std::string, Quantity>;

struct ResourceRequirements {
  ResourceList requests;
  ResourceList limits;
  bool operator==(const ResourceRequirements&) const = default;
};

// A status condition as Kubernetes' metav1.Condition (minus observedGeneration).
struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;  // CamelCase, machine-readable
  std::string message;
  std::string last_transition_time;  // RFC 3339
  bool operator==(const Condition&) const = default;
};

// Sets (or adds) condition `type`. lastTransitionTime changes only when the status changes, as
// Kubernetes' meta.SetStatusCondition does. Returns true when anything changed.
bool SetCondition(std::vector<Condition>* conditions, const std::string& type,
                  const std::string& status, const std::string& reason, const std::string& message,
                  const std::string& now_rfc3339);
// The condition `type`, or nullptr.
const Condition* FindCondition(const std::vector<Condition>& conditions, const std::string& type);

// --- JSON helpers shared by the parsers (values of the wrong type are ignored: the schema check
// has already reported them) ---
ObjectMeta ParseObjectMeta(const nlohmann::json& metadata, const std::string& path, FieldErrors* errors);
nlohmann::json ObjectMetaToJson(const ObjectMeta& meta);
ResourceList ParseResourceList(const nlohmann::json& value);
nlohmann::json ResourceListToJson(const ResourceList& list);
std::vector<Condition> ParseConditions(const nlohmann::json& value);
nlohmann::json ConditionsToJson(const std::vector<Condition>& conditions);

// Validation helpers: Kubernetes name rules. Each returns "" when valid, else what is wrong.
std::string CheckDns1123Label(const std::string& value, size_t max_len = 63);
std::string CheckDns1123Subdomain(const std::string& value);
std::string CheckDns1035Label(const std::string& value, size_t max_len = 63);

}  // namespace tandem::api
