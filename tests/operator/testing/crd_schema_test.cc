// CrdSchema against the repository's real CRDs (crds/*.yaml): the shipped manifests validate
// clean; hand-made bad objects get kube-apiserver's field paths and words (the expected lines
// are what kube-apiserver v1.36.3 answered for the same objects, recorded with
// tests/cluster/controlplane.sh); defaulting, pruning, nulls, int-or-string quantities, numbers.
#include "operator/testing/crd_schema.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem::kube::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json LoadSchema(const std::string& file) {
  auto docs = YamlFileToJson(tandem::testing::SourceDir() + "/crds/" + file);
  EXPECT_TRUE(docs.ok()) << docs.status();
  if (!docs.ok() || docs->empty()) return json::object();
  return (*docs)[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
}

const CrdSchema& TrainingJobs() {
  static const auto* s = new CrdSchema(LoadSchema("trainingjob.yaml"));
  return *s;
}
const CrdSchema& Queues() {
  static const auto* s = new CrdSchema(LoadSchema("queue.yaml"));
  return *s;
}
const CrdSchema& Sweeps() {
  static const auto* s = new CrdSchema(LoadSchema("sweep.yaml"));
  return *s;
}

const json kModel = json::parse(
    R"({"inputs":[{"name":"x","shape":[4]}],"layers":[{"name":"fc","type":"fc","input":"x","size":2}],"cost":"fc"})");

json Job(json spec) {
  return {{"apiVersion", "tandem.dev/v1alpha1"}, {"kind", "TrainingJob"}, {"metadata", {{"name", "j"}}},
          {"spec", std::move(spec)}};
}

// What the apiserver does before validating: numbers, pruning, defaulting.
std::vector<std::string> Lines(const CrdSchema& schema, json obj) {
  NormalizeNumbers(obj);
  schema.Prune(obj);
  schema.Default(obj);
  std::vector<std::string> out;
  for (const auto& e : schema.Validate(obj)) out.push_back(e.ToString());
  return out;
}

std::multiset<std::string> Set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

