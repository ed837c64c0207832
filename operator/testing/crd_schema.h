// CrdSchema: what kube-apiserver does to a custom resource with its CRD version's structural
// schema (`openAPIV3Schema`), for the API server stand-in (fake_api_server.h):
//
//   CrdSchema schema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]);
//   NormalizeNumbers(obj);                                 // 1.0 -> 1, as the apiserver decodes JSON
//   std::vector<std::string> unknown = schema.Prune(obj);  // {"spec.replicas", "metadata.label"}
//   schema.Default(obj);                                   // spec.passes: 1, ...
//   std::vector<FieldError> errors = schema.Validate(obj); // spec.guaranteed.cpu: Required value
//
// The three steps follow k8s.io/apiextensions-apiserver (pruning/algorithm.go, defaulting/
// prunenulls.go and algorithm.go) and the kube-openapi validator it runs (validate/*.go), and the
// errors carry kube-apiserver's words, checked against kube-apiserver v1.36.3 (docs/operator.md,
// "The stand-in and the real apiserver"). What is covered: type (object, array, string,
// integer, number, boolean; an integral JSON number is an integer), nullable, required,
// properties, additionalProperties (a schema or a boolean), items, enum, minimum/maximum (and
// exclusive), multipleOf, minLength/maxLength, pattern (RE2, as Go's regexp), minItems/maxItems,
// uniqueItems, minProperties/maxProperties, format (int32/int64/float/double ranges, date-time,
// date), x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields, anyOf/allOf/oneOf/not.
// Not covered: CEL (x-kubernetes-validations), x-kubernetes-embedded-resource, list-type
// uniqueness (x-kubernetes-list-type set/map), ratcheting of unchanged invalid fields on update,
// and formats other than the ones above (they are accepted, as for unknown formats).
//
// Thread-compatible: a const CrdSchema may be used from many threads.
#pragma once

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace tandem::kube::testing {

// One validation error, as k8s.io/apimachinery's field.Error renders into a Status cause.
struct FieldError {
  // The cause's reason: FieldValueRequired, FieldValueInvalid, FieldValueTypeInvalid,
  // FieldValueNotSupported, FieldValueTooLong, FieldValueTooMany.
  std::string reason;
  // The field path ("spec.guaranteed.cpu", "spec.restartPolicy.retryableExitCodes[2]"), or
  // "<nil>" for the errors the apiserver reports without one (e.g. the anyOf summary).
  std::string field;
  // What follows the field: "Required value", "Invalid value: 0: spec.passes in body should be
  // greater than or equal to 1", "Unsupported value: \"x\": supported values: \"ring\", ...".
  std::string message;

  std::string ToString() const { return field + ": " + message; }
  bool operator==(const FieldError& o) const {
    return reason == o.reason && field == o.field && message == o.message;
  }
};

class CrdSchema {
 public:
  // `open_api_v3_schema`: a CRD version's schema.openAPIV3Schema (an object).
  explicit CrdSchema(nlohmann::json open_api_v3_schema);

  const nlohmann::json& schema() const { return schema_; }

  // Pruning: removes every field the schema does not declare, except under
  // x-kubernetes-preserve-unknown-fields (its declared properties are still pruned) and what an
  // additionalProperties schema admits; apiVersion, kind and metadata are kept at the root, and
  // metadata loses the fields ObjectMeta does not have. Returns the removed fields' paths
  // ("metadata.label", "spec.replicas", "spec.list[0].x"), metadata's first, as the apiserver
  // lists them in its "unknown field" warnings and strict-decoding errors.
  std::vector<std::string> Prune(nlohmann::json& object) const;

  // Defaulting: drops nulls where the schema is not nullable and has no default, then sets every
  // absent (or null, when not nullable) field that has a `default`, recursing into the defaults
  // it inserted, as the apiserver does on create, update and read.
  void Default(nlohmann::json& object) const;

  // Validation of the whole object (the caller leaves out what is not validated, e.g. the status
  // of a resource with a status subresource). Every error, none dropped; duplicates (same
  // message) once, as the apiserver reports them.
  std::vector<FieldError> Validate(const nlohmann::json& object) const;

  // Validation of object["status"] against the schema's `status` property, as the status
  // subresource validates: field paths under "status.", messages relative to it. No errors when
  // the object has no status.
  std::vector<FieldError> ValidateStatus(const nlohmann::json& object) const;

 private:
  nlohmann::json schema_;
};

// JSON numbers as kube-apiserver decodes them: an integral number that fits in int64 (2, 2.0,
// 1e3) becomes an integer, anything else a float. Recursive.
void NormalizeNumbers(nlohmann::json& value);

// The message of the apiserver's 422 for `errors` on <kind>.<group> "name":
// `Queue.tandem.dev "q" is invalid: [spec.guaranteed.cpu: Required value, ...]` (no brackets for
// one error). REQUIRES: !errors.empty().
std::string InvalidMessage(const std::string& kind, const std::string& group,
                           const std::string& name, const std::vector<FieldError>& errors);

// The whole 422 Status object: reason Invalid, details {name, group, kind, causes[]}.
nlohmann::json InvalidStatus(const std::string& kind, const std::string& group,
                             const std::string& name, const std::vector<FieldError>& errors);

// Go's formatting, which the apiserver's messages use: strconv.Quote (%q) and %v of a float64
// ("1e+06", "0.5", "-2.0000005e+06").
std::string GoQuote(const std::string& s);
std::string GoFloat(double v);

}  // namespace tandem::kube::testing
