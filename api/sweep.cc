#include "api/sweep.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/json_get.h"
#include "api/schema.h"

namespace tandem::api {
namespace {

using json = nlohmann::json;
using namespace internal;  // NOLINT: the JSON getters

// One segment of a field path: a key, or a bracketed list selector (index or item name).
struct PathSegment {
  std::string key;
  bool bracket = false;
};

bool SplitPath(const std::string& path, std::vector<PathSegment>* out, std::string* why) {
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string::npos || close == i + 1) {
        *why = absl::StrCat("unbalanced or empty [] at character ", i + 1);
        return false;
      }
      out->push_back({path.substr(i + 1, close - i - 1), true});
      i = close + 1;
      if (i < path.size() && path[i] == '.') ++i;
      continue;
    }
    size_t end = path.find_first_of(".[", i);
    if (end == std::string::npos) end = path.size();
    if (end == i) {
      *why = absl::StrCat("empty segment at character ", i + 1);
      return false;
    }
    out->push_back({path.substr(i, end - i), false});
    i = end;
    if (i < path.size() && path[i] == '.') {
      ++i;
      if (i == path.size()) {
        *why = "ends with '.'";
        return false;
      }
    }
  }
  if (out->empty()) *why = "empty path";
  return !out->empty();
}

template <typename Json>
Json* Resolve(Json& object, const std::string& path, std::string* why) {
  std::vector<PathSegment> segments;
  std::string ignored;
  if (why == nullptr) why = &ignored;
  if (!SplitPath(path, &segments, why)) return nullptr;
  Json* at = &object;
  std::string walked;
  for (const PathSegment& s : segments) {
    if (!s.bracket) {
      if (!at->is_object() || !at->contains(s.key)) {
        *why = absl::StrCat("no field \"", s.key, "\"", walked.empty() ? "" : " in ", walked);
        return nullptr;
      }
      at = &(*at)[s.key];
      walked = walked.empty() ? s.key : absl::StrCat(walked, ".", s.key);
      continue;
    }
    if (!at->is_array()) {
      *why = absl::StrCat(walked, " is not a list, so [", s.key, "] selects nothing");
      return nullptr;
    }
    int64_t index = -1;
    Json* found = nullptr;
    const bool by_index = absl::SimpleAtoi(s.key, &index);
    if (by_index) {
      if (index >= 0 && static_cast<size_t>(index) < at->size()) found = &(*at)[static_cast<size_t>(index)];
    } else {
      for (auto& item : *at)
        if (item.is_object() && item.contains("name") && item["name"] == s.key) found = &item;
    }
    if (found == nullptr) {
      *why = absl::StrCat(walked, " has no item ", by_index ? "at index " : "named ", s.key);
      return nullptr;
    }
    at = found;
    walked = absl::StrCat(walked, "[", s.key, "]");
  }
  return at;
}

bool IsValidParameterName(const std::string& n) {
  if (n.empty() || n.size() > 32) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

// The kind of JSON value a field holds, as the parameter types see it.
enum class ValueKind { kInteger, kNumber, kString, kBoolean, kOther };
ValueKind KindOf(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return ValueKind::kInteger;
  if (v.is_number_float()) return ValueKind::kNumber;
  if (v.is_string()) return ValueKind::kString;
  if (v.is_boolean()) return ValueKind::kBoolean;
  return ValueKind::kOther;
}

// The values each parameter is validated at: its bounds, or each choice.
std::vector<json> ProbeValues(const SweepParameter& p) {
  if (p.type == kParamChoice) return p.values;
  std::vector<json> out;
  for (const std::optional<double>& b : {p.min, p.max}) {
    if (!b) continue;
    if (p.type == kParamInt) out.push_back(static_cast<int64_t>(std::llround(*b)));
    else out.push_back(*b);
  }
  return out;
}

// Problems of the trial jobs as "spec.X" paths become "spec.template.spec.X".
std::string TemplatePath(const std::string& job_path) {
  if (absl::StartsWith(job_path, "spec")) return absl::StrCat("spec.template.", job_path);
  if (absl::StartsWith(job_path, "metadata")) return absl::StrCat("spec.template.", job_path);
  return job_path.empty() ? "spec.template" : absl::StrCat("spec.template (", job_path, ")");
}

json ParametersToJsonObject(const json& p) { return p.is_object() ? p : json::object(); }

}  // namespace

