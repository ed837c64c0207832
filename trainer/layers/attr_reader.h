// Typed reads of a layer's (or optimizer's) JSON attributes with defaults and range checks.
// Every problem becomes a FieldError naming the field; fields never read are reported as unknown,
// so a typo ("numFilter") is an error rather than a silently ignored setting. The values read,
// defaults included, are recorded in resolved(): two configurations that differ only in spelled-out
// defaults resolve to the same JSON.
#pragma once

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace tandem::trainer {

// An error in one field: `spec.model.layers[2].numFilters: must be >= 1, got 0`. The same layout
// as tandem::api::FieldError (api/field_error.h), so the API's section-validator hook can copy it.
// Inside a layer `path` is relative ("numFilters", "inputs[1]"); the model parser prefixes it.
struct FieldError {
  std::string path;
  std::string message;
  std::string ToString() const { return path.empty() ? message : path + ": " + message; }
  bool operator==(const FieldError& o) const = default;
};

class AttrReader {
 public:
  static constexpr int64_t kNoMin = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

  explicit AttrReader(const nlohmann::json& attrs) : attrs_(attrs) {}

  // An integer field; `def` when absent. Errors when not an integer or outside [min, max].
  int64_t Int(const std::string& field, int64_t def, int64_t min = kNoMin, int64_t max = kNoMax);
  // An integer field that must be present.
  int64_t RequiredInt(const std::string& field, int64_t min = kNoMin, int64_t max = kNoMax);
  double Float(const std::string& field, double def, double min = -1e300, double max = 1e300);
  bool Bool(const std::string& field, bool def);
  // A string field that must be one of `allowed`.
  std::string Enum(const std::string& field, const std::string& def,
                   const std::vector<std::string>& allowed);
  // An integer or a pair [h, w]; returns {h, w}.
  std::pair<int64_t, int64_t> IntPair(const std::string& field, int64_t def, int64_t min);

  void Error(const std::string& field, const std::string& message) {
    errors_.push_back({field, message});
  }
  // Adds an "unknown field" error for every attribute not read. Call after the last read.
  void CheckNoUnknownFields();
  const std::vector<FieldError>& errors() const { return errors_; }
  const nlohmann::json& resolved() const { return resolved_; }

 private:
  const nlohmann::json* Find(const std::string& field);
  const nlohmann::json& attrs_;
  std::set<std::string> read_;
  nlohmann::json resolved_ = nlohmann::json::object();
  std::vector<FieldError> errors_;
};

}  // namespace tandem::trainer