TEST(CrdSchemaTest, ShippedCustomResourcesValidateClean) {
  const std::map<std::string, const CrdSchema*> by_kind = {
      {"TrainingJob", &TrainingJobs()}, {"Queue", &Queues()}, {"Sweep", &Sweeps()}};
  int checked = 0;
  for (const char* dir : {"examples", "deploy", "tests/cli/manifests/good"}) {
    for (const auto& e : fs::recursive_directory_iterator(tandem::testing::SourceDir() + "/" + dir)) {
      if (e.path().extension() != ".yaml") continue;
      auto docs = YamlFileToJson(e.path().string());
      if (!docs.ok()) continue;  // e.g. templated files; the manifests themselves parse
      for (json d : *docs) {
        if (!d.is_object() || !absl::StartsWith(d.value("apiVersion", ""), "tandem.dev/")) continue;
        auto it = by_kind.find(d.value("kind", ""));
        ASSERT_NE(it, by_kind.end()) << e.path() << ": kind " << d.value("kind", "");
        NormalizeNumbers(d);
        EXPECT_EQ(it->second->Prune(d), std::vector<std::string>{}) << e.path();
        it->second->Default(d);
        for (const auto& err : it->second->Validate(d)) ADD_FAILURE() << e.path() << ": " << err.ToString();
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 5) << "expected the examples' TrainingJobs, Sweeps and Queues";
}

// Each row: the object, and the errors kube-apiserver v1.36.3 gave for it (its order is a Go
// map's, so the comparison is as sets).
struct BadCase {
  std::string name;
  const CrdSchema* schema;
  json object;
  std::vector<std::string> want;
};

TEST(CrdSchemaTest, BadObjectsGetTheApiserversFieldsAndWords) {
  const std::vector<BadCase> cases = {
      {"queue guaranteed {}", &Queues(),
       {{"metadata", {{"name", "q"}}}, {"spec", {{"guaranteed", json::object()}}}},
       {"spec.guaranteed.cpu: Required value", "spec.guaranteed.memory: Required value",
        "spec.guaranteed.nvidia.com/gpu: Required value"}},
      {"several at once", &TrainingJobs(),
       Job({{"passes", 0}, {"sync", {{"dense", "x"}}}, {"workers", {{"count", "two"}}}}),
       {"spec.passes: Invalid value: 0: spec.passes in body should be greater than or equal to 1",
        "spec.workers.count: Invalid value: \"string\": spec.workers.count in body must be of type integer: \"string\"",
        "spec.sync.dense: Unsupported value: \"x\": supported values: \"ring\", \"pserver\"",
        "spec.model: Required value"}},
      {"no spec", &TrainingJobs(), {{"metadata", {{"name", "j"}}}}, {"spec: Required value"}},
      {"null spec", &TrainingJobs(), {{"metadata", {{"name", "j"}}}, {"spec", nullptr}}, {"spec: Required value"}},
      {"spec a number", &TrainingJobs(), Job(7),
       {"spec: Invalid value: \"integer\": spec in body must be of type object: \"integer\""}},
      {"fractional cpu (int-or-string)", &TrainingJobs(),
       Job({{"model", kModel}, {"trainer", {{"resources", {{"requests", {{"cpu", 0.5}}}}}}}}),
       {"spec.trainer.resources.requests.cpu: Invalid value: \"number\": spec.trainer.resources.requests.cpu in body "
        "must be of type integer,string: \"number\"",
        "<nil>: Invalid value: \"\": \"spec.trainer.resources.requests.cpu\" must validate at least one schema (anyOf)",
        "spec.trainer.resources.requests.cpu: Invalid value: \"number\": spec.trainer.resources.requests.cpu in body "
        "must be of type integer: \"number\"",
        "<nil>: Invalid value: \"\": Checked value must be of type integer (default format) in "
        "spec.trainer.resources.requests.cpu"}},
      {"quantity with a bad suffix", &TrainingJobs(),
       Job({{"model", kModel}, {"trainer", {{"resources", {{"requests", {{"memory", "2GB"}}}}}}}}),
       {"spec.trainer.resources.requests.memory: Invalid value: \"2GB\": spec.trainer.resources.requests.memory in "
        "body should match '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+"
        "(\\.[0-9]*)?)|(\\.[0-9]+))))?$'"}},
      {"int32 overflow and maximum", &TrainingJobs(), Job({{"model", kModel}, {"priority", 99999999999LL}}),
       {"<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.priority",
        "spec.priority: Invalid value: 99999999999: spec.priority in body should be less than or equal to 1000000000"}},
      {"floats and booleans in int32 fields", &TrainingJobs(),
       Job({{"model", kModel}, {"passes", 2.0}, {"priority", 1.5}, {"workers", {{"count", 3000000000LL}}},
            {"trainer", {{"threads", true}}}}),
       {"spec.trainer.threads: Invalid value: \"\": spec.trainer.threads in body must be of type int32: \"\"",
        "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.workers.count",
        "spec.workers.count: Invalid value: 3000000000: spec.workers.count in body should be less than or equal to 4096",
        "spec.priority: Invalid value: \"float64\": spec.priority in body must be of type int32: \"float64\"",
        "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.priority"}},
      {"int64 out of range, maps of strings, numbers", &TrainingJobs(),
       Job({{"model", kModel}, {"data", {{"seed", 1e300}}}, {"optimizer", {{"momentum", "x"}}},
            {"nodeSelector", {{"a", 1}, {"b", "c"}}}}),
       {"spec.nodeSelector.a: Invalid value: \"integer\": spec.nodeSelector.a in body must be of type string: \"integer\"",
        "spec.data.seed: Invalid value: \"float64\": spec.data.seed in body must be of type int64: \"float64\"",
        "<nil>: Invalid value: \"\": Checked value must be of type integer with format int64 in spec.data.seed",
        "spec.optimizer.momentum: Invalid value: \"string\": spec.optimizer.momentum in body must be of type number: "
        "\"string\""}},
      {"array item bounds and nulls", &TrainingJobs(),
       Job({{"model", kModel}, {"restartPolicy", {{"retryableExitCodes", {75, 256, nullptr}}}}}),
       {"spec.restartPolicy.retryableExitCodes[1]: Invalid value: 256: spec.restartPolicy.retryableExitCodes[1] in "
        "body should be less than or equal to 255",
        "spec.restartPolicy.retryableExitCodes[2]: Invalid value: \"null\": spec.restartPolicy.retryableExitCodes[2] "
        "in body must be of type integer: \"null\""}},
      {"enum of a queue", &Queues(), {{"spec", {{"preemption", {{"withinQueue", "Always"}}}}}},
       {"spec.preemption.withinQueue: Unsupported value: \"Always\": supported values: \"Never\", \"LowerPriority\""}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Set(Lines(*c.schema, c.object)), Set(c.want)) << c.name;
  }
  // A Sweep with 33 parameters (maxItems 32), one without a path (required).
  json params = json::array();
  for (int i = 0; i < 33; ++i) params.push_back({{"name", "p"}, {"path", "spec.passes"}, {"type", "int"}});
  params[5].erase("path");
  json sweep = {{"spec", {{"template", {{"spec", {{"model", kModel}}}}}, {"parameters", params}}}};
  EXPECT_EQ(Set(Lines(Sweeps(), sweep)),
            Set({"spec.parameters[5].path: Required value", "spec.parameters: Too many: 33: must have at most 32 items"}));
}

// A schema with every keyword our CRDs do not use, registered on kube-apiserver v1.36.3 as
// probes.x.dev; the expected lines are its answers to the same objects.
TEST(CrdSchemaTest, EveryKeywordAsTheApiserverWordsIt) {
  const CrdSchema probe(json::parse(R"({"type":"object","properties":{"spec":{"type":"object","minProperties":1,
    "properties":{"s":{"type":"string","minLength":3,"maxLength":5},"one":{"type":"string","maxLength":1},
    "l":{"type":"array","minItems":1,"maxItems":2,"items":{"type":"string"}},
    "l1":{"type":"array","maxItems":1,"items":{"type":"string"}},
    "x":{"type":"number","minimum":0,"exclusiveMinimum":true,"maximum":10,"exclusiveMaximum":true},
    "i":{"type":"integer","minimum":-1000000,"maximum":1000000000},"n":{"type":"string","nullable":true},
    "nd":{"type":"string","nullable":true,"default":"dflt"},"d":{"type":"string","default":"dflt"},
    "t":{"type":"string","format":"date-time"},"e":{"type":"integer","enum":[1,2]},
    "es":{"type":"string","enum":["a","b"]},"m":{"type":"object","maxProperties":1,"additionalProperties":{"type":"integer"}},
    "o":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"minProperties":2},
    "ios":{"x-kubernetes-int-or-string":true,"anyOf":[{"type":"integer"},{"type":"string"}],"pattern":"^[0-9]+m?$"}}},
    "status":{"type":"object","properties":{"t":{"type":"string","format":"date-time"},"c":{"type":"integer","minimum":0}}}}})"));
  auto spec = [](const char* text) { return json{{"metadata", {{"name", "p"}}}, {"spec", json::parse(text)}}; };
  EXPECT_EQ(Set(Lines(probe, spec(R"({"s":"ab","one":"toolong","l":[],"l1":["a","b"],"x":0,"i":-2000000,
      "t":"garbage","e":3,"es":"c","m":{"a":1,"b":"x"},"o":{"b":1},"ios":"12x"})"))),
            Set({"spec.s: Invalid value: \"ab\": spec.s in body should be at least 3 chars long",
                 "spec.x: Invalid value: 0: spec.x in body should be greater than 0",
                 "spec.l1: Too many: 2: must have at most 1 item",
                 "spec.i: Invalid value: -2000000: spec.i in body should be greater than or equal to -1000000",
                 "spec.o: Invalid value: 0: spec.o in body should have at least 2 properties",
                 "spec.o.a: Required value",
                 "spec.one: Too long: may not be more than 1 byte",
                 "spec.e: Unsupported value: 3: supported values: \"1\", \"2\"",
                 "spec.es: Unsupported value: \"c\": supported values: \"a\", \"b\"",
                 "spec.ios: Invalid value: \"12x\": spec.ios in body should match '^[0-9]+m?$'",
                 "spec.l: Invalid value: 0: spec.l in body should have at least 1 items",
                 "spec.t: Invalid value: \"garbage\": spec.t in body must be of type date-time: \"garbage\"",
                 "spec.m: Too many: 2: must have at most 1 item",
                 "spec.m.b: Invalid value: \"string\": spec.m.b in body must be of type integer: \"string\""}));
  EXPECT_EQ(Set(Lines(probe, spec(R"({"s":"abcdefgh","l":["a","b","c"],"x":10,"i":-2000000.5,"e":"1","es":5,
      "ios":1.5,"n":null,"nd":null,"d":null})"))),
            Set({"spec.l: Too many: 3: must have at most 2 items",
                 "spec.s: Too long: may not be more than 5 bytes",
                 "spec.x: Invalid value: 10: spec.x in body should be less than 10",
                 "spec.i: Invalid value: \"number\": spec.i in body must be of type integer: \"number\"",
                 "<nil>: Invalid value: \"\": Checked value must be of type integer (default format) in spec.i",
                 "spec.i: Invalid value: -2.0000005e+06: spec.i in body should be greater than or equal to -1e+06",
                 "spec.e: Invalid value: \"string\": spec.e in body must be of type integer: \"string\"",
                 "spec.e: Unsupported value: \"1\": supported values: \"1\", \"2\"",
                 "spec.es: Invalid value: \"integer\": spec.es in body must be of type string: \"integer\"",
                 "spec.es: Unsupported value: 5: supported values: \"a\", \"b\"",
                 "spec.ios: Invalid value: \"number\": spec.ios in body must be of type integer,string: \"number\"",
                 "<nil>: Invalid value: \"\": \"spec.ios\" must validate at least one schema (anyOf)",
                 "spec.ios: Invalid value: \"number\": spec.ios in body must be of type integer: \"number\"",
                 "<nil>: Invalid value: \"\": Checked value must be of type integer (default format) in spec.ios"}));
  EXPECT_EQ(Set(Lines(probe, spec(R"({"s":true,"l":"x","o":"y","m":[1]})"))),
            Set({"spec.s: Invalid value: \"boolean\": spec.s in body must be of type string: \"boolean\"",
                 "spec.o: Invalid value: \"string\": spec.o in body must be of type object: \"string\"",
                 "spec.l: Invalid value: \"string\": spec.l in body must be of type array: \"string\"",
                 "spec.m: Invalid value: \"array\": spec.m in body must be of type object: \"array\""}));
  EXPECT_EQ(Set(Lines(probe, spec(R"({"i":12345678901234567890})"))),
            Set({"spec.i: Invalid value: \"number\": spec.i in body must be of type integer: \"number\"",
                 "<nil>: Invalid value: \"\": Checked value must be of type integer (default format) in spec.i",
                 "spec.i: Invalid value: 1.2345678901234567e+19: spec.i in body should be less than or equal to 1e+09"}));
  // Accepted, with the apiserver's stored result: defaults where absent or a non-nullable null,
  // a nullable null with a default kept, integral numbers as integers.
  json ok = spec(R"({"s":"abc","t":"2024-01-02T03:04:05Z","ios":5,"nd":null,"d":null,"i":1e3})");
  EXPECT_EQ(Lines(probe, ok), std::vector<std::string>{});
  NormalizeNumbers(ok);
  probe.Default(ok);
  EXPECT_EQ(ok["spec"], json::parse(R"({"d":"dflt","i":1000,"ios":5,"nd":null,"s":"abc","t":"2024-01-02T03:04:05Z"})"));
  json empty = spec("{}");
  EXPECT_EQ(Lines(probe, empty), std::vector<std::string>{});  // minProperties met by the defaults
  probe.Default(empty);
  EXPECT_EQ(empty["spec"], json({{"d", "dflt"}, {"nd", "dflt"}}));
  for (const char* t : {"2024-01-02T03:04:05.123+02:00", "2024-01-02t03:04:05z"}) {
    EXPECT_EQ(Lines(probe, spec(absl::StrCat(R"({"t":")", t, R"("})").c_str())), std::vector<std::string>{}) << t;
  }
}

// A CRD is user input: a schema whose keywords have the wrong JSON types, and objects of every
// shape, are handled without throwing.
TEST(CrdSchemaTest, MalformedSchemasAndObjectsDoNotThrow) {
  const std::vector<json> schemas = {
      json::parse(R"({"type":5,"format":5,"properties":[],"required":"x","enum":3,"items":true,"pattern":7})"),
      json::parse(R"({"type":"object","properties":{"a":{"type":"string","pattern":"(unclosed","minLength":"x"},
                     "b":{"anyOf":"x","oneOf":[1,2],"allOf":[{}],"not":{"type":"string"}},
                     "c":{"type":"array","items":[1],"maxItems":-1,"uniqueItems":true},
                     "d":{"additionalProperties":false,"maxProperties":"x"},
                     "e":{"default":{"x":1},"properties":{"x":{"default":null}}}},"required":[1,"a"]})"),
      json::parse("[]"), json::parse("null")};
  const std::vector<json> objects = {
      json::parse(R"({"a":"abc","b":"x","c":[1,1,null],"d":{"k":1},"e":null,"f":{"g":[{}]}})"),
      json::parse(R"({"a":1,"b":[],"c":{},"d":[],"e":"s","metadata":5})"), json::parse("[1,2]"), json::parse("7"),
      json::parse("null")};
  for (const auto& sc : schemas) {
    const CrdSchema schema(sc);
    for (json o : objects) {
      EXPECT_NO_THROW({
        NormalizeNumbers(o);
        schema.Prune(o);
        schema.Default(o);
        schema.Validate(o);
        schema.ValidateStatus(o);
      }) << sc.dump() << " " << o.dump();
    }
  }
  // The unclosed pattern is reported, not thrown.
  const CrdSchema bad_pattern(schemas[1]);
  bool reported = false;
  for (const auto& e : bad_pattern.Validate(json{{"a", "abc"}})) reported |= absl::StrContains(e.message, "(unclosed");
  EXPECT_TRUE(reported);
}

