// Resource types (group/version/plural) and object keys, and the REST paths built from them.
//
//   kube::kPods.ObjectPath("default", "w-0")            // /api/v1/namespaces/default/pods/w-0
//   kube::kTrainingJobs.ObjectPath("ml", "a", "status") // /apis/tandem.dev/v1alpha1/namespaces/ml/trainingjobs/a/status
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::kube {

struct Resource {
  std::string group;    // "" for the core group
  std::string version;  // "v1"
  std::string plural;   // "pods"
  std::string kind;     // "Pod"
  bool namespaced = true;

  // "v1" or "tandem.dev/v1alpha1".
  std::string ApiVersion() const;
  // The collection path; `ns` empty lists across namespaces (or the cluster-scoped collection).
  std::string CollectionPath(const std::string& ns) const;
  // The object path, with an optional subresource ("status").
  std::string ObjectPath(const std::string& ns, const std::string& name,
                          const std::string& subresource = "") const;
};

extern const Resource kPods;
extern const Resource kServices;
extern const Resource kSecrets;
extern const Resource kConfigMaps;
extern const Resource kNetworkPolicies;
extern const Resource kDeployments;
extern const Resource kPersistentVolumeClaims;
extern const Resource kEvents;
extern const Resource kNodes;
extern const Resource kNamespaces;
extern const Resource kLeases;
extern const Resource kCustomResourceDefinitions;
extern const Resource kTrainingJobs;
extern const Resource kQueues;
extern const Resource kSweeps;

// Namespace and name of one object. Cluster-scoped objects have an empty namespace.
struct ObjectKey {
  std::string ns;
  std::string name;
  // "ns/name", or "name" when cluster-scoped (client-go's MetaNamespaceKeyFunc).
  std::string String() const;
  static ObjectKey Parse(const std::string& key);
  static ObjectKey Of(const nlohmann::json& object);
  friend bool operator==(const ObjectKey&, const ObjectKey&) = default;
  friend auto operator<=>(const ObjectKey&, const ObjectKey&) = default;
};

// Small accessors over an object's metadata, safe on missing fields.
std::string NameOf(const nlohmann::json& object);
std::string NamespaceOf(const nlohmann::json& object);
std::string UidOf(const nlohmann::json& object);
std::string ResourceVersionOf(const nlohmann::json& object);
// The value at a dotted path ("status.phase"), or nullptr json when absent.
const nlohmann::json* FieldAt(const nlohmann::json& object, const std::string& dotted_path);

// The body of a PUT to `object`'s /status subresource: apiVersion, kind, metadata.name,
// namespace, uid and resourceVersion (the precondition: 409 when stale) and `status`, nothing
// else. The API server takes everything but status from the stored object, so sending the spec
// too (a job's whole model) would only cost encoding and decoding on both sides.
nlohmann::json StatusUpdateBody(const nlohmann::json& object, nlohmann::json status);

// An ownerReference to `owner` (controller=true, blockOwnerDeletion=true).
nlohmann::json ControllerRef(const nlohmann::json& owner);
// The uid of the controlling owner of `object`, or "".
std::string ControllerUidOf(const nlohmann::json& object);

// The current time as RFC 3339 ("2026-11-28T23:59:01Z") and with microseconds (MicroTime).
std::string NowRfc3339();
std::string NowMicroTime();
// Parses RFC 3339 (with or without fractional seconds) to seconds since the epoch.
absl::StatusOr<double> ParseRfc3339(const std::string& text);
std::string FormatRfc3339(double epoch_seconds, bool micro = false);

}  // namespace tandem::kube
