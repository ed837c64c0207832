#include "api/sweep.h"

#include "api/manifest.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"

namespace tandem::api {
namespace {

using json = nlohmann::json;

constexpr char kSweepYaml[] = R"(
apiVersion: tandem.dev/v1alpha1
kind: Sweep
metadata: {name: fmnist, namespace: ml}
spec:
  template:
    metadata: {labels: {team: vision}}
    spec:
      queue: research
      passes: 3
      model:
        layers:
          - {name: fc1, type: fc, size: 128}
          - {name: fc2, type: fc, size: 10}
      optimizer: {type: momentum, learningRate: 0.01, momentum: 0.9}
  parameters:
    - {name: lr, path: spec.optimizer.learningRate, type: float, min: 0.001, max: 0.3, scale: log}
    - {name: momentum, path: spec.optimizer.momentum, type: float, min: 0.5, max: 0.99}
    - {name: fc1, path: "spec.model.layers[fc1].size", type: choice, values: [64, 128, 256]}
  objective: {metric: test_accuracy}
  algorithm: {name: tpe, startupTrials: 4}
  earlyStopping: {policy: asha, minPasses: 1, reductionFactor: 3}
  parallelism: 2
  maxTrials: 12
  seed: 5
)";

json Doc(const char* yaml = kSweepYaml) {
  auto docs = YamlToJson(yaml, "sweep.yaml");
  EXPECT_TRUE(docs.ok()) << docs.status();
  return (*docs)[0];
}

// The trainer's rule the bound probing must surface: the learning rate must be > 0.
SectionValidators LrValidator() {
  SectionValidators v;
  v.Add("optimizer", [](const json& o, const json&, const std::string& path, FieldErrors* errors) {
    if (o.contains("learningRate") && o["learningRate"].is_number() && o["learningRate"].get<double>() <= 0)
      errors->push_back({path + ".learningRate", "must be > 0"});
  });
  return v;
}

TEST(SweepTest, ParsesDefaultsAndRoundTrips) {
  FieldErrors errors;
  Sweep s = ParseSweep(Doc(), LrValidator(), &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].ToString();
  EXPECT_EQ(s.metadata.namespace_, "ml");
  ASSERT_EQ(s.spec.parameters.size(), 3u);
  EXPECT_EQ(s.spec.parameters[0].scale, kScaleLog);
  EXPECT_EQ(*s.spec.parameters[0].min, 0.001);
  EXPECT_EQ(s.spec.parameters[2].values.size(), 3u);
  EXPECT_EQ(s.spec.objective.goal, kGoalMaximize);  // defaulted from the metric
  EXPECT_EQ(s.spec.max_failed_trials, 3);
  EXPECT_EQ(s.spec.algorithm.candidates, 24);
  EXPECT_FALSE(s.spec.algorithm.cost_aware.enabled);  // plain TPE unless asked
  EXPECT_EQ(s.spec.algorithm.cost_aware.exponent, 1.0);
  EXPECT_TRUE(s.spec.algorithm.cost_aware.cooling);
  s.spec.algorithm.cost_aware = {.enabled = true, .exponent = 0.5, .cooling = false};
  EXPECT_FALSE(s.spec.algorithm.multivariate);  // one density per parameter unless asked
  s.spec.algorithm.multivariate = true;
  EXPECT_EQ(s.spec.budget.cpu_seconds, 0.0);  // no budget unless asked
  s.spec.budget.cpu_seconds = 600;
  EXPECT_EQ(s.spec.early_stopping.bootstrap_count, 0);  // ASHA as published unless asked
  s.spec.early_stopping.bootstrap_count = 9;
  s.status.trials.push_back(
      {.name = "t-0", .index = 0, .phase = kTrialPaused, .paused_at = 1, .cost = 2.5, .cpu_seconds = 12.25});
  s.status.cpu_accounted_time = "2026-12-06T22:00:00.250000Z";
  FieldErrors again;
  EXPECT_EQ(ParseSweep(ToJson(s), LrValidator(), &again), s);
  EXPECT_TRUE(again.empty()) << again[0].ToString();
}

TEST(SweepTest, LossIsMinimizedByDefault) {
  json d = Doc();
  d["spec"]["objective"]["metric"] = "test_loss";
  FieldErrors errors;
  EXPECT_EQ(ParseSweep(d, {}, &errors).spec.objective.goal, kGoalMinimize);
}

TEST(SweepTest, ResolvesPathsByKeyIndexAndItemName) {
  json j = Doc()["spec"]["template"];
  std::string why;
  ASSERT_NE(ResolvePath(j, "spec.model.layers[fc2].size", &why), nullptr) << why;
  EXPECT_EQ(*ResolvePath(j, "spec.model.layers[fc2].size", &why), 10);
  EXPECT_EQ(*ResolvePath(j, "spec.model.layers[0].size", &why), 128);
  EXPECT_EQ(ResolvePath(j, "spec.model.layers[fc9].size", &why), nullptr);
  EXPECT_EQ(why, "spec.model.layers has no item named fc9");
  EXPECT_EQ(ResolvePath(j, "spec.optimizer.beta", &why), nullptr);
  EXPECT_EQ(why, "no field \"beta\" in spec.optimizer");
  EXPECT_EQ(ResolvePath(j, "spec..x", &why), nullptr);
}

TEST(SweepTest, BuildsTrialJobsWithTheParametersAndLabels) {
  FieldErrors errors;
  Sweep s = ParseSweep(Doc(), {}, &errors);
  auto job = BuildTrialJob(s, {{"lr", 0.05}, {"momentum", 0.8}, {"fc1", 256}}, "fmnist-3");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ((*job)["metadata"]["name"], "fmnist-3");
  EXPECT_EQ((*job)["metadata"]["namespace"], "ml");
  EXPECT_EQ((*job)["metadata"]["labels"]["team"], "vision");
  EXPECT_EQ((*job)["metadata"]["labels"][kSweepLabel], "fmnist");
  EXPECT_EQ((*job)["spec"]["optimizer"]["learningRate"], 0.05);
  EXPECT_EQ((*job)["spec"]["model"]["layers"][0]["size"], 256);
  EXPECT_EQ((*job)["spec"]["queue"], "research");  // the trial counts against the template's queue
  EXPECT_FALSE(BuildTrialJob(s, {{"lr", 0.05}}, "fmnist-3").ok());
  FieldErrors job_errors;
  ParseTrainingJob(*job, {}, &job_errors);
  EXPECT_TRUE(job_errors.empty()) << job_errors[0].ToString();
}

struct BadCase {
  const char* name;
  const char* pointer;  // JSON pointer into the document
  json value;
  const char* path;     // the expected error's field
  const char* message;  // a part of its message
};

TEST(SweepTest, EveryBadFieldIsNamed) {
  const std::vector<BadCase> cases = {
      {"unknown path", "/spec/parameters/0/path", "spec.optimizer.learningRat", "spec.parameters[0].path",
       "no field \"learningRat\" in spec.optimizer"},
      {"unknown list item", "/spec/parameters/2/path", "spec.model.layers[fc3].size", "spec.parameters[2].path",
       "has no item named fc3"},
      {"path outside spec", "/spec/parameters/0/path", "metadata.name", "spec.parameters[0].path", "must start with"},
      {"float into an integer", "/spec/parameters/2", json({{"name", "fc1"}, {"path", "spec.model.layers[fc1].size"},
                                                           {"type", "float"}, {"min", 1}, {"max", 9}}),
       "spec.parameters[2].type", "use type int"},
      {"choice of strings into a number", "/spec/parameters/2/values", json({"a", "b"}), "spec.parameters[2].values[0]",
       "cannot replace"},
      {"range into a string", "/spec/parameters/0/path", "spec.optimizer.type", "spec.parameters[0].type",
       "cannot replace"},
      {"path to an object", "/spec/parameters/0/path", "spec.optimizer", "spec.parameters[0].type", "not a single value"},
      {"log scale from 0", "/spec/parameters/0/min", 0, "spec.parameters[0].min", "must be > 0 with scale log"},
      {"min above max", "/spec/parameters/1/min", 1.5, "spec.parameters[1].max", "must be >= min"},
      {"range without max", "/spec/parameters/1/max", nullptr, "spec.parameters[1].max", "required for type float"},
      {"choice without values", "/spec/parameters/2/values", json::array(), "spec.parameters[2].values", "required"},
      {"duplicate name", "/spec/parameters/1/name", "lr", "spec.parameters[1].name", "duplicate"},
      {"bad name", "/spec/parameters/1/name", "a b", "spec.parameters[1].name", "letters"},
      {"searching the queue", "/spec/parameters/0/path", "spec.queue", "spec.parameters[0].path", "the sweep's to decide"},
      {"unknown type", "/spec/parameters/0/type", "double", "spec.parameters[0].type", "must be one of"},
      {"unknown metric", "/spec/objective/metric", "f1", "spec.objective.metric", "must be one of"},
      {"unknown algorithm", "/spec/algorithm/name", "bayes", "spec.algorithm.name", "must be one of"},
      {"unknown field", "/spec/deadline", 3, "spec.deadline", "unknown field"},
      {"budget not an object", "/spec/budget", 3, "spec.budget", "must be an object"},
      {"budget below a CPU second", "/spec/budget", json({{"cpuSeconds", 0.5}}), "spec.budget.cpuSeconds", ">= 1"},
      {"budget not a number", "/spec/budget", json({{"cpuSeconds", "1h"}}), "spec.budget.cpuSeconds", "number"},
      {"budget in other units", "/spec/budget", json({{"passes", 10}}), "spec.budget.passes", "unknown field"},
      {"cost-aware grid", "/spec/algorithm", json({{"name", "grid"}, {"costAware", {{"enabled", true}}}}),
       "spec.algorithm.costAware.enabled", "only the tpe algorithm"},
      {"multivariate random", "/spec/algorithm", json({{"name", "random"}, {"multivariate", true}}),
       "spec.algorithm.multivariate", "only the tpe algorithm"},
      {"multivariate not a boolean", "/spec/algorithm/multivariate", 1, "spec.algorithm.multivariate", "boolean"},
      {"cost exponent above 1", "/spec/algorithm/costAware", json({{"enabled", true}, {"exponent", 2}}),
       "spec.algorithm.costAware.exponent", "<= 1"},
      {"cost-aware not a boolean", "/spec/algorithm/costAware/enabled", "yes", "spec.algorithm.costAware.enabled",
       "boolean"},
      {"parallelism above maxTrials", "/spec/parallelism", 20, "spec.parallelism", "must be <= spec.maxTrials"},
      {"bootstrap count with median", "/spec/earlyStopping", json({{"policy", "median"}, {"bootstrapCount", 4}}),
       "spec.earlyStopping.bootstrapCount", "only asha"},
      {"bootstrap count above maxTrials", "/spec/earlyStopping/bootstrapCount", 13,
       "spec.earlyStopping.bootstrapCount", "must be <= spec.maxTrials (12)"},
      {"negative bootstrap count", "/spec/earlyStopping/bootstrapCount", -1, "spec.earlyStopping.bootstrapCount",
       ">= 0"},
      {"name too long", "/metadata/name", std::string(44, 'a'), "metadata.name", "<sweep>-<index>"},
      {"bad template", "/spec/template/spec/passes", 0, "spec.template.spec.passes", "must be >= 1"},
      {"template metadata name", "/spec/template/metadata/name", "x", "spec.template.metadata.name",
       "only labels and annotations"},
      {"no parameters", "/spec/parameters", json::array(), "spec.parameters", "at least one"},
      {"too many values", "/spec/parameters/2/values", json(std::vector<int>(65, 1)), "spec.parameters[2].values",
       "at most 64 values"},
      {"a bound the trainer refuses", "/spec/parameters/0",
       json({{"name", "lr"}, {"path", "spec.optimizer.learningRate"}, {"type", "float"}, {"min", 0}, {"max", 0.1}}),
       "spec.parameters[0]", "with lr = 0.0: spec.optimizer.learningRate: must be > 0"},
  };
  for (const BadCase& c : cases) {
    json d = Doc();
    d[json::json_pointer(c.pointer)] = c.value;
    FieldErrors errors = ValidateDocument(d, LrValidator());
    bool found = false;
    for (const FieldError& e : errors)
      if (e.path == c.path && e.message.find(c.message) != std::string::npos) found = true;
    std::string all;
    for (const FieldError& e : errors) all += e.ToString() + "\n";
    EXPECT_TRUE(found) << c.name << ": want " << c.path << ": ..." << c.message << "...; got\n" << all;
  }
}

TEST(SweepTest, TandemValidateChecksSweepsThroughTheManifestPath) {
  std::vector<DocumentProblem> ok = ValidateManifestText(kSweepYaml, "sweep.yaml", LrValidator());
  EXPECT_TRUE(ok.empty()) << ok[0].error.ToString();
  std::string bad = kSweepYaml;
  bad.replace(bad.find("learningRate, type"), 12, "learningRat");
  std::vector<DocumentProblem> problems = ValidateManifestText(bad, "sweep.yaml", LrValidator());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].error.path, "spec.parameters[0].path");
}

}  // namespace
}  // namespace tandem::api
