// A ModelDef checked and shape-inferred: every layer created from the registry and set up, with
// its resolved attributes (defaults filled in), input and output descriptions and parameters. No
// device is touched, so this is also what `tandem validate` runs.
//
//   ModelGraph graph;
//   std::vector<FieldError> errors = BuildModelGraph(def, LayerRegistry::Builtin(), "spec.model",
//                                                    &graph);
//
// Errors name the layer and the field: "spec.model.layers[2].numFilters: must be >= 1, got 0";
// "spec.model.layers[4].type: unknown layer type "fully" (known: ...)";
// "spec.model.layers[5].inputs[0]: input 'pool2' is dense [64, 7, 7], expected sequence".
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "trainer/layers/layer.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_def.h"

namespace tandem::trainer {

struct GraphLayer {
  LayerConfig config;              // attrs resolved: every field with its value or default
  std::unique_ptr<Layer> layer;    // set up, not yet initialised on a device
  std::vector<int> inputs;         // blob indices
  int output = -1;                 // blob index
  std::vector<ParamDesc> params;
};

struct ModelGraph {
  std::vector<InputDef> inputs;    // blobs 0..inputs.size()-1
  std::vector<BlobDesc> blobs;     // per-example description of every blob
  std::vector<std::string> blob_names;
  std::vector<GraphLayer> layers;  // in execution order
  int cost_layer = -1;
  // Everything that defines the model (inputs, resolved layers, shapes, parameter shapes) as
  // JSON: two graphs with equal Describe() are the same model.
  nlohmann::json Describe() const;
  int64_t NumParameters() const;
};

std::vector<FieldError> BuildModelGraph(const ModelDef& def, const LayerRegistry& registry,
                                        const std::string& path, ModelGraph* graph);

}  // namespace tandem::trainer
