// The patch formats the API server stand-in accepts (and the controller tests reuse):
// - JSON merge patch (RFC 7386): application/merge-patch+json;
// - JSON patch (RFC 6902): application/json-patch+json (add/remove/replace/move/copy/test);
// - strategic merge patch: application/strategic-merge-patch+json, as kubectl sends for built-in
//   types. Reproduced: lists of objects merge by their patch merge key for the well-known fields
//   (containers/initContainers/ephemeralContainers/volumes/env/ports by name or port, volumeMounts
//   by mountPath, conditions by type, ownerReferences by uid, imagePullSecrets by name), the
//   `$patch: delete|replace` directive in maps and list elements, `$retainKeys`,
//   `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>` (the order is applied), and
//   metadata.finalizers merged as a set. Not reproduced: merge keys read from OpenAPI extensions
//   of types not listed here (such lists are replaced, as a merge patch would).
#pragma once

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::kube::testing {

nlohmann::json MergePatch(const nlohmann::json& target, const nlohmann::json& patch);
absl::StatusOr<nlohmann::json> JsonPatch(const nlohmann::json& target, const nlohmann::json& patch);
absl::StatusOr<nlohmann::json> StrategicMergePatch(const nlohmann::json& target,
                                                   const nlohmann::json& patch);

}  // namespace tandem::kube::testing