TEST(CrdSchemaTest, StatusIsValidatedRelativeToStatus) {
  json job = Job({{"model", kModel}});
  job["status"] = {{"phase", "Bogus"}, {"startTime", "x"}, {"workers", {{"ready", -1}}},
                   {"progress", {{"updateTime", "2024-01-02t03:04:05z"}}}};
  std::vector<std::string> got;
  for (const auto& e : TrainingJobs().ValidateStatus(job)) got.push_back(e.ToString());
  EXPECT_EQ(Set(got), Set({"status.phase: Unsupported value: \"Bogus\": supported values: \"Pending\", \"Queued\", "
                           "\"Admitted\", \"Running\", \"Restarting\", \"Succeeded\", \"Failed\", \"Suspended\"",
                           "status.startTime: Invalid value: \"x\": startTime in body must be of type date-time: \"x\"",
                           "status.workers.ready: Invalid value: -1: workers.ready in body should be greater than or "
                           "equal to 0"}));
  for (const char* ok : {"2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123+02:00", "2024-02-29T00:00:00-0700"}) {
    job["status"] = {{"startTime", ok}};
    EXPECT_TRUE(TrainingJobs().ValidateStatus(job).empty()) << ok;
  }
  for (const char* bad : {"2024-01-02", "2024-01-02 03:04:05Z", "2024-01-02T03:04:05", "2023-02-29T00:00:00Z"}) {
    job["status"] = {{"startTime", bad}};
    EXPECT_EQ(TrainingJobs().ValidateStatus(job).size(), 1u) << bad;
  }
  job.erase("status");
  EXPECT_TRUE(TrainingJobs().ValidateStatus(job).empty());
  // The causes carry the reasons the apiserver uses.
  job["status"] = {{"phase", "Bogus"}, {"restarts", "x"}, {"workers", {{"ready", -1}}}};
  std::set<std::string> reasons;
  for (const auto& e : TrainingJobs().ValidateStatus(job)) reasons.insert(e.reason);
  EXPECT_EQ(reasons, (std::set<std::string>{"FieldValueNotSupported", "FieldValueTypeInvalid", "FieldValueInvalid"}));
}

