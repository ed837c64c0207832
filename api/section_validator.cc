#include "api/section_validator.h"

#include <exception>
#include <map>
#include <mutex>

namespace tandem::api {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, std::vector<SectionValidator>> validators;  // GUARDED_BY(mu)
};

Registry& GetRegistry() {
  static Registry* r = new Registry;
  return *r;
}

}  // namespace

void RegisterSectionValidator(const std::string& section, SectionValidator validator) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.validators[section].push_back(std::move(validator));
}

void ClearSectionValidators() {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.validators.clear();
}

bool RunSectionValidators(const std::string& section, const nlohmann::json& value,
                          const nlohmann::json& spec, const std::string& path, FieldErrors* errors) {
  std::vector<SectionValidator> validators;
  {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.validators.find(section);
    if (it == r.validators.end() || it->second.empty()) return false;
    validators = it->second;
  }
  for (const SectionValidator& v : validators) {
    try {
      v(value, spec, path, errors);
    } catch (const std::exception& e) {
      errors->push_back({path, std::string("validator failed: ") + e.what()});
    }
  }
  return true;
}

}  // namespace tandem::api
