// Keeps crds/*.yaml and the C++ API (api/schema.cc, defaults in api/*.cc) in step: every field
// of one exists in the other with the same type, enum, range and default, every CRD field has a
// description (`kubectl explain` teaches the API), and printer columns point at real fields.
#include <functional>

#include "absl/strings/str_split.h"
#include "api/queue.h"
#include "api/schema.h"
#include "api/sweep.h"
#include "api/training_job.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem::api {
namespace {

using json = nlohmann::json;

json LoadCrd(const std::string& name) {
  auto docs = YamlFileToJson(testing::SourceDir() + "/crds/" + name);
  EXPECT_TRUE(docs.ok()) << docs.status();
  if (!docs.ok() || docs->empty()) return json::object();
  return (*docs)[0];
}

const json& Schema(const json& crd) { return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]; }

class Walker {
 public:
  std::vector<std::string> problems;

  // Walks the C++ field `f` beside the CRD schema node `s` at `path`.
  void Compare(const FieldSpec& f, const json& s, const std::string& path) {
    auto fail = [&](const std::string& what) { problems.push_back(path + ": " + what); };
    if (!s.is_object()) return fail("missing from the CRD");
    std::string type = s.value("type", "");
    switch (f.type) {
      case FieldType::kObject: {
        if (type != "object") return fail("CRD type " + type + ", C++ object");
        const json props = s.value("properties", json::object());
        for (const FieldSpec& child : f.fields) {
          if (!props.contains(child.name)) {
            fail("C++ field \"" + child.name + "\" is not in the CRD");
            continue;
          }
          Compare(child, props[child.name], JoinPath(path, child.name));
        }
        for (const auto& [name, unused] : props.items())
          if (!f.Find(name)) fail("CRD field \"" + name + "\" is not in the C++ API");
        return;
      }
      case FieldType::kOpen:
        if (type != "object") fail("CRD type " + type + ", C++ open object");
        if (path != "metadata" && !s.value("x-kubernetes-preserve-unknown-fields", false))
          fail("open in C++ but the CRD would prune unknown fields");
        return;
      case FieldType::kAny:
        if (s.contains("type") || !s.value("x-kubernetes-preserve-unknown-fields", false))
          fail("any value in C++: the CRD must give no type and preserve unknown fields");
        return;
      case FieldType::kString:
      case FieldType::kDateTime: {
        if (type != "string") return fail("CRD type " + type + ", C++ string");
        bool crd_time = s.value("format", "") == "date-time";
        if (crd_time != (f.type == FieldType::kDateTime)) fail("date-time format differs");
        std::vector<std::string> crd_enum = s.value("enum", std::vector<std::string>{});
        if (crd_enum != f.enums) fail("enum differs");
        return;
      }
      case FieldType::kInteger:
      case FieldType::kNumber: {
        const char* want = f.type == FieldType::kInteger ? "integer" : "number";
        if (type != want) return fail("CRD type " + type + ", C++ " + want);
        CompareBound("minimum", f.minimum, s, path);
        CompareBound("maximum", f.maximum, s, path);
        return;
      }
      case FieldType::kBoolean:
        if (type != "boolean") fail("CRD type " + type + ", C++ boolean");
        return;
      case FieldType::kQuantity:
        if (!s.value("x-kubernetes-int-or-string", false) || !s.contains("pattern"))
          fail("a quantity must be int-or-string with the quantity pattern");
        return;
      case FieldType::kArray:
        if (type != "array") return fail("CRD type " + type + ", C++ array");
        Compare(f.fields[0], s.value("items", json()), path + "[]");
        return;
      case FieldType::kStringMap:
        if (type != "object" || s.value("additionalProperties", json()).value("type", "") != "string")
          fail("a map of strings must be an object with additionalProperties of type string");
        return;
    }
  }

  void CompareBound(const char* key, const std::optional<double>& cpp, const json& s, const std::string& path) {
    bool has = s.contains(key);
    if (has != cpp.has_value() || (has && s[key].get<double>() != *cpp))
      problems.push_back(path + ": " + key + " differs (CRD " + (has ? s[key].dump() : "none") + ", C++ " +
                         (cpp ? std::to_string(*cpp) : "none") + ")");
  }

