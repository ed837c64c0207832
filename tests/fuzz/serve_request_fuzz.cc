// tandem-serve's predict request parser (serve/request.h) on arbitrary bytes, against a signature
// with every kind of serving input (dense features, multi-hot fields, token sequences). Never
// crashes; a refusal is InvalidArgument with a message that names a field; an accepted request
// holds exactly what the signature says, and its response and error renderings are valid JSON.
// The parser's fast path (internal::ParsePredictRequestFast) answers only for requests the general
// parser accepts, with bit-identical examples.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "nlohmann/json.hpp"
#include "serve/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tandem::trainer::InputSource;
  static const tandem::serve::Signature sig = [] {
    tandem::serve::Signature s;
    s.inputs = {{.name = "x", .source = InputSource::kFeatures, .model_input = 0, .size = 4},
                {.name = "ids", .source = InputSource::kFields, .model_input = 1, .size = 3},
                {.name = "words", .source = InputSource::kTokens, .model_input = 2, .size = 5, .vocab = 10}};
    s.output_size = 2;
    s.output = "probabilities";
    return s;
  }();
  const tandem::serve::RequestLimits limits{.max_examples = 16, .max_ids_per_field = 8};
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto parsed = tandem::serve::ParsePredictRequest(body, sig, limits);
  if (auto fast = tandem::serve::internal::ParsePredictRequestFast(body, sig, limits)) {
    auto general = tandem::serve::internal::ParsePredictRequestGeneral(body, sig, limits);
    if (!general.ok() || general->size() != fast->size()) std::abort();
    for (size_t i = 0; i < fast->size(); ++i) {
      for (size_t k = 0; k < 3; ++k) {
        const auto& a = (*fast)[i].inputs[k];
        const auto& b = (*general)[i].inputs[k];
        if (a.ids != b.ids || a.offsets != b.offsets || a.values.size() != b.values.size()) std::abort();
        if (!a.values.empty() && std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)) != 0)
          std::abort();
      }
    }
  }
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    const std::string msg(parsed.status().message());
    if (msg.empty() || msg.find(": ") == std::string::npos) std::abort();
    if (nlohmann::json::parse(tandem::serve::RenderError(400, msg), nullptr, false).is_discarded()) std::abort();
    return 0;
  }
  if (parsed->empty() || parsed->size() > limits.max_examples) std::abort();
  for (const auto& e : *parsed) {
    if (e.inputs.size() != 3) std::abort();
    if (e.inputs[0].values.size() != 4) std::abort();
    if (e.inputs[1].offsets.size() != 4 || e.inputs[1].offsets.back() != static_cast<int32_t>(e.inputs[1].ids.size()))
      std::abort();
    for (int32_t id : e.inputs[1].ids)
      if (id < 0) std::abort();
    if (e.inputs[2].ids.empty() || e.inputs[2].ids.size() > 5) std::abort();
    for (int32_t id : e.inputs[2].ids)
      if (id < 0 || id >= 10) std::abort();
  }
  std::vector<float> out(parsed->size() * 2, 0.5f);
  if (nlohmann::json::parse(tandem::serve::RenderPredictResponse(1, 2, out, 2), nullptr, false).is_discarded())
    std::abort();
  return 0;
}
