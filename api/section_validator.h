// The hook through which the trainer validates the inside of spec.model, spec.data and
// spec.optimizer, so that every binary (`tandem validate`, `tandem run`, tandem-trainer,
// tandem-pserver, the operator) reports the trainer's problems beside the API's, in one list.
// There is no global registry: a SectionValidators value is passed to every parse
// (api::ParseTrainingJob), so a binary cannot forget the trainer's rules without saying so. The
// full set is trainer::TrainerSectionValidators() (trainer/model/trainer_spec.h); an empty
// SectionValidators{} checks the API's rules only (the api tests).
// Dependency-free: nlohmann::json and the standard library.
//
//   api::SectionValidators v;
//   v.Add("model", [](const nlohmann::json& model, const nlohmann::json& spec,
//                     const std::string& path, tandem::api::FieldErrors* errors) {
//     // path == "spec.model"; report "spec.model.layers[2].numFilters: must be > 0"
//     if (!model.contains("layers")) errors->push_back({path + ".layers", "required"});
//   });
//   api::TrainingJob job = api::ParseTrainingJob(object, v, &errors);
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "api/field_error.h"
#include "nlohmann/json.hpp"

namespace tandem::api {

// section: the JSON object of the section (never null: the validator is not called when the
// section is absent; the API reports missing required sections itself). spec: the whole
// spec (after defaults), for cross-section checks (e.g. data.inputs against model.inputs).
// path: "spec.model" etc.; every FieldError path starts with it, except a cross-section check's,
// which names the field its section does not fit (the trainer's memory budget). Must not throw; must
// return promptly on any input (the input may be hostile).
using SectionValidator = std::function<void(const nlohmann::json& section, const nlohmann::json& spec,
                                            const std::string& path, FieldErrors* errors)>;

// The validators of the sections "model", "data" and "optimizer". A value; const use is
// thread-safe.
class SectionValidators {
 public:
  // Several validators per section run in the order they were added.
  void Add(const std::string& section, SectionValidator validator);
  // Runs the validators of `section`. Returns false when there is none for it. An exception
  // thrown by a validator becomes a FieldError at `path`.
  bool Run(const std::string& section, const nlohmann::json& value, const nlohmann::json& spec,
           const std::string& path, FieldErrors* errors) const;
  bool empty() const { return validators_.empty(); }

 private:
  std::map<std::string, std::vector<SectionValidator>> validators_;
};

}  // namespace tandem::api