  // Every node of the CRD has a description; every default equals the C++ default.
  void CheckDescriptionsAndDefaults(const json& s, const std::string& path, const json* cpp_defaults) {
    if (!s.is_object()) return;
    // metadata is the exception: a real kube-apiserver refuses a CRD whose metadata schema says
    // anything but `type: object` (cluster_crd_test applies crds/ to one).
    if (path != "" && path != "metadata" && s.value("description", "").empty())
      problems.push_back(path + ": no description");
    if (s.contains("default")) {
      if (cpp_defaults == nullptr) {
        problems.push_back(path + ": CRD default but no C++ value");
      } else if (s["default"].is_object()) {
        if (!cpp_defaults->is_object()) problems.push_back(path + ": CRD defaults an object, C++ does not");
      } else if (s["default"] != *cpp_defaults) {
        problems.push_back(path + ": CRD default " + s["default"].dump() + ", C++ default " + cpp_defaults->dump());
      }
    }
    if (s.contains("properties")) {
      for (const auto& [name, child] : s["properties"].items()) {
        const json* d = cpp_defaults && cpp_defaults->is_object() && cpp_defaults->contains(name)
                            ? &(*cpp_defaults)[name]
                            : nullptr;
        CheckDescriptionsAndDefaults(child, JoinPath(path, name), d);
      }
    }
    if (s.contains("items")) CheckDescriptionsAndDefaults(s["items"], path + "[]", nullptr);
  }
};

std::string Dump(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += p + "\n";
  return s;
}

// A JSONPath of a printer column (".status.workers.ready", ".status.waiting.jobs[0].name") must
// name a field of the C++ API.
void CheckColumns(const json& crd, const FieldSpec& root, std::vector<std::string>* problems) {
  for (const json& col : crd["spec"]["versions"][0]["additionalPrinterColumns"]) {
    std::string p = col["jsonPath"];
    if (p.rfind(".metadata.", 0) == 0) continue;
    std::string unescaped;
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i] == '\\' && i + 1 < p.size() && p[i + 1] == '.') {
        unescaped += '\x01';  // an escaped dot inside a key
        ++i;
      } else {
        unescaped += p[i];
      }
    }
    const FieldSpec* f = &root;
    for (absl::string_view part : absl::StrSplit(unescaped.substr(1), '.')) {
      std::string key(part);
      for (char& c : key)
        if (c == '\x01') c = '.';
      // "jobs[0]": an element of the array field "jobs".
      const size_t bracket = key.find('[');
      const bool element = bracket != std::string::npos && key.back() == ']';
      if (element) key.resize(bracket);
      f = f ? f->Find(key) : nullptr;
      if (element) f = f && f->type == FieldType::kArray && !f->fields.empty() ? &f->fields[0] : nullptr;
    }
    if (!f) problems->push_back("printer column " + col["name"].get<std::string>() + ": " + p + " is not a field");
  }
}

TEST(CrdDriftTest, TrainingJobCrdMatchesTheCppApi) {
  json crd = LoadCrd("trainingjob.yaml");
  EXPECT_EQ(crd["spec"]["group"], kGroup);
  EXPECT_EQ(crd["spec"]["names"]["kind"], kTrainingJobKind);
  EXPECT_EQ(crd["spec"]["scope"], "Namespaced");
  EXPECT_EQ(crd["spec"]["names"]["shortNames"], json::array({"tj"}));
  EXPECT_EQ(crd["spec"]["versions"][0]["name"], kVersion);
  EXPECT_TRUE(crd["spec"]["versions"][0]["subresources"].contains("status"));
  Walker w;
  w.Compare(TrainingJobSchema(), Schema(crd), "");
  // The C++ defaults of a job that sets only what is required.
  FieldErrors errors;
  TrainingJob job = ParseTrainingJob(
      {{"apiVersion", kApiVersion}, {"kind", "TrainingJob"}, {"metadata", {{"name", "a"}}}, {"spec", {{"model", {{"x", 1}}}}}},
      SectionValidators{}, &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].ToString();
  json defaults = ToJson(job);
  w.CheckDescriptionsAndDefaults(Schema(crd), "", &defaults);
  CheckColumns(crd, TrainingJobSchema(), &w.problems);
  EXPECT_TRUE(w.problems.empty()) << Dump(w.problems);
}

