// The field tree of the TrainingJob, Queue and Sweep APIs: names, types, enums and ranges, in one place.
// The parsers check every manifest against it (unknown fields, wrong types, out-of-range values,
// all reported, never just the first), and tests/api/crd_drift_test walks it beside the CRDs in
// crds/ so the C++ types and the OpenAPI schemas cannot drift apart.
#pragma once

#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "api/field_error.h"
#include "nlohmann/json.hpp"

namespace tandem::api {

enum class FieldType {
  kObject,     // known properties only (`fields`)
  kString,     // optional `enums`
  kInteger,    // optional minimum/maximum
  kNumber,     // optional minimum/maximum; finite
  kBoolean,
  kQuantity,   // Kubernetes quantity: a string ("500m") or a number; minimum applies to the value
  kDateTime,   // RFC 3339 string
  kArray,      // `fields` holds exactly one entry: the item schema
  kStringMap,  // map of string to string (labels, nodeSelector)
  kOpen,       // any object: the trainer validates it (spec.model/data/optimizer), or metadata
  kAny,        // any JSON value (a Sweep's choice values); its user checks it
};

absl::string_view FieldTypeName(FieldType type);

struct FieldSpec {
  std::string name;
  FieldType type = FieldType::kObject;
  std::vector<std::string> enums;
  std::optional<double> minimum;
  std::optional<double> maximum;
  std::vector<FieldSpec> fields;

  // The child named `name`, or nullptr.
  const FieldSpec* Find(absl::string_view child) const;
};

// The whole TrainingJob / Queue object: apiVersion, kind, metadata, spec, status.
const FieldSpec& TrainingJobSchema();
const FieldSpec& QueueSchema();
// The Sweep; its spec.template.spec is TrainingJobSchema()'s spec.
const FieldSpec& SweepSchema();

// Checks `value` (at `path`) against `spec`: unknown fields, types, enums, ranges. A JSON null is
// an unset field, as in Kubernetes. Appends one FieldError per problem.
void CheckAgainstSchema(const nlohmann::json& value, const FieldSpec& spec, const std::string& path,
                        FieldErrors* errors);

// A short description of a JSON value for messages: `"abc"`, `12`, `an object`, `a list`.
std::string DescribeValue(const nlohmann::json& value);

}  // namespace tandem::api