const json* ResolvePath(const json& object, const std::string& path, std::string* why) {
  return Resolve<const json>(object, path, why);
}
json* ResolvePath(json& object, const std::string& path, std::string* why) {
  return Resolve<json>(object, path, why);
}

std::string ObjectiveGoal(const SweepObjective& o) {
  if (!o.goal.empty()) return o.goal;
  return o.metric == kMetricTestLoss ? kGoalMinimize : kGoalMaximize;
}

bool IsBetter(const std::string& goal, double a, double b) {
  return goal == kGoalMinimize ? a < b : a > b;
}

absl::StatusOr<json> BuildTrialJob(const Sweep& sweep, const json& parameters, const std::string& name) {
  json job = {{"apiVersion", kApiVersion}, {"kind", kTrainingJobKind}};
  json meta = sweep.spec.trial_template.metadata.is_object() ? sweep.spec.trial_template.metadata : json::object();
  meta["name"] = name;
  if (!sweep.metadata.namespace_.empty()) meta["namespace"] = sweep.metadata.namespace_;
  json labels = meta.contains("labels") && meta["labels"].is_object() ? meta["labels"] : json::object();
  if (!sweep.metadata.name.empty()) labels[kSweepLabel] = sweep.metadata.name;
  meta["labels"] = labels;
  job["metadata"] = meta;
  job["spec"] = sweep.spec.trial_template.spec;
  for (const SweepParameter& p : sweep.spec.parameters) {
    if (!parameters.contains(p.name)) return absl::InvalidArgumentError(absl::StrCat("no value for parameter ", p.name));
    std::string why;
    json* field = ResolvePath(job, p.path, &why);
    if (field == nullptr) return absl::InvalidArgumentError(absl::StrCat("parameter ", p.name, ": ", p.path, ": ", why));
    *field = parameters[p.name];
  }
  return job;
}