TEST(CrdSchemaTest, DefaultsAsTheApiserverStoresThem) {
  json job = Job({{"model", kModel}});
  TrainingJobs().Default(job);
  // kube-apiserver v1.36.3's stored spec for the same object.
  EXPECT_EQ(job["spec"], json::parse(R"({"checkpoint":{"intervalSteps":500,"keep":3,"storage":"PersistentVolumeClaim"},
      "image":"tandem/tandem:0.1.0","model":{"cost":"fc","inputs":[{"name":"x","shape":[4]}],
      "layers":[{"input":"x","name":"fc","size":2,"type":"fc"}]},"passes":1,"priority":0,"pserver":{},"queue":"default",
      "restartPolicy":{"backoffLimit":3,"backoffSeconds":10,"retryableExitCodes":[75,137,143]},"suspend":false,
      "sync":{"bucketMiB":4,"compression":"none","dense":"ring","mode":"sync","staleness":4},"trainer":{},
      "workers":{"count":1}})"));
  // Set fields are kept; nulls of defaulted fields are defaulted, other nulls dropped.
  json set = Job({{"model", kModel}, {"passes", 7}, {"queue", nullptr}, {"ttlSecondsAfterFinished", nullptr},
                  {"workers", {{"count", 4}}}});
  TrainingJobs().Default(set);
  EXPECT_EQ(set["spec"]["passes"], 7);
  EXPECT_EQ(set["spec"]["queue"], "default");
  EXPECT_FALSE(set["spec"].contains("ttlSecondsAfterFinished"));
  EXPECT_EQ(set["spec"]["workers"], json({{"count", 4}}));
  json q = {{"spec", json::object()}};
  Queues().Default(q);
  EXPECT_EQ(q["spec"], json::parse(R"({"preemption":{"reclaimBorrowed":true,"withinQueue":"Never"},"weight":1})"));
  json no_spec = {{"metadata", {{"name", "q"}}}};
  Queues().Default(no_spec);
  EXPECT_FALSE(no_spec.contains("spec"));
}

