#include "operator/controller/serving_builder.h"

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "operator/kube/resource.h"

namespace tandem::controller {

using json = nlohmann::json;

std::string ServingName(const std::string& job) { return job + "-serve"; }

std::string ServingModelDir(const api::TrainingJob& job) {
  TANDEM_CHECK(job.spec.publish.has_value());
  return api::PublishDirectory(CheckpointDir(job, api::RoleName(api::WorkerRole::kTrainer), 0),
                               *job.spec.publish);
}

json BuildServingDeployment(const json& job_object, const api::TrainingJob& job, const BuildOptions& o) {
  TANDEM_CHECK(job.spec.serving.has_value());
  const api::ServingSpec& sv = *job.spec.serving;
  const std::string& name = job.metadata.name;
  const std::string& ns = job.metadata.namespace_;
  const int64_t workers = api::EffectiveThreads(sv.server);
  json container = {
      {"name", kServeContainer},
      {"image", sv.image.empty() ? job.spec.image : sv.image},
      {"command", {"tandem-serve"}},
      {"args", {"--model-dir", ServingModelDir(job), "--port", std::to_string(kServingHttpPort),
                "--grpc-port", std::to_string(kServingGrpcPort), "--workers", std::to_string(workers),
                "--max-batch-size", std::to_string(sv.max_batch_size), "--max-queue-delay-us",
                std::to_string(sv.max_queue_delay_micros)}},
      {"ports", {{{"name", "http"}, {"containerPort", kServingHttpPort}},
                 {{"name", "grpc"}, {"containerPort", kServingGrpcPort}}}},
      {"resources", Resources(sv.server.resources)},
      {"readinessProbe", {{"httpGet", {{"path", "/readyz"}, {"port", "http"}}}, {"periodSeconds", 2}}},
      {"livenessProbe", {{"httpGet", {{"path", "/healthz"}, {"port", "http"}}},
                         {"periodSeconds", 10}, {"failureThreshold", 6}}},
      {"securityContext", {{"runAsNonRoot", true},
                           {"allowPrivilegeEscalation", false},
                           {"privileged", false},
                           {"readOnlyRootFilesystem", true},
                           {"capabilities", {{"drop", {"ALL"}}}}}},
      {"volumeMounts", {{{"name", "checkpoints"}, {"mountPath", kCheckpointMountPath}, {"readOnly", true}},
                        {{"name", "tmp"}, {"mountPath", "/tmp"}}}}};
  json checkpoint_volume = {{"name", "checkpoints"}};
  if (std::string claim = CheckpointClaimFor(job); !claim.empty()) {
    checkpoint_volume["persistentVolumeClaim"] = {{"claimName", claim}, {"readOnly", true}};
  } else {
    std::string root = job.spec.checkpoint.host_path.empty() ? o.checkpoint_root : job.spec.checkpoint.host_path;
    checkpoint_volume["hostPath"] = {{"path", absl::StrCat(root, "/", ns, "/", name)}, {"type", "DirectoryOrCreate"}};
  }
  json pod_labels = {{kServingLabel, name}};
  json pod_spec = {
      {"automountServiceAccountToken", false},
      {"securityContext", {{"runAsNonRoot", true},
                           {"runAsUser", o.run_as_user},
                           {"runAsGroup", o.run_as_user},
                           {"fsGroup", o.run_as_user},
                           {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"containers", {container}},
      {"volumes", {checkpoint_volume, {{"name", "tmp"}, {"emptyDir", json::object()}}}}};
  if (!job.spec.node_selector.empty()) pod_spec["nodeSelector"] = job.spec.node_selector;
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", ChildMeta(job_object, ServingName(name))},
          {"spec",
           {{"replicas", sv.replicas},
            {"selector", {{"matchLabels", pod_labels}}},
            // A new replica is ready before an old one goes: no gap in serving.
            {"strategy", {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", 0}, {"maxSurge", 1}}}}},
            {"template",
             {{"metadata", {{"labels", pod_labels},
                            {"annotations", {{"prometheus.io/scrape", "true"},
                                             {"prometheus.io/port", std::to_string(kServingHttpPort)}}}}},
              {"spec", pod_spec}}}}}};
}

json BuildServingService(const json& job_object, const api::TrainingJob& job) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", ChildMeta(job_object, ServingName(job.metadata.name))},
          {"spec",
           {{"selector", {{kServingLabel, job.metadata.name}}},
            {"ports", {{{"name", "http"}, {"port", kServingHttpPort}, {"targetPort", "http"}},
                       {{"name", "grpc"}, {"port", kServingGrpcPort}, {"targetPort", "grpc"}}}}}}};
}

}  // namespace tandem::controller
