// Manifests are YAML on disk and JSON on the Kubernetes API; both are parsed by one code path
// over nlohmann::json. This converts YAML text to JSON safely: it never crashes or hangs on
// hostile input (binary bytes, deep nesting, alias bombs), and reports where parsing failed.
//
//   absl::StatusOr<std::vector<nlohmann::json>> docs = tandem::YamlToJson(text, "job.yaml");
//
// Scalars become JSON values as YAML 1.2's core schema reads them: null/~ -> null,
// true/false -> bool, integers and floats -> numbers, anything quoted or else -> string.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace tandem {

struct YamlLimits {
  size_t max_bytes = 16 << 20;  // input size
  int max_depth = 64;           // nesting of maps and sequences
  size_t max_nodes = 1 << 20;   // nodes after alias expansion (alias bombs)
  size_t max_documents = 64;
};

// Parses every document in `text`. `source` names the input in error messages ("job.yaml").
// Errors are InvalidArgument with "source:line:column: what".
absl::StatusOr<std::vector<nlohmann::json>> YamlToJson(const std::string& text,
                                                       const std::string& source,
                                                       const YamlLimits& limits = {});

// Reads a file and parses it with YamlToJson. NotFound / PermissionDenied name the file.
absl::StatusOr<std::vector<nlohmann::json>> YamlFileToJson(const std::string& path,
                                                           const YamlLimits& limits = {});

// The offset of the first byte of `s` that does not start a well-formed UTF-8 sequence (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or npos when all of it is UTF-8.
// YamlToJson refuses scalars that are not UTF-8, since JSON text must be.
size_t FirstInvalidUtf8(absl::string_view s);

}  // namespace tandem
