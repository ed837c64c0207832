// Validates manifest documents of any Tandem kind, as `tandem validate` does: YAML text or a
// file -> documents -> TrainingJob, Queue or Sweep by `kind` -> every problem, with its document.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/field_error.h"
#include "api/queue.h"
#include "api/section_validator.h"
#include "api/sweep.h"
#include "api/training_job.h"
#include "nlohmann/json.hpp"

namespace tandem::api {

struct DocumentProblem {
  int document = 0;  // 0-based index within the file; -1 when the file itself is at fault
  FieldError error;
};

// Validates one parsed document by its kind (TrainingJob, Queue or Sweep).
FieldErrors ValidateDocument(const nlohmann::json& document, const SectionValidators& validators);

// Reads a manifest file safely: regular files only (a device like /dev/zero or a FIFO is refused
// rather than read forever), "-" is stdin; at most `max_bytes`.
absl::StatusOr<std::string> ReadManifest(const std::string& path, size_t max_bytes);

// Reads `path` (YAML, one or more documents) and validates every document. A file that cannot
// be read or parsed yields one problem with document -1 and the parser's "line:col: what".
std::vector<DocumentProblem> ValidateManifestFile(const std::string& path,
                                                  const SectionValidators& validators);
std::vector<DocumentProblem> ValidateManifestText(const std::string& text, const std::string& source,
                                                  const SectionValidators& validators);

// The one way a binary that runs a job reads its manifest (`tandem run`, tandem-trainer,
// tandem-pserver): exactly one TrainingJob document, validated as `tandem validate` validates it
// (ValidateDocument with the same `validators`). InvalidArgument lists every problem, one line
// each, as "<path>: <field>: <what>", the same lines `tandem validate` prints.
absl::StatusOr<TrainingJob> LoadTrainingJob(const std::string& path,
                                            const SectionValidators& validators);

// The same for a file holding one Sweep (`tandem run sweep.yaml`).
absl::StatusOr<Sweep> LoadSweep(const std::string& path, const SectionValidators& validators);

// The same for a file holding one Queue (the operator's --default-queue).
absl::StatusOr<Queue> LoadQueue(const std::string& path, const SectionValidators& validators);

// The kind of the first document of `path` that names one (how `tandem run` picks what to run).
absl::StatusOr<std::string> ManifestKind(const std::string& path);

}  // namespace tandem::api
