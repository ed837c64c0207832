// `tandem validate FILE...`: checks TrainingJob and Queue manifests with the same code the
// operator and `tandem run` use, and prints every problem on its own line:
//
//   job.yaml: spec.workers.count: must be >= 1, got 0
//   all.yaml#2: spec.weight: must be >= 1, got 0      (document 2 of a multi-document file)
//
// and one "FILE: valid: TrainingJob default/name" line per valid document, followed, for a valid
// TrainingJob, by the notes the caller asks for (`tandem validate`: the trainer's memory
// estimate against its budget, trainer::CheckTrainerMemory):
//
//   job.yaml: trainer memory: at least 40.2 MiB: parameters 13 MiB, ...; fits spec.trainer.resources.requests.memory (2 GiB)
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

#include "api/section_validator.h"

namespace tandem::cli {

// Returns the exit code: 0 when every document of every file is valid, 1 otherwise. "-" reads
// standard input. Never throws.
// `validators`: the trainer's (trainer::TrainerSectionValidators()), as every binary passes them.
// `notes`: each returns a line about a valid job's spec (after defaults), or "" for none.
using SpecNote = std::function<std::string(const nlohmann::json& spec)>;
int RunValidate(const std::vector<std::string>& files, const api::SectionValidators& validators,
                std::ostream& out, const std::vector<SpecNote>& notes = {});

}  // namespace tandem::cli
