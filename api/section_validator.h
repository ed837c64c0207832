// The hook through which the trainer validates the inside of spec.model, spec.data and
// spec.optimizer, so that `tandem validate`, `tandem run` and the operator report the trainer's
// problems beside the API's, in one list. Dependency-free: nlohmann::json and the standard library.
//
//   // trainer/model/manifest_validation.cc (explicit registration, called from main()):
//   void RegisterTrainerValidators() {
//     tandem::api::RegisterSectionValidator("model",
//         [](const nlohmann::json& model, const nlohmann::json& spec, const std::string& path,
//            tandem::api::FieldErrors* errors) {
//           // path == "spec.model"; report "spec.model.layers[2].numFilters: must be > 0"
//           if (!model.contains("layers")) errors->push_back({path + ".layers", "required"});
//         });
//   }
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "api/field_error.h"
#include "nlohmann/json.hpp"

namespace tandem::api {

// section: the JSON object of the section (never null: the validator is not called when the
// section is absent; the API reports missing required sections itself). spec: the whole
// spec (after defaults), for cross-section checks (e.g. data.inputs against model.inputs).
// path: "spec.model" etc.; every FieldError path must start with it. Must not throw; must
// return promptly on any input (the input may be hostile).
using SectionValidator = std::function<void(const nlohmann::json& section, const nlohmann::json& spec,
                                            const std::string& path, FieldErrors* errors)>;

// section: "model", "data" or "optimizer". Several validators per section run in registration
// order. Thread-safe; call it at start-up, before manifests are validated.
void RegisterSectionValidator(const std::string& section, SectionValidator validator);

// Removes every registered validator (tests).
void ClearSectionValidators();

// Runs the validators of `section` (used by the TrainingJob parser). Returns false when none is
// registered for it. An exception thrown by a validator becomes a FieldError at `path`.
bool RunSectionValidators(const std::string& section, const nlohmann::json& value,
                          const nlohmann::json& spec, const std::string& path, FieldErrors* errors);

}  // namespace tandem::api
