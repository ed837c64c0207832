#include "api/schema.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/quantity.h"

namespace tandem::api {
namespace {

using json = nlohmann::json;

FieldSpec Obj(std::string name, std::vector<FieldSpec> fields) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = FieldType::kObject;
  f.fields = std::move(fields);
  return f;
}
FieldSpec Leaf(std::string name, FieldType type) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = type;
  return f;
}
FieldSpec Str(std::string name, std::vector<std::string> enums = {}) {
  FieldSpec f = Leaf(std::move(name), FieldType::kString);
  f.enums = std::move(enums);
  return f;
}
FieldSpec Int(std::string name, std::optional<double> min = {}, std::optional<double> max = {}) {
  FieldSpec f = Leaf(std::move(name), FieldType::kInteger);
  f.minimum = min;
  f.maximum = max;
  return f;
}
FieldSpec Num(std::string name, std::optional<double> min = {}, std::optional<double> max = {}) {
  FieldSpec f = Leaf(std::move(name), FieldType::kNumber);
  f.minimum = min;
  f.maximum = max;
  return f;
}
FieldSpec Bool(std::string name) { return Leaf(std::move(name), FieldType::kBoolean); }
FieldSpec Time(std::string name) { return Leaf(std::move(name), FieldType::kDateTime); }
FieldSpec Array(std::string name, FieldSpec item) {
  FieldSpec f = Leaf(std::move(name), FieldType::kArray);
  f.fields.push_back(std::move(item));
  return f;
}
FieldSpec Quantities(std::string name) {
  FieldSpec q = Leaf("", FieldType::kQuantity);
  q.minimum = 0;
  FieldSpec cpu = q, memory = q, gpu = q;
  cpu.name = "cpu";
  memory.name = "memory";
  gpu.name = "nvidia.com/gpu";
  return Obj(std::move(name), {cpu, memory, gpu});
}

FieldSpec Resources() {
  return Obj("resources", {Quantities("requests"), Quantities("limits")});
}

FieldSpec Conditions(std::vector<std::string> types) {
  return Array("conditions", Obj("", {Str("type", std::move(types)),
                                      Str("status", {"True", "False", "Unknown"}),
                                      Str("reason"), Str("message"),
                                      Time("lastTransitionTime")}));
}

FieldSpec Metadata() { return Leaf("metadata", FieldType::kOpen); }

FieldSpec BuildTrainingJob() {
  FieldSpec spec = Obj(
      "spec",
      {Str("queue"),
       Int("priority", -1000000, 1000000000),
       Bool("suspend"),
       Int("ttlSecondsAfterFinished", 0, 31536000),
       Str("image"),
       Obj("workers", {Int("count", 1, 4096), Int("minCount", 1, 4096), Int("maxCount", 1, 4096)}),
       Obj("trainer", {Resources(), Int("threads", 0, 1024)}),
       Obj("pserver", {Resources(), Int("threads", 0, 1024)}),
       Leaf("nodeSelector", FieldType::kStringMap),
       Int("passes", 1, 100000),
       Leaf("model", FieldType::kOpen),
       Leaf("data", FieldType::kOpen),
       Leaf("optimizer", FieldType::kOpen),
       Obj("sync", {Str("dense", {"ring", "pserver"}), Str("mode", {"sync", "async"}),
                    Int("staleness", 0, 1000), Int("bucketMiB", 1, 1024),
                    Str("compression", {"none", "bf16"})}),
       Obj("elastic", {Str("policy", {"constantGlobalBatch", "linear"}),
                       Int("warmupSteps", 0, 100000000)}),
       Obj("checkpoint", {Int("intervalSteps", 1, 100000000), Int("keep", 1, 1000),
                          Str("storage", {"PersistentVolumeClaim", "ExistingClaim", "HostPath"}),
                          [] {
                            FieldSpec size = Leaf("size", FieldType::kQuantity);
                            size.minimum = 0;
                            return size;
                          }(),
                          Str("storageClassName"), Str("claimName"), Str("hostPath")}),
       Obj("restartPolicy", {Int("backoffLimit", 0, 1000), Int("backoffSeconds", 0, 3600),
                             Array("retryableExitCodes", Int("", 1, 255))}),
       Obj("publish", {Int("everySteps", 0, 100000000), Int("everyMinutes", 0, 525600),
                       Int("keep", 1, 1000), Str("directory")}),
       Obj("serving", {Int("replicas", 0, 1000), Str("image"), Resources(), Int("threads", 0, 1024),
                       Int("maxBatchSize", 1, 4096), Int("maxQueueDelayMicros", 0, 1000000)})});
  FieldSpec status = Obj(
      "status",
      {Str("phase", {"Pending", "Queued", "Admitted", "Running", "Restarting", "Succeeded",
                     "Failed", "Suspended"}),
       Conditions({"Queued", "Admitted", "Running", "Restarting", "Succeeded", "Failed",
                   "Suspended", "Preempted"}),
       Obj("workers", {Int("desired", 0), Int("ready", 0), Int("running", 0),
                       Int("succeeded", 0), Int("failed", 0)}),
       Int("restarts", 0),
       Time("startTime"),
       Time("completionTime"),
       Obj("progress", {Int("step", 0), Int("pass", 0), Num("loss"), Num("accuracy", 0, 1),
                        Num("examplesPerSec", 0), Num("percent", 0, 100), Str("summary"),
                        Time("updateTime"), Int("testPass", 0), Num("testLoss"), Num("testAccuracy", 0, 1),
                        Num("testAuc", 0, 1)}),
       Str("pendingReason"),
       Int("queuePosition", 0),  // deprecated: no longer written (Queue status.waiting has positions)
       Array("placement", Str("")),
       Int("observedGeneration", 0),
       Obj("elastic", {Int("workers", 0), Int("epoch", 0), Str("reason"), Array("members", Int("", 0)),
                       Array("resizes", Obj("", {Int("from", 0), Int("to", 0),
                                                 Str("reason", {"Grow", "ReclaimBorrowed", "LowerPriority",
                                                                "WorkerFailed"}),
                                                 Str("message"), Time("time"), Int("epoch", 0),
                                                 Int("lostSteps", 0)}))})});
  return Obj("", {Str("apiVersion"), Str("kind"), Metadata(), spec, status});
}