TEST(CrdSchemaTest, PrunesWhatTheSchemaDoesNotDeclare) {
  json job = Job({{"model", {{"inputs", {{{"name", "x"}, {"shape", {4}}, {"extra", 1}}}},
                             {"layers", {{{"name", "fc"}, {"type", "fc"}, {"size", 2}}}},
                             {"anything", {{"deep", true}}}}},
                  {"data", {{"train", {{"format", "idx"}, {"images", "a"}, {"x", 1}, {"stream", {{"dir", "d"}, {"y", 2}}}}}}},
                  {"nodeSelector", {{"gpu", "a100"}}},
                  {"replicas", 3},
                  {"trainer", {{"bar", 1}, {"resources", {{"requests", {{"amd.com/gpu", 1}, {"cpu", "1"}}}}}}}});
  job["metadata"]["label"] = {{"a", "b"}};
  job["metadata"]["labels"] = {{"a", "b"}};
  job["extra"] = 1;
  EXPECT_EQ(TrainingJobs().Prune(job),
            (std::vector<std::string>{"metadata.label", "extra", "spec.data.train.stream.y", "spec.replicas",
                                      "spec.trainer.bar", "spec.trainer.resources.requests.amd.com/gpu"}));
  // Kept: preserve-unknown-fields (model, data.train), additionalProperties (nodeSelector),
  // metadata's own fields, apiVersion and kind.
  EXPECT_EQ(job["spec"]["model"]["anything"], json({{"deep", true}}));
  EXPECT_EQ(job["spec"]["model"]["inputs"][0]["extra"], 1);
  EXPECT_EQ(job["spec"]["data"]["train"]["x"], 1);
  EXPECT_EQ(job["spec"]["data"]["train"]["stream"], json({{"dir", "d"}}));
  EXPECT_EQ(job["spec"]["nodeSelector"], json({{"gpu", "a100"}}));
  EXPECT_EQ(job["spec"]["trainer"], json({{"resources", {{"requests", {{"cpu", "1"}}}}}}));
  EXPECT_EQ(job["metadata"], json({{"name", "j"}, {"labels", {{"a", "b"}}}}));
  EXPECT_EQ(job["kind"], "TrainingJob");
}

