// Label and field selectors, as the API server parses them from ?labelSelector= / ?fieldSelector=.
//
// Label selectors: comma-separated requirements, each `key=value`, `key==value`, `key!=value`,
// `key in (a,b)`, `key notin (a,b)`, `key` (exists) or `!key` (does not exist).
// Field selectors: `path=value`, `path==value`, `path!=value`, where path is a dotted field path
// ("metadata.name", "status.phase", "involvedObject.uid"); a missing field compares as "".
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::kube {

class LabelSelector {
 public:
  static absl::StatusOr<LabelSelector> Parse(const std::string& text);
  // Equality selector from a map (the form used in a Service's or a controller's selector).
  static LabelSelector FromMap(const std::map<std::string, std::string>& labels);
  bool Matches(const nlohmann::json& object) const;  // looks at metadata.labels
  bool MatchesLabels(const nlohmann::json& labels) const;
  bool empty() const { return reqs_.empty(); }
  std::string String() const { return text_; }

 private:
  enum class Op { kEq, kNe, kIn, kNotIn, kExists, kNotExists };
  struct Req {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };
  std::vector<Req> reqs_;
  std::string text_;
};

class FieldSelector {
 public:
  static absl::StatusOr<FieldSelector> Parse(const std::string& text);
  bool Matches(const nlohmann::json& object) const;
  bool empty() const { return reqs_.empty(); }
  // The value `path=` requires, or nullptr (lets a server narrow a lookup by metadata.name).
  const std::string* EqualityValue(const std::string& path) const;

 private:
  struct Req {
    std::string path;
    bool negate;
    std::string value;
  };
  std::vector<Req> reqs_;
};

}  // namespace tandem::kube