TEST(CrdDriftTest, QueueCrdMatchesTheCppApi) {
  json crd = LoadCrd("queue.yaml");
  EXPECT_EQ(crd["spec"]["names"]["kind"], kQueueKind);
  EXPECT_EQ(crd["spec"]["scope"], "Cluster");
  Walker w;
  w.Compare(QueueSchema(), Schema(crd), "");
  FieldErrors errors;
  Queue q = ParseQueue({{"apiVersion", kApiVersion}, {"kind", "Queue"}, {"metadata", {{"name", "a"}}}}, &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].ToString();
  json defaults = ToJson(q);
  w.CheckDescriptionsAndDefaults(Schema(crd), "", &defaults);
  CheckColumns(crd, QueueSchema(), &w.problems);
  EXPECT_TRUE(w.problems.empty()) << Dump(w.problems);
}

TEST(CrdDriftTest, SweepCrdMatchesTheCppApi) {
  json crd = LoadCrd("sweep.yaml");
  EXPECT_EQ(crd["spec"]["group"], kGroup);
  EXPECT_EQ(crd["spec"]["names"]["kind"], kSweepKind);
  EXPECT_EQ(crd["spec"]["scope"], "Namespaced");
  EXPECT_EQ(crd["spec"]["names"]["shortNames"], json::array({"sw"}));
  EXPECT_EQ(crd["spec"]["versions"][0]["name"], kVersion);
  EXPECT_TRUE(crd["spec"]["versions"][0]["subresources"].contains("status"));
  Walker w;
  w.Compare(SweepSchema(), Schema(crd), "");
  FieldErrors errors;
  auto docs = YamlToJson(R"(
apiVersion: tandem.dev/v1alpha1
kind: Sweep
metadata: {name: a}
spec:
  template: {spec: {model: {x: 1}}}
  parameters: [{name: p, path: spec.passes, type: int, min: 1, max: 2}]
)", "sweep.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  Sweep s = ParseSweep((*docs)[0], SectionValidators{}, &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].ToString();
  json defaults = ToJson(s);
  w.CheckDescriptionsAndDefaults(Schema(crd), "", &defaults);
  CheckColumns(crd, SweepSchema(), &w.problems);
  EXPECT_TRUE(w.problems.empty()) << Dump(w.problems);
  // The template's spec is the TrainingJob's, without its defaults (scripts/tools/gen-sweep-crd.py).
  json job_spec = Schema(LoadCrd("trainingjob.yaml"))["properties"]["spec"];
  json tmpl_spec = Schema(crd)["properties"]["spec"]["properties"]["template"]["properties"]["spec"];
  job_spec.erase("description");
  tmpl_spec.erase("description");
  EXPECT_EQ(tmpl_spec.dump().find("\"default\""), std::string::npos);
  std::function<void(json&)> strip = [&](json& n) {
    if (n.is_object()) {
      n.erase("default");
      for (auto& [k, v] : n.items()) strip(v);
    } else if (n.is_array()) {
      for (auto& v : n) strip(v);
    }
  };
  strip(job_spec);
  EXPECT_EQ(tmpl_spec, job_spec) << "crds/sweep.yaml is stale: run scripts/tools/gen-sweep-crd.py";
}

// The walker itself must notice drift, or the tests above prove nothing.
TEST(CrdDriftTest, WalkerDetectsDrift) {
  json crd = LoadCrd("trainingjob.yaml");
  json s = Schema(crd);
  s["properties"]["spec"]["properties"]["workers"]["properties"].erase("minCount");
  s["properties"]["spec"]["properties"]["sync"]["properties"]["dense"]["enum"] = {"ring"};
  s["properties"]["spec"]["properties"]["passes"]["maximum"] = 7;
  s["properties"]["spec"]["properties"]["extra"] = {{"type", "string"}, {"description", "x"}};
  Walker w;
  w.Compare(TrainingJobSchema(), s, "");
  EXPECT_EQ(w.problems.size(), 4u) << Dump(w.problems);
  s["properties"]["spec"]["properties"]["passes"]["default"] = 9;
  s["properties"]["spec"]["properties"]["queue"].erase("description");
  Walker d;
  json defaults = {{"spec", {{"passes", 1}, {"queue", "default"}}}};
  d.CheckDescriptionsAndDefaults(s, "", &defaults);
  EXPECT_GE(d.problems.size(), 2u) << Dump(d.problems);
}

}  // namespace
}  // namespace tandem::api