TEST(CrdSchemaTest, IntOrStringQuantities) {
  for (json q : {json(2), json("2"), json("500m"), json("1.5"), json("2Gi"), json("1e9"), json(".5"), json("+1k"), json(2.0)}) {
    json job = Job({{"model", kModel}, {"trainer", {{"resources", {{"limits", {{"cpu", q}, {"memory", q}}}}}}}});
    EXPECT_EQ(Lines(TrainingJobs(), job), std::vector<std::string>{}) << q.dump();
  }
  for (json q : {json(0.5), json("2GB"), json("1.2.3"), json(true), json("")}) {
    json job = Job({{"model", kModel}, {"trainer", {{"resources", {{"limits", {{"cpu", q}}}}}}}});
    EXPECT_FALSE(Lines(TrainingJobs(), job).empty()) << q.dump();
  }
}

TEST(CrdSchemaTest, NumbersAsTheApiserverDecodesThem) {
  json v = json::parse(R"({"a":2.0,"b":1e3,"c":1.5,"d":12345678901234567890,"e":[-3.0,7],"f":9223372036854775807})");
  NormalizeNumbers(v);
  EXPECT_TRUE(v["a"].is_number_integer());
  EXPECT_EQ(v["b"], 1000);
  EXPECT_TRUE(v["b"].is_number_integer());
  EXPECT_TRUE(v["c"].is_number_float());
  EXPECT_TRUE(v["d"].is_number_float());
  EXPECT_TRUE(v["e"][0].is_number_integer());
  EXPECT_EQ(v["f"].get<int64_t>(), INT64_MAX);
}

