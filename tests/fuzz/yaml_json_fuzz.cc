// YamlToJson on arbitrary bytes: never crashes, hangs or exceeds its limits, and what it accepts
// is JSON every consumer can write back (nlohmann's strict dump, as the Kubernetes client uses).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/yaml_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tandem::YamlLimits limits;
  limits.max_nodes = 1 << 16;  // the default (1M) is legal but slow per input under ASan
  auto docs = tandem::YamlToJson(text, "fuzz.yaml", limits);
  if (!docs.ok()) return 0;
  if (docs->size() > limits.max_documents) std::abort();
  for (const nlohmann::json& doc : *docs) {
    std::string out = doc.dump();  // throws (and so aborts) on a string that is not UTF-8
    const nlohmann::json back = nlohmann::json::parse(out);  // throws (aborts) if not JSON
    (void)back;
  }
  return 0;
}
