// Manifest validation on arbitrary bytes, both ways manifests arrive: YAML text (tandem validate,
// tandem run) and JSON documents (the Kubernetes API), with the full set of section validators
// every binary uses (the model, data and optimizer sections too). Never crashes; every problem has
// a message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/manifest.h"
#include "trainer/model/trainer_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tandem::api::SectionValidators validators = tandem::trainer::TrainerSectionValidators();
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const auto& p : tandem::api::ValidateManifestText(text, "fuzz.yaml", validators)) {
    if (p.error.message.empty()) std::abort();
  }
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_discarded()) {
    for (const auto& e : tandem::api::ValidateDocument(doc, validators)) {
      if (e.message.empty()) std::abort();
    }
  }
  return 0;
}
