// Manifest validation on arbitrary bytes, both ways manifests arrive: YAML text (tandem validate,
// tandem run) and JSON documents (the Kubernetes API). Never crashes; every problem has a message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const auto& p : tandem::api::ValidateManifestText(text, "fuzz.yaml")) {
    if (p.error.message.empty()) std::abort();
  }
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_discarded()) {
    for (const auto& e : tandem::api::ValidateDocument(doc)) {
      if (e.message.empty()) std::abort();
    }
  }
  return 0;
}
