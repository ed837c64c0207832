// Server-side table output (Accept: application/json;as=Table;v=v1;g=meta.k8s.io), which is what
// `kubectl get` prints: a CRD's additionalPrinterColumns (simple JSONPath: .a.b, [N], [*],
// [?(@.field=="value")]), or a small built-in column set per type.
#pragma once

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace tandem::kube::testing {

// Evaluates a printer-column JSONPath ("{.status.phase}" braces optional) against `object`.
// Returns every match (empty when nothing matches).
std::vector<nlohmann::json> EvalJsonPath(const nlohmann::json& object, const std::string& path);

// "5s", "3m12s", "4h5m", "3d4h", "2y" like Kubernetes' human-readable ages.
std::string HumanDuration(double seconds);

// Builds a meta.k8s.io/v1 Table. `printer_columns` is a CRD version's additionalPrinterColumns
// (null for built-in defaults); `kind` picks the built-in columns (Pod, Service, Node, Event...).
// `include_object` is "None", "Metadata" (default) or "Object".
nlohmann::json BuildTable(const std::string& kind, const nlohmann::json& printer_columns,
                          const std::vector<nlohmann::json>& objects,
                          const std::string& resource_version, const std::string& include_object);

}  // namespace tandem::kube::testing