FieldSpec BuildQueue() {
  FieldSpec spec = Obj(
      "spec", {Int("weight", 1, 1000), Quantities("guaranteed"), Quantities("borrowingLimit"),
               Array("namespaces", Str("")),
               Obj("preemption", {Bool("reclaimBorrowed"),
                                  Str("withinQueue", {"Never", "LowerPriority"})})});
  FieldSpec status =
      Obj("status", {Int("admittedJobs", 0), Int("pendingJobs", 0), Quantities("usage"),
                     Quantities("borrowed"), Num("weightedShare", 0), Conditions({"Active"}),
                     Obj("waiting", {Array("jobs", Obj("", {Str("namespace"), Str("name"), Int("position", 1),
                                                           Str("reason"), Str("detail")})),
                                     Time("updateTime")})});
  return Obj("", {Str("apiVersion"), Str("kind"), Metadata(), spec, status});
}

FieldSpec BuildSweep() {
  FieldSpec job_spec = *TrainingJobSchema().Find("spec");
  FieldSpec parameter = Obj(
      "", {Str("name"), Str("path"), Str("type", {"choice", "int", "float"}), Num("min"), Num("max"),
           Str("scale", {"linear", "log"}), Array("values", Leaf("", FieldType::kAny)),
           Int("gridPoints", 1, 100)});
  FieldSpec spec = Obj(
      "spec",
      {Obj("template", {Leaf("metadata", FieldType::kOpen), job_spec}),
       Array("parameters", parameter),
       Obj("objective", {Str("metric", {"test_accuracy", "test_loss", "test_auc"}),
                         Str("goal", {"maximize", "minimize"})}),
       Obj("algorithm", {Str("name", {"grid", "random", "tpe"}), Int("startupTrials", 0, 1000),
                         Int("candidates", 1, 1000), Num("gamma", 0.01, 0.99),
                         Bool("multivariate"), Obj("costAware", {Bool("enabled"), Num("exponent", 0, 1), Bool("cooling")})}),
       Obj("earlyStopping", {Str("policy", {"none", "asha", "sha", "median"}), Int("minPasses", 1, 100000),
                             Int("reductionFactor", 2, 100), Int("startupTrials", 1, 1000),
                             Int("bootstrapCount", 0, 1000)}),
       Int("parallelism", 1, 1000),
       Int("maxTrials", 1, 1000),
       Int("maxFailedTrials", 0, 1000),
       Int("seed", 0, 2147483647),
       Obj("budget", {Num("cpuSeconds", 1, 1e9)})});
  FieldSpec trial_phase = Str("phase", {"Pending", "Running", "Succeeded", "Failed", "Stopped", "Paused"});
  FieldSpec status = Obj(
      "status",
      {Str("phase", {"Running", "Succeeded", "Failed"}),
       Conditions({"Running", "Succeeded", "Failed"}),
       Obj("trialsByPhase", {Int("pending", 0), Int("running", 0), Int("succeeded", 0),
                             Int("failed", 0), Int("stopped", 0), Int("paused", 0)}),
       Array("trials", Obj("", {Str("name"), Int("index", 0), Leaf("parameters", FieldType::kOpen),
                                trial_phase, Array("intermediate", Obj("", {Int("pass", 1), Num("value")})),
                                Num("objective"), Str("reason"), Int("pausedAt", 0),
                                Int("promotedFrom", 0), Num("cost", 0), Num("cpuSeconds", 0)})),
       Obj("bestTrial", {Str("name"), Leaf("parameters", FieldType::kOpen), Num("objective"), Int("pass", 0)}),
       Time("startTime"),
       Time("completionTime"),
       Int("observedGeneration", 0),
       Time("cpuAccountedTime")});
  return Obj("", {Str("apiVersion"), Str("kind"), Metadata(), spec, status});
}

