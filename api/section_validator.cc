#include "api/section_validator.h"

#include <exception>

namespace tandem::api {

void SectionValidators::Add(const std::string& section, SectionValidator validator) {
  validators_[section].push_back(std::move(validator));
}

bool SectionValidators::Run(const std::string& section, const nlohmann::json& value,
                            const nlohmann::json& spec, const std::string& path,
                            FieldErrors* errors) const {
  auto it = validators_.find(section);
  if (it == validators_.end() || it->second.empty()) return false;
  for (const SectionValidator& v : it->second) {
    try {
      v(value, spec, path, errors);
    } catch (const std::exception& e) {
      errors->push_back({path, std::string("validator failed: ") + e.what()});
    }
  }
  return true;
}

}  // namespace tandem::api