Sweep ParseSweep(const json& object, const SectionValidators& validators, FieldErrors* errors) {
  Sweep sw;
  if (!object.is_object()) {
    errors->push_back({"", absl::StrCat("a Sweep must be an object, got ", DescribeValue(object))});
    return sw;
  }
  const size_t first_error = errors->size();
  json without_meta = object;
  without_meta.erase("metadata");
  CheckAgainstSchema(without_meta, SweepSchema(), "", errors);
  GetString(object, "apiVersion", &sw.api_version);
  GetString(object, "kind", &sw.kind);
  sw.metadata = ParseObjectMeta(object.contains("metadata") ? object["metadata"] : json(), "metadata", errors);
  if (sw.metadata.namespace_.empty()) sw.metadata.namespace_ = "default";

  const json& s = GetObject(object, "spec");
  SweepSpec& spec = sw.spec;
  const json& tmpl = GetObject(s, "template");
  spec.trial_template.metadata = GetObject(tmpl, "metadata");
  spec.trial_template.spec = GetObject(tmpl, "spec");
  if (const json* ps = Get(s, "parameters"); ps && ps->is_array()) {
    for (const json& pj : *ps) {
      SweepParameter p;
      GetString(pj, "name", &p.name);
      GetString(pj, "path", &p.path);
      GetString(pj, "type", &p.type);
      for (auto [key, bound] : {std::pair{"min", &p.min}, std::pair{"max", &p.max}})
        if (const json* v = Get(pj, key); v && v->is_number() && std::isfinite(v->get<double>())) *bound = v->get<double>();
      GetString(pj, "scale", &p.scale);
      if (const json* v = Get(pj, "values"); v && v->is_array())
        for (const json& x : *v) p.values.push_back(x);
      GetInt(pj, "gridPoints", &p.grid_points);
      spec.parameters.push_back(std::move(p));
    }
  }
  const json& o = GetObject(s, "objective");
  GetString(o, "metric", &spec.objective.metric);
  GetString(o, "goal", &spec.objective.goal);
  spec.objective.goal = ObjectiveGoal(spec.objective);
  const json& a = GetObject(s, "algorithm");
  GetString(a, "name", &spec.algorithm.name);
  GetInt(a, "startupTrials", &spec.algorithm.startup_trials);
  GetInt(a, "candidates", &spec.algorithm.candidates);
  GetDouble(a, "gamma", &spec.algorithm.gamma);
  GetBool(a, "multivariate", &spec.algorithm.multivariate);
  const json& ca = GetObject(a, "costAware");
  GetBool(ca, "enabled", &spec.algorithm.cost_aware.enabled);
  GetDouble(ca, "exponent", &spec.algorithm.cost_aware.exponent);
  GetBool(ca, "cooling", &spec.algorithm.cost_aware.cooling);
  const json& es = GetObject(s, "earlyStopping");
  GetString(es, "policy", &spec.early_stopping.policy);
  GetInt(es, "minPasses", &spec.early_stopping.min_passes);
  GetInt(es, "reductionFactor", &spec.early_stopping.reduction_factor);
  GetInt(es, "startupTrials", &spec.early_stopping.startup_trials);
  GetInt(es, "bootstrapCount", &spec.early_stopping.bootstrap_count);
  GetInt(s, "parallelism", &spec.parallelism);
  GetInt(s, "maxTrials", &spec.max_trials);
  GetInt(s, "maxFailedTrials", &spec.max_failed_trials);
  GetInt(s, "seed", &spec.seed);
  GetDouble(GetObject(s, "budget"), "cpuSeconds", &spec.budget.cpu_seconds);

  const json& st = GetObject(object, "status");
  SweepStatus& status = sw.status;
  GetString(st, "phase", &status.phase);
  status.conditions = ParseConditions(st.contains("conditions") ? st["conditions"] : json());
  const json& counts = GetObject(st, "trialsByPhase");
  GetInt(counts, "pending", &status.trial_counts.pending);
  GetInt(counts, "running", &status.trial_counts.running);
  GetInt(counts, "succeeded", &status.trial_counts.succeeded);
  GetInt(counts, "failed", &status.trial_counts.failed);
  GetInt(counts, "stopped", &status.trial_counts.stopped);
  GetInt(counts, "paused", &status.trial_counts.paused);
  if (const json* ts = Get(st, "trials"); ts && ts->is_array()) {
    for (const json& tj : *ts) {
      TrialStatus t;
      GetString(tj, "name", &t.name);
      GetInt(tj, "index", &t.index);
      t.parameters = GetObject(tj, "parameters");
      GetString(tj, "phase", &t.phase);
      if (const json* im = Get(tj, "intermediate"); im && im->is_array()) {
        for (const json& m : *im) {
          MetricPoint mp;
          GetInt(m, "pass", &mp.pass);
          GetDouble(m, "value", &mp.value);
          t.intermediate.push_back(mp);
        }
      }
      if (const json* ob = Get(tj, "objective"); ob && ob->is_number()) t.objective = ob->get<double>();
      GetString(tj, "reason", &t.reason);
      GetInt(tj, "pausedAt", &t.paused_at);
      GetInt(tj, "promotedFrom", &t.promoted_from);
      GetDouble(tj, "cost", &t.cost);
      GetDouble(tj, "cpuSeconds", &t.cpu_seconds);
      status.trials.push_back(std::move(t));
    }
  }
  if (const json* b = Get(st, "bestTrial"); b && b->is_object()) {
    BestTrial bt;
    GetString(*b, "name", &bt.name);
    bt.parameters = GetObject(*b, "parameters");
    GetDouble(*b, "objective", &bt.objective);
    GetInt(*b, "pass", &bt.pass);
    status.best_trial = bt;
  }
  GetString(st, "startTime", &status.start_time);
  GetString(st, "completionTime", &status.completion_time);
  GetInt(st, "observedGeneration", &status.observed_generation);
  GetString(st, "cpuAccountedTime", &status.cpu_accounted_time);

  std::set<std::string> reported;
  for (size_t i = first_error; i < errors->size(); ++i) reported.insert((*errors)[i].path);
  auto report = [&](std::string path, std::string message) {
    for (const std::string& r : reported)
      if (path == r || r.empty() || (absl::StartsWith(path, r) && (path[r.size()] == '.' || path[r.size()] == '[')))
        return;
    errors->push_back({std::move(path), std::move(message)});
  };

  // The object itself.
  if (sw.api_version != kApiVersion)
    report("apiVersion", absl::StrCat("must be ", kApiVersion, ", got \"", sw.api_version, "\""));
  if (sw.kind != kSweepKind) report("kind", absl::StrCat("must be Sweep, got \"", sw.kind, "\""));
  if (sw.metadata.name.empty()) {
    report("metadata.name", "required");
  } else if (std::string e = CheckDns1035Label(sw.metadata.name, kMaxSweepNameLength); !e.empty()) {
    report("metadata.name", e + " (trials are named <sweep>-<index>)");
  }
  if (std::string e = CheckDns1123Label(sw.metadata.namespace_); !e.empty()) report("metadata.namespace", e);

  // Cross-field rules of the search.
  if (spec.parallelism > spec.max_trials)
    report("spec.parallelism", absl::StrCat("must be <= spec.maxTrials (", spec.max_trials, "), got ", spec.parallelism));
  if (spec.algorithm.cost_aware.enabled && spec.algorithm.name != kAlgorithmTpe)
    report("spec.algorithm.costAware.enabled",
           absl::StrCat("only the tpe algorithm learns what trials cost, got algorithm ", spec.algorithm.name));
  if (spec.algorithm.multivariate && spec.algorithm.name != kAlgorithmTpe)
    report("spec.algorithm.multivariate",
           absl::StrCat("only the tpe algorithm models the parameters jointly, got algorithm ", spec.algorithm.name));
  if (spec.early_stopping.policy == kStoppingMedian && spec.early_stopping.startup_trials >= spec.max_trials)
    report("spec.earlyStopping.startupTrials",
           absl::StrCat("must be < spec.maxTrials (", spec.max_trials, "): no trial would ever be judged"));
  if (spec.early_stopping.bootstrap_count > 0 && spec.early_stopping.policy != kStoppingAsha)
    report("spec.earlyStopping.bootstrapCount",
           absl::StrCat("only asha waits for a first rung's trials before promoting (sha waits for all "
                        "of them), got policy ", spec.early_stopping.policy));
  else if (spec.early_stopping.bootstrap_count > spec.max_trials)
    report("spec.earlyStopping.bootstrapCount",
           absl::StrCat("must be <= spec.maxTrials (", spec.max_trials, "), got ", spec.early_stopping.bootstrap_count));
  if (spec.parameters.empty()) report("spec.parameters", "required: at least one parameter to search");
  if (spec.parameters.size() > kMaxSweepParameters)
    report("spec.parameters", absl::StrCat("at most ", kMaxSweepParameters, " parameters, got ", spec.parameters.size()));
  for (size_t i = 0; i < spec.parameters.size(); ++i)
    if (spec.parameters[i].values.size() > kMaxChoiceValues)
      report(IndexPath("spec.parameters", i) + ".values",
             absl::StrCat("at most ", kMaxChoiceValues, " values, got ", spec.parameters[i].values.size()));

  // The template as a TrainingJob: every problem of the trials' common part, reported once.
  json bare = {{"apiVersion", kApiVersion}, {"kind", kTrainingJobKind},
               {"metadata", {{"name", absl::StrCat(sw.metadata.name.empty() ? "sweep" : sw.metadata.name, "-0")},
                             {"namespace", sw.metadata.namespace_}}},
               {"spec", spec.trial_template.spec}};
  for (const char* key : {"labels", "annotations"})
    if (spec.trial_template.metadata.contains(key)) bare["metadata"][key] = spec.trial_template.metadata[key];
  for (const auto& [key, unused] : spec.trial_template.metadata.items())
    if (key != "labels" && key != "annotations")
      report(JoinPath("spec.template.metadata", key), "only labels and annotations may be set on trials");
  bool template_ok = true;
  if (spec.parameters.size() > kMaxSweepParameters) template_ok = false;
  if (template_ok && !reported.count("spec.template") && !reported.count("spec.template.spec")) {
    if (spec.trial_template.spec.empty()) {
      report("spec.template.spec", "required: the TrainingJob spec every trial starts from");
      template_ok = false;
    } else {
      FieldErrors job_errors;
      TrainingJob job = ParseTrainingJob(bare, validators, &job_errors);
      for (const FieldError& e : job_errors) {
        if (e.path.rfind("metadata.name", 0) == 0) continue;  // checked on the sweep's own name
        report(TemplatePath(e.path), e.message);
        template_ok = false;
      }
      // Paths resolve against the defaulted job, so that a field the template leaves at its
      // default (spec.passes) can be searched too.
      json defaulted = ToJson(job);
      std::set<std::string> names, paths;
      for (size_t i = 0; i < spec.parameters.size(); ++i) {
        const SweepParameter& p = spec.parameters[i];
        const std::string at = IndexPath("spec.parameters", i);
        if (!IsValidParameterName(p.name)) {
          report(at + ".name", absl::StrCat("must be 1-32 letters, digits, '_', '-' or '.', got \"", p.name, "\""));
        } else if (!names.insert(p.name).second) {
          report(at + ".name", absl::StrCat("duplicate parameter name \"", p.name, "\""));
        }
        if (!absl::StartsWith(p.path, "spec.")) {
          report(at + ".path", absl::StrCat("must start with \"spec.\" (a field of the template's TrainingJob), got \"",
                                            p.path, "\""));
          continue;
        }
        if (!paths.insert(p.path).second) report(at + ".path", absl::StrCat("another parameter already sets ", p.path));
        for (const char* fixed : {"spec.queue", "spec.suspend", "spec.workers", "spec.image"}) {
          if (p.path == fixed || absl::StartsWith(p.path, absl::StrCat(fixed, ".")))
            report(at + ".path", absl::StrCat(fixed, " is the sweep's to decide, not a hyper-parameter"));
        }
        // Type rules of the parameter itself.
        if (p.type == kParamChoice) {
          if (p.values.empty()) report(at + ".values", "required for type choice: the values to choose from");
          if (p.min || p.max) report(at + (p.min ? ".min" : ".max"), "not used with type choice (list values instead)");
          if (p.scale != kScaleLinear) report(at + ".scale", "not used with type choice");
          std::set<std::string> seen;
          for (size_t k = 0; k < p.values.size(); ++k) {
            if (KindOf(p.values[k]) == ValueKind::kOther)
              report(IndexPath(at + ".values", k), absl::StrCat("must be a number, string or boolean, got ",
                                                                 DescribeValue(p.values[k])));
            else if (!seen.insert(p.values[k].dump(-1, ' ', false, json::error_handler_t::replace)).second)
              report(IndexPath(at + ".values", k), absl::StrCat("duplicate value ", DescribeValue(p.values[k])));
          }
        } else {
          if (!p.values.empty()) report(at + ".values", absl::StrCat("only used with type choice (type is ", p.type, ")"));
          if (!p.min) report(at + ".min", absl::StrCat("required for type ", p.type));
          if (!p.max) report(at + ".max", absl::StrCat("required for type ", p.type));
          if (p.min && p.max && *p.min > *p.max)
            report(at + ".max", absl::StrCat("must be >= min (", *p.min, "), got ", *p.max));
          if (p.type == kParamInt) {
            for (const auto& [key, b] : {std::pair{".min", p.min}, std::pair{".max", p.max}})
              if (b && *b != std::floor(*b)) report(at + key, absl::StrCat("must be a whole number for type int, got ", *b));
          }
          if (p.scale == kScaleLog && p.min && *p.min <= 0)
            report(at + ".min", absl::StrCat("must be > 0 with scale log, got ", *p.min));
        }
        // The path must exist and hold a value this parameter can replace.
        std::string why;
        const json* field = ResolvePath(defaulted, p.path, &why);
        if (field == nullptr) {
          report(at + ".path", absl::StrCat(p.path, " is not in the template: ", why));
          continue;
        }
        const ValueKind have = KindOf(*field);
        auto mismatch = [&](const std::string& what) {
          report(at + ".type", absl::StrCat(p.path, " holds ", DescribeValue(*field), ", ", what));
        };
        if (have == ValueKind::kOther) {
          mismatch("not a single value: a parameter replaces a number, string or boolean");
          continue;
        }
        if (p.type == kParamFloat && have != ValueKind::kNumber && have != ValueKind::kInteger) {
          mismatch("which a float parameter cannot replace");
        } else if (p.type == kParamFloat && have == ValueKind::kInteger) {
          mismatch("an integer: use type int (or write the template's value as a decimal, e.g. 1.0)");
        } else if (p.type == kParamInt && have != ValueKind::kInteger && have != ValueKind::kNumber) {
          mismatch("which an int parameter cannot replace");
        } else if (p.type == kParamChoice) {
          for (size_t k = 0; k < p.values.size(); ++k) {
            ValueKind v = KindOf(p.values[k]);
            bool fits = v == have || (have == ValueKind::kNumber && v == ValueKind::kInteger);
            if (!fits && v != ValueKind::kOther)
              report(IndexPath(at + ".values", k),
                     absl::StrCat(DescribeValue(p.values[k]), " cannot replace ", p.path, " (", DescribeValue(*field), ")"));
          }
        }
      }
    }
  }

  // Each parameter at each of its bounds (choices: each value) must make a valid TrainingJob:
  // a learning rate range that starts at 0 is refused here, not in the middle of the sweep.
  const bool has_errors = errors->size() > first_error;
  if (template_ok && !has_errors) {
    FieldErrors base_errors;
    TrainingJob base = ParseTrainingJob(bare, validators, &base_errors);
    json defaulted = ToJson(base);
    defaulted.erase("status");
    for (size_t i = 0; i < spec.parameters.size(); ++i) {
      const SweepParameter& p = spec.parameters[i];
      for (const json& value : ProbeValues(p)) {
        json probe = defaulted;
        json* field = ResolvePath(probe, p.path, nullptr);
        if (field == nullptr) break;
        *field = value;
        FieldErrors probe_errors;
        ParseTrainingJob(probe, validators, &probe_errors);
        for (const FieldError& e : probe_errors) {
          report(IndexPath("spec.parameters", i),
                 absl::StrCat("with ", p.name, " = ", DescribeValue(value), ": ", e.ToString()));
        }
        if (!probe_errors.empty()) break;  // one value's problem is enough to name
      }
    }
  }
  return sw;
}

