// The serving children (operator/controller/serving_builder.h), table-driven over the storage
// kinds and serving settings: what the Deployment runs, mounts and exposes.
#include "operator/controller/serving_builder.h"

#include "gtest/gtest.h"
#include "operator/kube/resource.h"

namespace tandem::controller {
namespace {

using nlohmann::json;

json JobObject(const std::string& name, const json& spec_extra) {
  json spec = {{"image", "tandem/tandem:0.1.0"},
               {"model", {{"inputs", json::array()}, {"layers", json::array()}}},
               {"publish", {{"everySteps", 100}}},
               {"serving", json::object()}};
  spec.merge_patch(spec_extra);
  return {{"apiVersion", "tandem.dev/v1alpha1"},
          {"kind", "TrainingJob"},
          {"metadata", {{"name", name}, {"namespace", "ml"}, {"uid", "uid-" + name}}},
          {"spec", spec}};
}

struct Case {
  const char* name;
  json spec;
  json volume;            // the "checkpoints" volume
  std::string model_dir;  // --model-dir
  int64_t replicas;
  std::string image;
  std::string workers;    // --workers
  std::string batch;      // --max-batch-size
};

class ServingBuilderTest : public ::testing::TestWithParam<Case> {};

TEST_P(ServingBuilderTest, BuildsTheDeploymentAndService) {
  const Case& c = GetParam();
  json obj = JobObject("ctr", c.spec);
  api::FieldErrors errors;
  api::TrainingJob job = api::ParseTrainingJob(obj, api::SectionValidators{}, &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].ToString();
  json d = BuildServingDeployment(obj, job, BuildOptions{});
  EXPECT_EQ(d["apiVersion"], "apps/v1");
  EXPECT_EQ(d["kind"], "Deployment");
  EXPECT_EQ(d["metadata"]["name"], "ctr-serve");
  EXPECT_EQ(d["metadata"]["namespace"], "ml");
  EXPECT_EQ(d["metadata"]["labels"][kJobLabel], "ctr");
  EXPECT_EQ(d["metadata"]["ownerReferences"][0]["uid"], "uid-ctr") << "deleted with the job";
  EXPECT_EQ(d["spec"]["replicas"], c.replicas);
  const json& tmpl = d["spec"]["template"];
  EXPECT_EQ(d["spec"]["selector"]["matchLabels"], tmpl["metadata"]["labels"]);
  EXPECT_EQ(tmpl["metadata"]["labels"], json({{kServingLabel, "ctr"}}))
      << "not tandem.dev/job: the job's NetworkPolicy must not select the serving pods";
  const json& pod = tmpl["spec"];
  EXPECT_EQ(pod["volumes"][0], c.volume);
  EXPECT_EQ(pod["securityContext"]["runAsNonRoot"], true);
  EXPECT_EQ(pod["automountServiceAccountToken"], false);
  const json& ctr = pod["containers"][0];
  EXPECT_EQ(ctr["image"], c.image);
  EXPECT_EQ(ctr["command"], json({"tandem-serve"}));
  auto arg = [&](const std::string& flag) {
    const json& a = ctr["args"];
    for (size_t i = 0; i + 1 < a.size(); ++i)
      if (a[i] == flag) return a[i + 1].get<std::string>();
    return std::string("(missing)");
  };
  EXPECT_EQ(arg("--model-dir"), c.model_dir);
  EXPECT_EQ(arg("--workers"), c.workers);
  EXPECT_EQ(arg("--max-batch-size"), c.batch);
  EXPECT_EQ(arg("--port"), "8080");
  EXPECT_EQ(ctr["securityContext"]["readOnlyRootFilesystem"], true);
  EXPECT_EQ(ctr["securityContext"]["allowPrivilegeEscalation"], false);
  EXPECT_EQ(ctr["volumeMounts"][0], json({{"name", "checkpoints"}, {"mountPath", kCheckpointMountPath}, {"readOnly", true}}));
  EXPECT_EQ(ctr["readinessProbe"]["httpGet"]["path"], "/readyz");

  json svc = BuildServingService(obj, job);
  EXPECT_EQ(svc["metadata"]["name"], "ctr-serve");
  EXPECT_EQ(svc["spec"]["selector"], tmpl["metadata"]["labels"]);
  EXPECT_EQ(svc["spec"]["ports"][0]["port"], 8080);
  EXPECT_EQ(svc["spec"]["ports"][1]["name"], "grpc");
}

INSTANTIATE_TEST_SUITE_P(
    Table, ServingBuilderTest,
    ::testing::Values(
        Case{"defaults", json::object(),
             {{"name", "checkpoints"}, {"persistentVolumeClaim", {{"claimName", "ctr-checkpoints"}, {"readOnly", true}}}},
             "/var/lib/tandem/checkpoints/published", 1, "tandem/tandem:0.1.0", "1", "32"},
        Case{"existing_claim_has_a_job_folder",
             {{"checkpoint", {{"storage", "ExistingClaim"}, {"claimName", "team"}}},
              {"publish", {{"directory", "models/ctr"}}}},
             {{"name", "checkpoints"}, {"persistentVolumeClaim", {{"claimName", "team"}, {"readOnly", true}}}},
             "/var/lib/tandem/checkpoints/ctr/models/ctr", 1, "tandem/tandem:0.1.0", "1", "32"},
        Case{"host_path", {{"checkpoint", {{"storage", "HostPath"}, {"hostPath", "/data/ck"}}}},
             {{"name", "checkpoints"}, {"hostPath", {{"path", "/data/ck/ml/ctr"}, {"type", "DirectoryOrCreate"}}}},
             "/var/lib/tandem/checkpoints/published", 1, "tandem/tandem:0.1.0", "1", "32"},
        Case{"settings",
             {{"serving", {{"replicas", 3}, {"image", "reg/serve:1"}, {"threads", 4}, {"maxBatchSize", 64},
                           {"resources", {{"requests", {{"cpu", "2"}}}}}}}},
             {{"name", "checkpoints"}, {"persistentVolumeClaim", {{"claimName", "ctr-checkpoints"}, {"readOnly", true}}}},
             "/var/lib/tandem/checkpoints/published", 3, "reg/serve:1", "4", "64"},
        Case{"workers_follow_the_cpu_request", {{"serving", {{"resources", {{"requests", {{"cpu", "1500m"}}}}}}}},
             {{"name", "checkpoints"}, {"persistentVolumeClaim", {{"claimName", "ctr-checkpoints"}, {"readOnly", true}}}},
             "/var/lib/tandem/checkpoints/published", 1, "tandem/tandem:0.1.0", "2", "32"}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace tandem::controller