std::string Known(const FieldSpec& spec) {
  std::vector<std::string> names;
  for (const FieldSpec& f : spec.fields) names.push_back(f.name);
  return absl::StrJoin(names, ", ");
}

std::string FormatNumber(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrCat(v);
}

bool IsRfc3339(const std::string& s) {
  // 2026-11-28T23:50:55Z or with fraction / offset. Enough to catch typos; the API server
  // re-checks when it stores the object.
  if (s.size() < 20 || s.size() > 40) return false;
  auto digits = [&](size_t from, size_t n) {
    for (size_t i = from; i < from + n; ++i)
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    return true;
  };
  return digits(0, 4) && s[4] == '-' && digits(5, 2) && s[7] == '-' && digits(8, 2) &&
         (s[10] == 'T' || s[10] == 't') && digits(11, 2) && s[13] == ':' && digits(14, 2) &&
         s[16] == ':' && digits(17, 2) &&
         (s.back() == 'Z' || s.back() == 'z' || s.find_first_of("+-", 19) != std::string::npos);
}

// `shown` is the value as written (exact, even for integers a double cannot hold).
void CheckRange(double v, const std::string& shown, const FieldSpec& spec, const std::string& path,
                FieldErrors* errors) {
  if (spec.minimum && v < *spec.minimum) {
    errors->push_back({path, absl::StrCat("must be >= ", FormatNumber(*spec.minimum), ", got ", shown)});
  } else if (spec.maximum && v > *spec.maximum) {
    errors->push_back({path, absl::StrCat("must be <= ", FormatNumber(*spec.maximum), ", got ", shown)});
  }
}

}  // namespace

absl::string_view FieldTypeName(FieldType type) {
  switch (type) {
    case FieldType::kObject: return "object";
    case FieldType::kString: return "string";
    case FieldType::kInteger: return "integer";
    case FieldType::kNumber: return "number";
    case FieldType::kBoolean: return "boolean";
    case FieldType::kQuantity: return "quantity";
    case FieldType::kDateTime: return "date-time";
    case FieldType::kArray: return "array";
    case FieldType::kStringMap: return "map of strings";
    case FieldType::kOpen: return "object";
    case FieldType::kAny: return "any value";
  }
  return "?";
}

const FieldSpec* FieldSpec::Find(absl::string_view child) const {
  for (const FieldSpec& f : fields)
    if (f.name == child) return &f;
  return nullptr;
}

const FieldSpec& TrainingJobSchema() {
  static const FieldSpec* schema = new FieldSpec(BuildTrainingJob());
  return *schema;
}

const FieldSpec& QueueSchema() {
  static const FieldSpec* schema = new FieldSpec(BuildQueue());
  return *schema;
}

const FieldSpec& SweepSchema() {
  static const FieldSpec* schema = new FieldSpec(BuildSweep());
  return *schema;
}

std::string DescribeValue(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "a list";
    case json::value_t::string: {
      std::string s = v.get<std::string>();
      if (s.size() > 40) s = s.substr(0, 40) + "...";
      return json(s).dump(-1, ' ', true, json::error_handler_t::replace);
    }
    case json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case json::value_t::number_float: {
      double d = v.get<double>();
      if (std::isnan(d)) return ".nan";
      if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
      return v.dump();
    }
    default: return v.dump(-1, ' ', true, json::error_handler_t::replace);
  }
}