absl::StatusOr<Sweep> SweepFromJson(const json& object, const SectionValidators& validators) {
  FieldErrors errors;
  Sweep s = ParseSweep(object, validators, &errors);
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n", [](std::string* out, const FieldError& e) {
    out->append(e.ToString());
  }));
  return s;
}

json SweepSpecToJson(const SweepSpec& s) {
  json params = json::array();
  for (const SweepParameter& p : s.parameters) {
    json pj = {{"name", p.name}, {"path", p.path}, {"type", p.type}};
    if (p.type == kParamChoice) {
      pj["values"] = p.values;
    } else {
      if (p.min) pj["min"] = *p.min;
      if (p.max) pj["max"] = *p.max;
      pj["scale"] = p.scale;
      pj["gridPoints"] = p.grid_points;
    }
    params.push_back(std::move(pj));
  }
  json tmpl = {{"spec", s.trial_template.spec}};
  if (!s.trial_template.metadata.empty()) tmpl["metadata"] = s.trial_template.metadata;
  json j = {{"template", tmpl},
          {"parameters", params},
          {"objective", {{"metric", s.objective.metric}, {"goal", ObjectiveGoal(s.objective)}}},
          {"algorithm", {{"name", s.algorithm.name}, {"startupTrials", s.algorithm.startup_trials},
                         {"candidates", s.algorithm.candidates}, {"gamma", s.algorithm.gamma},
                         {"multivariate", s.algorithm.multivariate},
                         {"costAware", {{"enabled", s.algorithm.cost_aware.enabled},
                                        {"exponent", s.algorithm.cost_aware.exponent},
                                        {"cooling", s.algorithm.cost_aware.cooling}}}}},
          {"earlyStopping", {{"policy", s.early_stopping.policy}, {"minPasses", s.early_stopping.min_passes},
                             {"reductionFactor", s.early_stopping.reduction_factor},
                             {"startupTrials", s.early_stopping.startup_trials},
                             {"bootstrapCount", s.early_stopping.bootstrap_count}}},
          {"parallelism", s.parallelism},
          {"maxTrials", s.max_trials},
          {"maxFailedTrials", s.max_failed_trials},
          {"seed", s.seed}};
  if (s.budget.cpu_seconds > 0) j["budget"] = {{"cpuSeconds", s.budget.cpu_seconds}};
  return j;
}

