// The Prometheus text parser (the operator scraping a trainer's /metrics) on arbitrary bytes:
// never crashes, keeps its limits, and every sample it returns is well formed.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "operator/controller/prometheus_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  tandem::controller::PromParseLimits limits;
  limits.max_samples = 1000;
  limits.max_labels = 8;
  auto samples = tandem::controller::ParsePrometheusText(text, limits);
  if (!samples.ok()) return 0;
  if (samples->size() > limits.max_samples) std::abort();
  for (const auto& s : *samples) {
    if (s.name.empty() || s.labels.size() > limits.max_labels) std::abort();
    std::set<std::string> names;
    for (const auto& [k, v] : s.labels) {
      if (!names.insert(k).second) std::abort();  // label names are unique
    }
    if (tandem::controller::FindSample(*samples, s.name, s.labels) == nullptr) std::abort();
  }
  return 0;
}