TEST(CrdSchemaTest, GoFormatting) {
  const std::vector<std::pair<double, std::string>> floats = {
      {0, "0"},          {0.5, "0.5"},        {-1e6, "-1e+06"}, {1e9, "1e+09"},    {123456, "123456"},
      {1234567, "1.234567e+06"}, {-2000000.5, "-2.0000005e+06"}, {0.0001, "0.0001"}, {0.00001, "1e-05"},
      {1.2345678901234567e19, "1.2345678901234567e+19"}, {100, "100"}, {2.5e-3, "0.0025"}};
  for (const auto& [v, want] : floats) EXPECT_EQ(GoFloat(v), want) << v;
  EXPECT_EQ(GoQuote("a\"b\\c\n\x01é"), "\"a\\\"b\\\\c\\n\\x01é\"");
}

TEST(CrdSchemaTest, InvalidStatusObject) {
  std::vector<FieldError> errs = {{"FieldValueRequired", "spec.guaranteed.cpu", "Required value"}};
  json s = InvalidStatus("Queue", "tandem.dev", "q", errs);
  EXPECT_EQ(s["code"], 422);
  EXPECT_EQ(s["reason"], "Invalid");
  EXPECT_EQ(s["message"], "Queue.tandem.dev \"q\" is invalid: spec.guaranteed.cpu: Required value");
  EXPECT_EQ(s["details"]["causes"][0],
            json({{"reason", "FieldValueRequired"}, {"message", "Required value"}, {"field", "spec.guaranteed.cpu"}}));
  errs.push_back({"FieldValueRequired", "spec.guaranteed.memory", "Required value"});
  EXPECT_EQ(InvalidMessage("Queue", "tandem.dev", "q", errs),
            "Queue.tandem.dev \"q\" is invalid: [spec.guaranteed.cpu: Required value, spec.guaranteed.memory: Required value]");
}

}  // namespace
}  // namespace tandem::kube::testing
