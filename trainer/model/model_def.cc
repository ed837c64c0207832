#include "trainer/model/model_def.h"

#include <set>

#include "absl/strings/str_cat.h"

namespace tandem::trainer {
namespace {

struct SourceInfo {
  const char* name;
  InputSource source;
  BlobKind kind;
  bool needs_shape;
};

constexpr SourceInfo kSources[] = {
    {"features", InputSource::kFeatures, BlobKind::kDense, true},
    {"labels", InputSource::kLabels, BlobKind::kLabel, false},
    {"targets", InputSource::kTargets, BlobKind::kDense, false},
    {"tokens", InputSource::kTokens, BlobKind::kSequenceIds, true},
    {"tokenTargets", InputSource::kTokenTargets, BlobKind::kSequenceIds, true},
    {"fields", InputSource::kFields, BlobKind::kIds, true},
    {"sourceTokens", InputSource::kSourceTokens, BlobKind::kSequenceIds, true},
};

const SourceInfo& Info(InputSource s) {
  for (const auto& i : kSources)
    if (i.source == s) return i;
  return kSources[0];
}

}  // namespace

const char* InputSourceName(InputSource source) { return Info(source).name; }

BlobDesc InputDef::Desc() const {
  const SourceInfo& info = Info(source);
  if (!info.needs_shape) return {info.kind, Shape({1})};
  return {info.kind, shape};
}

nlohmann::json ModelDef::ToJson() const {
  nlohmann::json j;
  j["inputs"] = nlohmann::json::array();
  for (const InputDef& in : inputs) {
    nlohmann::json i = {{"name", in.name}, {"source", InputSourceName(in.source)}};
    if (Info(in.source).needs_shape) i["shape"] = in.shape.dims();
    j["inputs"].push_back(i);
  }
  j["layers"] = nlohmann::json::array();
  for (const LayerConfig& l : layers) {
    nlohmann::json o = l.attrs;
    o["name"] = l.name;
    o["type"] = l.type;
    if (l.inputs.size() == 1) {
      o["input"] = l.inputs[0];
    } else {
      o["inputs"] = l.inputs;
    }
    j["layers"].push_back(o);
  }
  if (!cost.empty()) j["cost"] = cost;
  if (decode.has_value()) j["decode"] = {{"beam", decode->beam}, {"limit", decode->limit}};
  return j;
}

ModelDef ParseModelDef(const nlohmann::json& model, const std::string& path,
                       std::vector<FieldError>* errors) {
  ModelDef def;
  auto err = [&](const std::string& p, const std::string& m) { errors->push_back({p, m}); };
  if (!model.is_object()) {
    err(path, "must be an object with inputs and layers");
    return def;
  }
  std::set<std::string> names;
  auto check_name = [&](const nlohmann::json& o, const std::string& p) -> std::string {
    auto it = o.find("name");
    if (it == o.end() || !it->is_string() || it->get<std::string>().empty()) {
      err(p + ".name", "is required (a non-empty string)");
      return "";
    }
    std::string name = it->get<std::string>();
    if (!names.insert(name).second) err(p + ".name", absl::StrCat("duplicate name \"", name, "\""));
    return name;
  };
  for (auto it = model.begin(); it != model.end(); ++it) {
    if (it.key() != "inputs" && it.key() != "layers" && it.key() != "cost" && it.key() != "decode")
      err(path + "." + it.key(), "unknown field (known: inputs, layers, cost, decode)");
  }

  const auto inputs = model.find("inputs");
  if (inputs == model.end() || !inputs->is_array() || inputs->empty()) {
    err(path + ".inputs", "is required (a non-empty list of {name, source, shape})");
  } else {
    for (size_t i = 0; i < inputs->size(); ++i) {
      const std::string p = absl::StrCat(path, ".inputs[", i, "]");
      const nlohmann::json& o = (*inputs)[i];
      if (!o.is_object()) {
        err(p, "must be an object {name, source, shape}");
        continue;
      }
      InputDef in;
      in.name = check_name(o, p);
      const auto src = o.find("source");
      const SourceInfo* info = nullptr;
      if (src == o.end() || !src->is_string()) {
        err(p + ".source", "is required (features, labels, targets, tokens, tokenTargets, fields, sourceTokens)");
      } else {
        for (const auto& s : kSources)
          if (src->get<std::string>() == s.name) info = &s;
        if (info == nullptr) {
          err(p + ".source", absl::StrCat("unknown source \"", src->get<std::string>(),
                                          "\" (known: features, labels, targets, tokens, "
                                          "tokenTargets, fields, sourceTokens)"));
        } else {
          in.source = info->source;
        }
      }
      const auto shape = o.find("shape");
      if (shape != o.end()) {
        bool ok = shape->is_array() && !shape->empty();
        std::vector<int64_t> dims;
        if (ok) {
          for (const auto& d : *shape) {
            if (!d.is_number_integer() || d.get<int64_t>() <= 0 || d.get<int64_t>() > (1 << 24)) {
              ok = false;
              break;
            }
            dims.push_back(d.get<int64_t>());
          }
        }
        if (!ok) {
          err(p + ".shape", absl::StrCat("must be a non-empty list of positive integers, got ",
                                         shape->dump()));
        } else {
          in.shape = Shape(std::move(dims));
        }
      } else if (info != nullptr && info->needs_shape) {
        err(p + ".shape", absl::StrCat("is required for source ", info->name));
      }
      if (info != nullptr && !info->needs_shape) in.shape = Shape({1});
      if (info != nullptr && (info->kind == BlobKind::kSequenceIds || info->kind == BlobKind::kIds) &&
          in.shape.rank() != 1 && in.shape.rank() != 0) {
        err(p + ".shape", absl::StrCat("must have one dimension for source ", info->name,
                                       ", got ", in.shape.ToString()));
      }
      for (auto f = o.begin(); f != o.end(); ++f) {
        if (f.key() != "name" && f.key() != "source" && f.key() != "shape")
          err(p + "." + f.key(), "unknown field (known: name, source, shape)");
      }
      def.inputs.push_back(std::move(in));
    }
  }

  const auto layers = model.find("layers");
  if (layers == model.end() || !layers->is_array() || layers->empty()) {
    err(path + ".layers", "is required (a non-empty list of layers)");
  } else {
    for (size_t i = 0; i < layers->size(); ++i) {
      const std::string p = absl::StrCat(path, ".layers[", i, "]");
      const nlohmann::json& o = (*layers)[i];
      if (!o.is_object()) {
        err(p, "must be an object {name, type, input(s), ...}");
        continue;
      }
      LayerConfig c;
      c.name = check_name(o, p);
      const auto type = o.find("type");
      if (type == o.end() || !type->is_string()) {
        err(p + ".type", "is required (a string)");
      } else {
        c.type = type->get<std::string>();
      }
      const auto input = o.find("input");
      const auto ins = o.find("inputs");
      if (input != o.end() && ins != o.end()) {
        err(p + ".inputs", "give either input or inputs, not both");
      } else if (input != o.end()) {
        if (!input->is_string()) {
          err(p + ".input", "must be the name of an input or an earlier layer");
        } else {
          c.inputs.push_back(input->get<std::string>());
        }
      } else if (ins != o.end()) {
        if (!ins->is_array() || ins->empty()) {
          err(p + ".inputs", "must be a non-empty list of names");
        } else {
          for (size_t k = 0; k < ins->size(); ++k) {
            if (!(*ins)[k].is_string()) {
              err(absl::StrCat(p, ".inputs[", k, "]"), "must be a name");
            } else {
              c.inputs.push_back((*ins)[k].get<std::string>());
            }
          }
        }
      } else {
        err(p + ".input", "is required (the name of an input or an earlier layer)");
      }
      for (auto f = o.begin(); f != o.end(); ++f) {
        if (f.key() != "name" && f.key() != "type" && f.key() != "input" && f.key() != "inputs")
          c.attrs[f.key()] = f.value();
      }
      def.layers.push_back(std::move(c));
    }
  }

  const auto cost = model.find("cost");
  if (cost != model.end()) {
    if (!cost->is_string()) {
      err(path + ".cost", "must be the name of a layer");
    } else {
      def.cost = cost->get<std::string>();
    }
  }
  const auto decode = model.find("decode");
  if (decode != model.end()) {
    AttrReader r(*decode);
    DecodeDef d;
    if (!decode->is_object()) {
      err(path + ".decode", "must be an object {beam, limit}");
    } else {
      d.beam = static_cast<int>(r.Int("beam", 1, 1, 64));
      d.limit = r.Int("limit", 0, 0);
      r.CheckNoUnknownFields();
      for (const FieldError& e : r.errors()) err(path + ".decode." + e.path, e.message);
      bool has_source = false;
      for (const InputDef& in : def.inputs) has_source |= in.source == InputSource::kSourceTokens;
      if (!has_source)
        err(path + ".decode", "needs an input with source sourceTokens (a sequence-to-sequence model)");
    }
    def.decode = d;
  }
  return def;
}

}  // namespace tandem::trainer
