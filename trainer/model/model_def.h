// A model as data: its inputs and its layers in order. Built either from the declarative
// `spec.model` section (ParseModelDef) or with the fluent C++ builder (model_builder.h); both give
// the same ModelDef for the same model.
//
//   spec.model:
//     inputs:
//       - {name: image, source: features, shape: [1, 28, 28]}
//       - {name: label, source: labels}
//     layers:
//       - {name: conv1, type: conv2d, input: image, numFilters: 32, filterSize: 5, padding: 2}
//       - {name: relu1, type: relu, input: conv1}
//       - ...
//       - {name: cost, type: softmax_cross_entropy, inputs: [fc2, label]}
//     cost: cost          # optional: the last layer by default
//
// Input sources (what the data reader fills): features (dense, shape required), labels (class
// ids), targets (float targets, dense [1]), tokens / tokenTargets (sequence ids, shape [T]
// required), fields (multi-hot sparse ids, shape [numFields] required), sourceTokens (the source
// side of a parallel-text pair, sequence ids, shape [T] required; docs/seq2seq.md).
//
// Sequence-to-sequence models may add `decode: {beam: 4, limit: 500}`: after each pass the trainer
// also decodes the test set's sources (greedy for beam 1, else beam search; trainer/eval/
// sequence_decoder.h) and reports exact match and BLEU. limit: decode only the first N test
// examples of each rank (0: all).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "trainer/layers/attr_reader.h"
#include "trainer/layers/layer.h"

namespace tandem::trainer {

enum class InputSource {
  kFeatures, kLabels, kTargets, kTokens, kTokenTargets, kFields, kSourceTokens
};
const char* InputSourceName(InputSource source);

struct InputDef {
  std::string name;
  InputSource source = InputSource::kFeatures;
  Shape shape;  // per example
  bool operator==(const InputDef& o) const = default;
  BlobDesc Desc() const;
};

// spec.model.decode: how a sequence-to-sequence model is decoded for evaluation.
struct DecodeDef {
  int beam = 1;       // 1: greedy
  int64_t limit = 0;  // test examples decoded per rank (0: all)
  bool operator==(const DecodeDef& o) const = default;
};

struct ModelDef {
  std::vector<InputDef> inputs;
  std::vector<LayerConfig> layers;
  std::string cost;  // name of the cost layer; empty: the last layer
  std::optional<DecodeDef> decode;
  bool operator==(const ModelDef& o) const = default;
  // The declarative JSON form (what ParseModelDef reads).
  nlohmann::json ToJson() const;
};

// Parses the `spec.model` JSON subtree. Structural problems (missing or mistyped fields, duplicate
// names) are appended to `errors` with full paths under `path`; layer attributes are copied as they
// are and checked later by BuildModelGraph (which knows each layer's schema).
ModelDef ParseModelDef(const nlohmann::json& model, const std::string& path,
                       std::vector<FieldError>* errors);

}  // namespace tandem::trainer
