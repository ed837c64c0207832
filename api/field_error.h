// A problem with one field of a manifest: `spec.workers.count: must be >= 1, got 0`.
// Dependency-free on purpose: the trainer's section validators include it without pulling in api/.
#pragma once

#include <string>
#include <vector>

namespace tandem::api {

struct FieldError {
  std::string path;     // "spec.workers.count", "spec.model.layers[2].numFilters"; "" = the document
  std::string message;  // what is wrong, with the offending value where it helps

  std::string ToString() const { return path.empty() ? message : path + ": " + message; }
  bool operator==(const FieldError&) const = default;
};

using FieldErrors = std::vector<FieldError>;

// Joins a parent path and a child key the way kubectl prints them: "spec" + "workers" ->
// "spec.workers"; keys that contain '.' or '/' are bracketed: "requests[nvidia.com/gpu]".
inline std::string JoinPath(const std::string& parent, const std::string& key) {
  if (key.find_first_of("./") != std::string::npos) return parent + "[" + key + "]";
  return parent.empty() ? key : parent + "." + key;
}
inline std::string IndexPath(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

}  // namespace tandem::api
