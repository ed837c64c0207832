// The trainer's sections of a TrainingJob spec (spec.model, spec.optimizer, spec.data, plus
// spec.passes and spec.trainer.threads), parsed and validated without any compute backend: this
// is the light library (tandem_trainer_spec) that `tandem validate` links.
//
//   std::vector<FieldError> errors = ValidateTrainerSections(job["spec"]);
//   for (const auto& e : errors) std::cerr << e.ToString() << "\n";
//   // spec.model.layers[2].numFilters: layer 'conv2' (conv2d): must be >= 1, got 0
//
// The per-section functions have the shape of tandem::api::SectionValidator
// (api/section_validator.h) apart from the FieldError type, which has the same two fields
// (path, message); TrainerSectionValidators() adapts them. Every binary that reads a manifest
// (`tandem`, tandem-trainer, tandem-pserver, tandem-operator) passes that set to the API's parse,
// so all of them accept and refuse the same manifests with the same messages.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/section_validator.h"
#include "nlohmann/json.hpp"
#include "trainer/data/data_config.h"
#include "trainer/layers/attr_reader.h"
#include "trainer/model/memory_estimate.h"
#include "trainer/model/model_def.h"
#include "trainer/optim/optimizer_config.h"

namespace tandem::trainer {

struct TrainerSpec {
  ModelDef model;
  OptimizerConfig optimizer;
  data::DataConfig data;
  int64_t passes = 1;   // spec.passes
  int threads = 0;      // spec.trainer.threads (0: all cores)
};

struct SpecOptions {
  // Check that data files exist (off where the data lives elsewhere, as for the operator).
  bool check_files = false;
};

// Every problem in the trainer's sections of `spec` (the TrainingJob's spec object), each with
// its full path ("spec.model.layers[2].numFilters"). Empty when valid. Never throws.
std::vector<FieldError> ValidateTrainerSections(const nlohmann::json& spec,
                                                const SpecOptions& options = {});

// SectionValidator-shaped validators: `section` is spec.<name>, `path` is "spec.<name>".
void ValidateModelSection(const nlohmann::json& section, const nlohmann::json& spec,
                          const std::string& path, std::vector<FieldError>* errors);
void ValidateOptimizerSection(const nlohmann::json& section, const nlohmann::json& spec,
                              const std::string& path, std::vector<FieldError>* errors);
void ValidateDataSection(const nlohmann::json& section, const nlohmann::json& spec,
                         const std::string& path, std::vector<FieldError>* errors);

// The trainer's memory in a job against its budget: the estimate (memory_estimate.h) of spec.model
// with spec.optimizer and spec.data.batchSize, leaving out what the job's pservers hold
// (embedding tables; with spec.sync.dense: pserver, the dense optimizer state). The budget is
// spec.trainer.resources.limits.memory when set (the wall the process hits), else
// requests.memory (what the scheduler reserves; default 2Gi).
struct TrainerMemoryCheck {
  MemoryEstimate estimate;
  int64_t budget_bytes = 0;
  std::string budget_field;  // "spec.trainer.resources.limits.memory" or ".requests.memory"
  bool fits() const { return estimate.total_bytes() <= budget_bytes; }
  // "at least 3.2 GiB: parameters ... does not fit spec.trainer.resources.requests.memory (2 GiB)"
  std::string Explain() const;
};
// `spec` after defaults (as section validators get it). nullopt when the model, optimizer or
// batch size are invalid (their own validators report them) or the budget is missing.
std::optional<TrainerMemoryCheck> CheckTrainerMemory(const nlohmann::json& spec);
// SectionValidator-shaped, run with spec.model: a model that does not fit is an error at the
// budget's field.
void ValidateTrainerMemory(const nlohmann::json& section, const nlohmann::json& spec,
                           const std::string& path, std::vector<FieldError>* errors);

// The validators of spec.model, spec.data and spec.optimizer, for api::ParseTrainingJob
// (check_files off: the data may live where the validating binary cannot see it).
api::SectionValidators TrainerSectionValidators();

// Parses the trainer's sections; InvalidArgument listing every problem, one per line.
absl::StatusOr<TrainerSpec> ParseTrainerSpec(const nlohmann::json& spec,
                                             const SpecOptions& options = {});

}  // namespace tandem::trainer