void CheckAgainstSchema(const json& value, const FieldSpec& spec, const std::string& path,
                        FieldErrors* errors) {
  if (value.is_null()) return;
  auto wrong_type = [&](absl::string_view want) {
    errors->push_back({path, absl::StrCat("must be ", want, ", got ", DescribeValue(value))});
  };
  switch (spec.type) {
    case FieldType::kObject:
      if (!value.is_object()) return wrong_type("an object");
      for (const auto& [key, child] : value.items()) {
        const FieldSpec* f = spec.Find(key);
        if (f == nullptr) {
          errors->push_back({JoinPath(path, key),
                             absl::StrCat("unknown field \"", key, "\" (known: ", Known(spec), ")")});
          continue;
        }
        CheckAgainstSchema(child, *f, JoinPath(path, key), errors);
      }
      return;
    case FieldType::kOpen:
      if (!value.is_object()) return wrong_type("an object");
      return;
    case FieldType::kAny:
      return;
    case FieldType::kString:
      if (!value.is_string()) return wrong_type("a string");
      if (!spec.enums.empty()) {
        const std::string& s = value.get_ref<const std::string&>();
        for (const std::string& e : spec.enums)
          if (s == e) return;
        errors->push_back({path, absl::StrCat("must be one of ", absl::StrJoin(spec.enums, ", "),
                                              "; got ", DescribeValue(value))});
      }
      return;
    case FieldType::kDateTime:
      if (!value.is_string()) return wrong_type("an RFC 3339 time string");
      if (!IsRfc3339(value.get<std::string>()))
        errors->push_back({path, absl::StrCat("must be an RFC 3339 time like 2026-01-02T15:04:05Z, got ",
                                              DescribeValue(value))});
      return;
    case FieldType::kBoolean:
      if (!value.is_boolean()) return wrong_type("a boolean (true or false)");
      return;
    case FieldType::kInteger: {
      if (value.is_number_float()) {
        double d = value.get<double>();
        if (!std::isfinite(d) || d != std::floor(d)) return wrong_type("an integer");
        return CheckRange(d, DescribeValue(value), spec, path, errors);
      }
      if (value.is_number_unsigned()) {
        if (value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
          return wrong_type("an integer of at most 64 bits");
        return CheckRange(static_cast<double>(value.get<uint64_t>()), DescribeValue(value), spec, path, errors);
      }
      if (!value.is_number_integer()) return wrong_type("an integer");
      return CheckRange(static_cast<double>(value.get<int64_t>()), DescribeValue(value), spec, path, errors);
    }
    case FieldType::kNumber: {
      if (!value.is_number()) return wrong_type("a number");
      double d = value.get<double>();
      if (!std::isfinite(d)) return wrong_type("a finite number");
      return CheckRange(d, DescribeValue(value), spec, path, errors);
    }
    case FieldType::kQuantity: {
      std::string text;
      if (value.is_string()) {
        text = value.get<std::string>();
      } else if (value.is_number_integer() || value.is_number_unsigned()) {
        text = value.dump();
      } else if (value.is_number_float() && std::isfinite(value.get<double>()) &&
                 value.get<double>() == std::floor(value.get<double>()) &&
                 std::fabs(value.get<double>()) < 9e15) {
        text = absl::StrCat(static_cast<int64_t>(value.get<double>()));
      } else if (value.is_number_float()) {
        // The CRD declares quantities int-or-string (as Kubernetes does for pods), so the API
        // server refuses 0.5; say how to write it instead of failing later at `kubectl apply`.
        errors->push_back({path, absl::StrCat("must be an integer or a quantity string; write ",
                                              DescribeValue(value), " as \"", value.dump(), "\" or in milli-units (\"500m\")")});
        return;
      } else {
        return wrong_type("a quantity such as 500m, 2Gi or 4");
      }
      auto q = Quantity::Parse(text);
      if (!q.ok()) {
        errors->push_back({path, std::string(q.status().message())});
        return;
      }
      if (spec.minimum && q->milli() < *spec.minimum * 1000)
        errors->push_back({path, absl::StrCat("must not be negative, got \"", text, "\"")});
      return;
    }
    case FieldType::kArray: {
      if (!value.is_array()) return wrong_type("a list");
      for (size_t i = 0; i < value.size(); ++i)
        CheckAgainstSchema(value[i], spec.fields[0], IndexPath(path, i), errors);
      return;
    }
    case FieldType::kStringMap:
      if (!value.is_object()) return wrong_type("a map of strings");
      for (const auto& [key, child] : value.items()) {
        if (!child.is_string())
          errors->push_back({JoinPath(path, key),
                             absl::StrCat("must be a string, got ", DescribeValue(child))});
      }
      return;
  }
}

}  // namespace tandem::api
