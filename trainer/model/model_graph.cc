#include "trainer/model/model_graph.h"

#include <set>

#include "absl/strings/str_cat.h"

namespace tandem::trainer {

nlohmann::json ModelGraph::Describe() const {
  nlohmann::json j;
  for (const InputDef& in : inputs) {
    j["inputs"].push_back({{"name", in.name},
                           {"source", InputSourceName(in.source)},
                           {"blob", in.Desc().ToString()}});
  }
  for (const GraphLayer& l : layers) {
    nlohmann::json o = {{"name", l.config.name},
                        {"type", l.config.type},
                        {"inputs", l.config.inputs},
                        {"attrs", l.config.attrs},
                        {"output", blobs[l.output].ToString()}};
    for (const ParamDesc& p : l.params) o["params"].push_back({p.name, p.shape.dims()});
    j["layers"].push_back(o);
  }
  j["cost"] = cost_layer >= 0 ? layers[cost_layer].config.name : "";
  return j;
}

int64_t ModelGraph::NumParameters() const {
  int64_t n = 0;
  for (const GraphLayer& l : layers)
    for (const ParamDesc& p : l.params) n += p.shape.NumElements();
  return n;
}

std::vector<FieldError> BuildModelGraph(const ModelDef& def, const LayerRegistry& registry,
                                        const std::string& path, ModelGraph* graph) {
  std::vector<FieldError> errors;
  *graph = ModelGraph();
  std::map<std::string, int> blob_of;
  for (const InputDef& in : def.inputs) {
    blob_of[in.name] = static_cast<int>(graph->blobs.size());
    graph->inputs.push_back(in);
    graph->blobs.push_back(in.Desc());
    graph->blob_names.push_back(in.name);
  }
  bool graph_ok = true;
  std::set<std::string> failed;  // layers with errors: their consumers stay quiet (no cascades)
  for (size_t i = 0; i < def.layers.size(); ++i) {
    const LayerConfig& config = def.layers[i];
    const std::string p = absl::StrCat(path, ".layers[", i, "]");
    GraphLayer gl;
    gl.config = config;
    std::vector<BlobDesc> in_descs;
    bool inputs_ok = true;
    for (size_t k = 0; k < config.inputs.size(); ++k) {
      auto it = blob_of.find(config.inputs[k]);
      if (it == blob_of.end() && failed.count(config.inputs[k]) > 0) {
        inputs_ok = false;
        continue;
      }
      if (it == blob_of.end()) {
        errors.push_back(
            {config.inputs.size() == 1 ? p + ".input" : absl::StrCat(p, ".inputs[", k, "]"),
             absl::StrCat("\"", config.inputs[k],
                          "\" is neither a model input nor an earlier layer")});
        inputs_ok = false;
        continue;
      }
      gl.inputs.push_back(it->second);
      in_descs.push_back(graph->blobs[it->second]);
    }
    absl::StatusOr<std::unique_ptr<Layer>> layer = registry.Create(config.type);
    if (!layer.ok()) {
      errors.push_back({p + ".type", std::string(layer.status().message())});
      graph_ok = false;
      failed.insert(config.name);
      continue;
    }
    if (!inputs_ok || config.inputs.empty()) {
      graph_ok = false;
      failed.insert(config.name);
      continue;
    }
    LayerSetup setup(config, in_descs);
    BlobDesc out = (*layer)->Setup(setup);
    setup.attrs().CheckNoUnknownFields();
    for (const FieldError& e : setup.attrs().errors()) {
      // Input errors are reported by input name in "inputs[k]"; a single input is "input".
      std::string field = e.path;
      if (config.inputs.size() == 1 && (field == "inputs[0]" || field == "inputs")) field = "input";
      errors.push_back({p + "." + field, absl::StrCat("layer '", config.name, "' (", config.type,
                                                      "): ", e.message)});
    }
    if (!setup.attrs().errors().empty()) {
      graph_ok = false;
      failed.insert(config.name);
      continue;
    }
    gl.config.attrs = setup.attrs().resolved();
    gl.params = setup.params();
    gl.layer = std::move(*layer);
    gl.output = static_cast<int>(graph->blobs.size());
    blob_of[config.name] = gl.output;
    graph->blobs.push_back(out);
    graph->blob_names.push_back(config.name);
    graph->layers.push_back(std::move(gl));
  }
  if (!graph_ok) return errors;
  if (def.cost.empty()) {
    graph->cost_layer = static_cast<int>(graph->layers.size()) - 1;
  } else {
    for (size_t i = 0; i < graph->layers.size(); ++i)
      if (graph->layers[i].config.name == def.cost) graph->cost_layer = static_cast<int>(i);
    if (graph->cost_layer < 0) {
      errors.push_back({path + ".cost", absl::StrCat("\"", def.cost, "\" is not a layer")});
      return errors;
    }
  }
  const GraphLayer& cost = graph->layers[graph->cost_layer];
  const BlobDesc& cd = graph->blobs[cost.output];
  if (cd.kind != BlobKind::kDense || cd.shape != Shape({1})) {
    errors.push_back({def.cost.empty() ? absl::StrCat(path, ".layers[", def.layers.size() - 1, "]")
                                       : path + ".cost",
                      absl::StrCat("the cost layer '", cost.config.name,
                                   "' must output one loss per example (dense [1]), got ",
                                   cd.ToString())});
  }
  return errors;
}

}  // namespace tandem::trainer
