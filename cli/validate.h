// `tandem validate FILE...`: checks TrainingJob and Queue manifests with the same code the
// operator and `tandem run` use, and prints every problem on its own line:
//
//   job.yaml: spec.workers.count: must be >= 1, got 0
//   all.yaml#2: spec.weight: must be >= 1, got 0      (document 2 of a multi-document file)
//
// and one "FILE: valid: TrainingJob default/name" line per valid document.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "api/section_validator.h"

namespace tandem::cli {

// Returns the exit code: 0 when every document of every file is valid, 1 otherwise. "-" reads
// standard input. Never throws.
// `validators`: the trainer's (trainer::TrainerSectionValidators()), as every binary passes them.
int RunValidate(const std::vector<std::string>& files, const api::SectionValidators& validators,
                std::ostream& out);

}  // namespace tandem::cli
