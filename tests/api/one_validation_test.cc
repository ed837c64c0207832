// One validation for every binary: each bad TrainingJob manifest of the `tandem validate` corpus
// (tests/cli/manifests/bad/) is refused, with the same message, by `tandem validate`,
// `tandem run`, tandem-trainer, tandem-pserver (started as a worker's pserver, with a manifest)
// and the operator's validation path (one Reconcile of the job as the API server would serve
// it: a Failed condition, never started).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "api/training_job.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "operator/controller/trainingjob_reconciler.h"
#include "operator/kube/event_recorder.h"
#include "tests/common/test_util.h"
#include "tests/operator/controller/recording_api.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct BadManifest {
  std::string path;
  std::string expect;  // "spec.passes: must be >= 1, got 0"
};

// The corpus' single-document TrainingJobs whose problem is a field (not the YAML itself).
std::vector<BadManifest> BadTrainingJobs() {
  std::vector<BadManifest> out;
  for (const auto& entry : fs::directory_iterator(testing::SourceDir() + "/tests/cli/manifests/bad")) {
    if (entry.path().extension() != ".yaml") continue;
    fs::path expect_file = entry.path();
    expect_file.replace_extension(".expect");
    std::string expect(absl::StripAsciiWhitespace(ReadAll(expect_file)));
    const std::string text = ReadAll(entry.path());
    if (!absl::StartsWith(expect, ": ") || !absl::StrContains(text, "kind: TrainingJob") ||
        absl::StrContains(text, "\n---"))
      continue;
    out.push_back({entry.path().string(), expect.substr(2)});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  return out;
}

// The Failed condition's message after one Reconcile, or "" when the job was not failed.
std::string OperatorVerdict(const json& object) {
  controller::RecordingApi api;
  controller::FakeCache cache;
  kube::EventRecorder events{&api, "tandem-operator"};
  controller::ReconcilerOptions options;  // the operator's defaults: the trainer's validators
  options.now = [] { return 1800000000.0; };
  options.new_token = [] { return std::string("tok"); };
  controller::TrainingJobReconciler reconciler{&api, &cache, &events, options};
  cache.Put(kube::kTrainingJobs, object);
  reconciler.Reconcile(kube::ObjectKey::Of(object).String());
  json st = api.LastStatus();
  if (!st.is_object() || st.value("phase", "") != "Failed") return "";
  for (const json& c : st["conditions"])
    if (c["type"] == "Failed") return c["message"];
  return "";
}

TEST(OneValidationTest, EveryBinaryRefusesTheSameManifestsWithTheSameMessages) {
  const std::vector<BadManifest> bad = BadTrainingJobs();
  ASSERT_GE(bad.size(), 30u) << "the corpus moved?";
  const std::string bin = testing::BinDir();
  const fs::path run_dir = fs::path(::testing::TempDir()) / ("one_validation_" + std::to_string(::getpid()));
  const std::vector<std::string> pserver_env = {"TANDEM_RANK=0", "TANDEM_WORLD_SIZE=2",
                                                "TANDEM_PSERVERS=127.0.0.1:7100,127.0.0.1:7101",
                                                "TANDEM_JOB_TOKEN=t"};
  int operator_checked = 0, trainer_sections = 0;
  for (const BadManifest& m : bad) {
    SCOPED_TRACE(m.path);
    const std::string line = m.path + ": " + m.expect;
    struct Binary {
      const char* name;
      std::vector<std::string> argv;
      std::vector<std::string> env;
      int exit_code;
    } binaries[] = {
        {"tandem validate", {bin + "/tandem", "validate", m.path}, {}, 1},
        {"tandem run", {bin + "/tandem", "run", m.path, "--run-dir", run_dir.string()}, {}, 1},
        {"tandem-trainer", {bin + "/tandem-trainer", m.path}, {}, 2},
        {"tandem-pserver", {bin + "/tandem-pserver", m.path}, pserver_env, 2},
    };
    for (const Binary& b : binaries) {
      testing::CommandResult r = testing::RunProgram(b.argv, b.env);
      EXPECT_EQ(r.exit_code, b.exit_code) << b.name << ":\n" << r.output;
      EXPECT_NE(r.output.find(line), std::string::npos) << b.name << " does not say '" << line << "':\n"
                                                        << r.output;
    }
    trainer_sections += absl::StartsWith(m.expect, "spec.model.") || absl::StartsWith(m.expect, "spec.data.") ||
                        absl::StartsWith(m.expect, "spec.optimizer.");
    // The operator sees objects from the API server: the manifest's object, with a uid.
    auto docs = YamlFileToJson(m.path);
    if (!docs.ok() || docs->size() != 1 || !(*docs)[0].is_object()) continue;
    json object = (*docs)[0];
    if (!object.contains("metadata") || !object["metadata"].is_object() ||
        !object["metadata"].value("name", json()).is_string())
      continue;  // the API server never serves an object without a name
    if (object.value("apiVersion", json()) != api::kApiVersion) continue;  // nor of another version
    object["metadata"]["uid"] = "uid-1";
    if (!object["metadata"].contains("namespace")) object["metadata"]["namespace"] = "default";
    const std::string verdict = OperatorVerdict(object);
    EXPECT_NE(verdict.find(m.expect), std::string::npos) << "operator: '" << verdict << "'";
    ++operator_checked;
  }
  EXPECT_GE(operator_checked, 25);
  EXPECT_GE(trainer_sections, 3) << "the trainer's own sections are part of the corpus";
  fs::remove_all(run_dir);
}

}  // namespace
}  // namespace tandem
