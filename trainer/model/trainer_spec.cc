#include "trainer/model/trainer_spec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/quantity.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_graph.h"

namespace tandem::trainer {
namespace {

const nlohmann::json& Child(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

void ParseAll(const nlohmann::json& spec, const SpecOptions& options, TrainerSpec* out,
              std::vector<FieldError>* errors) {
  if (!spec.is_object()) {
    errors->push_back({"spec", "must be an object"});
    return;
  }
  const nlohmann::json& model = Child(spec, "model");
  if (model.is_null()) {
    errors->push_back({"spec.model", "is required"});
  } else {
    out->model = ParseModelDef(model, "spec.model", errors);
    if (errors->empty()) {
      ModelGraph graph;
      for (FieldError& e : BuildModelGraph(out->model, LayerRegistry::Builtin(), "spec.model",
                                           &graph))
        errors->push_back(std::move(e));
    }
  }
  out->optimizer = ParseOptimizerConfig(Child(spec, "optimizer"), "spec.optimizer", errors);
  data::ParseOptions data_options;
  data_options.path = "spec.data";
  data_options.check_files = options.check_files;
  for (const std::string& line :
       data::ParseDataConfig(Child(spec, "data"), data_options, &out->data)) {
    const size_t colon = line.find(": ");
    if (colon == std::string::npos) {
      errors->push_back({"spec.data", line});
    } else {
      errors->push_back({line.substr(0, colon), line.substr(colon + 2)});
    }
  }
  const nlohmann::json& passes = Child(spec, "passes");
  if (!passes.is_null()) {
    if (!passes.is_number_integer() || passes.get<int64_t>() < 1 ||
        passes.get<int64_t>() > 1000000) {
      errors->push_back({"spec.passes", "must be an integer in [1, 1000000], got " + passes.dump()});
    } else {
      out->passes = passes.get<int64_t>();
    }
  }
  const nlohmann::json& threads = Child(Child(spec, "trainer"), "threads");
  if (!threads.is_null()) {
    if (!threads.is_number_integer() || threads.get<int64_t>() < 0 ||
        threads.get<int64_t>() > 1024) {
      errors->push_back(
          {"spec.trainer.threads", "must be an integer in [0, 1024], got " + threads.dump()});
    } else {
      out->threads = static_cast<int>(threads.get<int64_t>());
    }
  }
}

}  // namespace

void ValidateModelSection(const nlohmann::json& section, const nlohmann::json&,
                          const std::string& path, std::vector<FieldError>* errors) {
  const size_t before = errors->size();
  ModelDef def = ParseModelDef(section, path, errors);
  if (errors->size() != before) return;
  ModelGraph graph;
  for (FieldError& e : BuildModelGraph(def, LayerRegistry::Builtin(), path, &graph))
    errors->push_back(std::move(e));
}

void ValidateOptimizerSection(const nlohmann::json& section, const nlohmann::json&,
                              const std::string& path, std::vector<FieldError>* errors) {
  ParseOptimizerConfig(section, path, errors);
}

void ValidateDataSection(const nlohmann::json& section, const nlohmann::json& spec,
                         const std::string& path, std::vector<FieldError>* errors) {
  data::ParseOptions options;
  options.path = path;
  options.check_files = false;
  data::DataConfig config;
  const std::vector<std::string> problems = data::ParseDataConfig(section, options, &config);
  for (const std::string& line : problems) {
    const size_t colon = line.find(": ");
    if (colon == std::string::npos) {
      errors->push_back({path, line});
    } else {
      errors->push_back({line.substr(0, colon), line.substr(colon + 2)});
    }
  }
  // An elastic job re-deals a pass's examples at each resize (docs/elastic.md); a stream has no
  // passes, and its read positions are per trainer (docs/streaming.md).
  if (problems.empty() && config.train.stream.has_value() && spec.is_object() && spec.contains("elastic"))
    errors->push_back({"spec.elastic", absl::StrCat("not supported with a stream (", path,
                                                    ".train.stream): a stream's read positions "
                                                    "belong to a fixed set of trainers")});
}

std::string TrainerMemoryCheck::Explain() const {
  return absl::StrCat(estimate.Explain(), fits() ? "; fits " : "; does not fit ", budget_field, " (",
                      FormatBytes(budget_bytes), ")");
}

std::optional<TrainerMemoryCheck> CheckTrainerMemory(const nlohmann::json& spec) {
  const nlohmann::json& resources = Child(Child(spec, "trainer"), "resources");
  TrainerMemoryCheck check;
  for (const char* list : {"limits", "requests"}) {
    const nlohmann::json& q = Child(Child(resources, list), "memory");
    if (!q.is_string()) continue;
    absl::StatusOr<api::Quantity> parsed = api::Quantity::Parse(q.get<std::string>());
    if (!parsed.ok() || parsed->value() <= 0) return std::nullopt;  // reported by the API's rules
    check.budget_bytes = parsed->value();
    check.budget_field = absl::StrCat("spec.trainer.resources.", list, ".memory");
    break;
  }
  if (check.budget_field.empty()) return std::nullopt;
  std::vector<FieldError> errors;
  ModelDef def = ParseModelDef(Child(spec, "model"), "spec.model", &errors);
  if (!errors.empty()) return std::nullopt;
  ModelGraph graph;
  if (!BuildModelGraph(def, LayerRegistry::Builtin(), "spec.model", &graph).empty()) return std::nullopt;
  OptimizerConfig optimizer = ParseOptimizerConfig(Child(spec, "optimizer"), "spec.optimizer", &errors);
  if (!errors.empty()) return std::nullopt;
  int batch_size = data::DataConfig{}.batch_size;
  const nlohmann::json& batch = Child(Child(spec, "data"), "batchSize");
  if (!batch.is_null()) {
    if (!batch.is_number_integer() || batch.get<int64_t>() < 1 || batch.get<int64_t>() > (1 << 24))
      return std::nullopt;
    batch_size = static_cast<int>(batch.get<int64_t>());
  }
  const nlohmann::json& dense = Child(Child(spec, "sync"), "dense");
  MemoryEstimateOptions options;
  options.remote_sparse = true;  // every job's workers run a pserver, which holds the tables
  options.remote_dense_optimizer = dense.is_string() && dense.get<std::string>() == "pserver";
  check.estimate = EstimateTrainerMemory(graph, optimizer.type, batch_size, options);
  return check;
}

void ValidateTrainerMemory(const nlohmann::json&, const nlohmann::json& spec, const std::string&,
                           std::vector<FieldError>* errors) {
  std::optional<TrainerMemoryCheck> check = CheckTrainerMemory(spec);
  if (!check || check->fits()) return;
  errors->push_back({check->budget_field,
                     absl::StrCat(FormatBytes(check->budget_bytes),
                                  " cannot hold the model, which needs ", check->estimate.Explain(),
                                  ": raise it, or shrink the model or spec.data.batchSize")});
}

std::vector<FieldError> ValidateTrainerSections(const nlohmann::json& spec,
                                                const SpecOptions& options) {
  std::vector<FieldError> errors;
  TrainerSpec parsed;
  try {
    ParseAll(spec, options, &parsed, &errors);
  } catch (const std::exception& e) {  // defensive: hostile input must never escape as a throw
    errors.push_back({"spec", std::string("invalid: ") + e.what()});
  }
  return errors;
}

absl::StatusOr<TrainerSpec> ParseTrainerSpec(const nlohmann::json& spec,
                                             const SpecOptions& options) {
  std::vector<FieldError> errors;
  TrainerSpec parsed;
  try {
    ParseAll(spec, options, &parsed, &errors);
  } catch (const std::exception& e) {
    errors.push_back({"spec", std::string("invalid: ") + e.what()});
  }
  if (!errors.empty()) {
    std::vector<std::string> lines;
    for (const FieldError& e : errors) lines.push_back(e.ToString());
    return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
  }
  return parsed;
}

}  // namespace tandem::trainer

namespace tandem::trainer {
namespace {

using SectionFn = void (*)(const nlohmann::json&, const nlohmann::json&, const std::string&,
                           std::vector<FieldError>*);

api::SectionValidator Adapt(SectionFn validate) {
  return [validate](const nlohmann::json& section, const nlohmann::json& spec, const std::string& path,
                    api::FieldErrors* errors) {
    std::vector<FieldError> found;
    validate(section, spec, path, &found);
    for (FieldError& e : found) errors->push_back({std::move(e.path), std::move(e.message)});
  };
}

}  // namespace

api::SectionValidators TrainerSectionValidators() {
  api::SectionValidators v;
  v.Add("model", Adapt(&ValidateModelSection));
  v.Add("model", Adapt(&ValidateTrainerMemory));
  v.Add("data", Adapt(&ValidateDataSection));
  v.Add("optimizer", Adapt(&ValidateOptimizerSection));
  return v;
}

}  // namespace tandem::trainer
