#include "cli/trainer_validators.h"

#include "api/section_validator.h"

#ifdef TANDEM_HAVE_TRAINER_SPEC
#include "trainer/model/trainer_spec.h"
#endif

namespace tandem::cli {

#ifdef TANDEM_HAVE_TRAINER_SPEC
namespace {

using TrainerValidator = void (*)(const nlohmann::json&, const nlohmann::json&, const std::string&,
                                  std::vector<trainer::FieldError>*);

api::SectionValidator Adapt(TrainerValidator validate) {
  return [validate](const nlohmann::json& section, const nlohmann::json& spec, const std::string& path,
                    api::FieldErrors* errors) {
    std::vector<trainer::FieldError> found;
    validate(section, spec, path, &found);
    for (trainer::FieldError& e : found) errors->push_back({std::move(e.path), std::move(e.message)});
  };
}

}  // namespace

bool RegisterTrainerValidators() {
  api::RegisterSectionValidator("model", Adapt(&trainer::ValidateModelSection));
  api::RegisterSectionValidator("data", Adapt(&trainer::ValidateDataSection));
  api::RegisterSectionValidator("optimizer", Adapt(&trainer::ValidateOptimizerSection));
  return true;
}
#else
bool RegisterTrainerValidators() { return false; }
#endif

}  // namespace tandem::cli