json TrialStatusToJson(const TrialStatus& t) {
  json j = {{"name", t.name}, {"index", t.index}, {"parameters", ParametersToJsonObject(t.parameters)},
            {"phase", t.phase}};
  if (!t.intermediate.empty()) {
    json im = json::array();
    for (const MetricPoint& m : t.intermediate) im.push_back({{"pass", m.pass}, {"value", m.value}});
    j["intermediate"] = im;
  }
  if (t.objective) j["objective"] = *t.objective;
  if (!t.reason.empty()) j["reason"] = t.reason;
  if (t.paused_at > 0) j["pausedAt"] = t.paused_at;
  if (t.promoted_from > 0) j["promotedFrom"] = t.promoted_from;
  if (t.cost > 0) j["cost"] = t.cost;
  if (t.cpu_seconds > 0) j["cpuSeconds"] = t.cpu_seconds;
  return j;
}

json SweepStatusToJson(const SweepStatus& st) {
  json j = json::object();
  if (!st.phase.empty()) j["phase"] = st.phase;
  if (!st.conditions.empty()) j["conditions"] = ConditionsToJson(st.conditions);
  const TrialCounts& c = st.trial_counts;
  j["trialsByPhase"] = {{"pending", c.pending}, {"running", c.running}, {"succeeded", c.succeeded},
                        {"failed", c.failed}, {"stopped", c.stopped}, {"paused", c.paused}};
  if (!st.trials.empty()) {
    json ts = json::array();
    for (const TrialStatus& t : st.trials) ts.push_back(TrialStatusToJson(t));
    j["trials"] = ts;
  }
  if (st.best_trial) {
    j["bestTrial"] = {{"name", st.best_trial->name}, {"parameters", ParametersToJsonObject(st.best_trial->parameters)},
                      {"objective", st.best_trial->objective}, {"pass", st.best_trial->pass}};
  }
  if (!st.start_time.empty()) j["startTime"] = st.start_time;
  if (!st.completion_time.empty()) j["completionTime"] = st.completion_time;
  if (st.observed_generation) j["observedGeneration"] = st.observed_generation;
  if (!st.cpu_accounted_time.empty()) j["cpuAccountedTime"] = st.cpu_accounted_time;
  return j;
}

json ToJson(const Sweep& s) {
  json j = {{"apiVersion", s.api_version}, {"kind", s.kind}, {"metadata", ObjectMetaToJson(s.metadata)},
            {"spec", SweepSpecToJson(s.spec)}};
  if (s.status != SweepStatus{}) j["status"] = SweepStatusToJson(s.status);
  return j;
}

}  // namespace tandem::api
