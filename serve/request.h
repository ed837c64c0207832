// Predict requests: the model's input signature, the JSON request parser (untrusted input:
// fuzzed by tests/fuzz/serve_request_fuzz.cc) and the JSON response.
//
//   POST /v1/predict
//   {"instances": [{"image": [0.0, 0.1, ...784 numbers]}, ...]}               features input
//   {"instances": [{"fields": [[12, 7], 3, [], ...one entry per field]}]}     multi-hot ids
//   -> {"model": {"version": 7, "step": 1200}, "predictions": [[0.01, 0.93, ...], ...]}
//
// Every problem is an InvalidArgument whose message starts with the path of the field at fault:
// "instances[3].image: expected 784 numbers, got 10"; "instances[0].fields[2][1]: feature id
// must be an integer in [0, 2147483647], got -4"; "instances[1].colour: unknown input (inputs:
// image)". Nested arrays of numbers are accepted for dense inputs (row-major).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/model/model_def.h"

namespace tandem::serve {

// One input a request must give per example.
struct InputSpec {
  std::string name;
  trainer::InputSource source = trainer::InputSource::kFeatures;
  int model_input = -1;  // index among the model's inputs
  // features: numbers per example; fields: number of fields; tokens: longest sequence.
  int64_t size = 0;
  int64_t vocab = 0;  // tokens: ids must be below it (0: unchecked)
};

struct Signature {
  std::vector<InputSpec> inputs;
  int64_t output_size = 0;  // floats per example in the response
  std::string output;       // "probabilities" (softmax), "probability" (sigmoid) or "scores"
  const InputSpec* Find(absl::string_view name) const;
};

// One input's value for one example.
struct InputValue {
  std::vector<float> values;    // features
  std::vector<int32_t> ids;     // fields (concatenated) and tokens
  std::vector<int32_t> offsets; // fields: size + 1 starts into ids
};

struct Example {
  std::vector<InputValue> inputs;  // in signature order
};

struct RequestLimits {
  size_t max_examples = 4096;     // instances per request
  size_t max_ids_per_field = 4096;
};

// Parses and validates a request body against `sig`.
absl::StatusOr<std::vector<Example>> ParsePredictRequest(absl::string_view body, const Signature& sig,
                                                         const RequestLimits& limits);

namespace internal {
// ParsePredictRequest's two halves, for its tests and fuzz target: a fast scanner for the common
// shape that answers only when it accepts (nullopt: "not mine"), and the general parser, which
// decides everything else and writes every error message. Both must agree where the fast one answers.
std::optional<std::vector<Example>> ParsePredictRequestFast(absl::string_view body, const Signature& sig,
                                                            const RequestLimits& limits);
absl::StatusOr<std::vector<Example>> ParsePredictRequestGeneral(absl::string_view body, const Signature& sig,
                                                                const RequestLimits& limits);
}  // namespace internal

// {"model": {...}, "predictions": [[...], ...]} with `per_example` floats per example.
std::string RenderPredictResponse(int64_t version, int64_t step, const std::vector<float>& outputs,
                                  int64_t per_example);

// {"error": {"code": 400, "message": "..."}}
std::string RenderError(int code, absl::string_view message);

}  // namespace tandem::serve
