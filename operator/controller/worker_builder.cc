#include "operator/controller/worker_builder.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "operator/controller/job_tls.h"
#include "operator/kube/resource.h"

namespace tandem::controller {

using nlohmann::json;

std::string WorkerPodName(const std::string& job, int rank) { return absl::StrCat(job, "-worker-", rank); }
std::string ServiceName(const std::string& job) { return job; }
std::string TokenSecretName(const std::string& job) { return absl::StrCat(job, "-token"); }
std::string ConfigMapName(const std::string& job) { return absl::StrCat(job, "-config"); }
std::string NetworkPolicyName(const std::string& job) { return job; }
std::string CheckpointClaimName(const std::string& job) { return absl::StrCat(job, "-checkpoints"); }
std::string MembershipConfigMapName(const std::string& job) { return absl::StrCat(job, "-membership"); }

std::vector<int> WorkerSlots(const api::TrainingJob& job) {
  std::vector<int> slots;
  const auto& e = job.status.elastic;
  if (job.spec.elastic && e && !e->members.empty() && e->members.size() == job.status.placement.size()) {
    for (int64_t m : e->members) slots.push_back(static_cast<int>(m));
    return slots;
  }
  for (size_t r = 0; r < job.status.placement.size(); ++r) slots.push_back(static_cast<int>(r));
  return slots;
}

namespace {
std::string WorkerHost(const api::TrainingJob& job, int slot) {
  return absl::StrCat(WorkerPodName(job.metadata.name, slot), ".", ServiceName(job.metadata.name), ".",
                      job.metadata.namespace_, ".svc");
}
}  // namespace

Endpoint WorkerEndpoint(const api::TrainingJob& job, int slot, const BuildOptions& o) {
  return {WorkerHost(job, slot), o.ports.collective};
}

api::Membership PublishedMembership(const api::TrainingJob& job, const BuildOptions& o) {
  const api::ElasticStatus& e = *job.status.elastic;
  api::Membership m;
  m.epoch = e.epoch;
  m.reason = e.reason;
  const size_t n = std::min(e.members.size(), static_cast<size_t>(std::max<int64_t>(0, e.workers)));
  for (size_t i = 0; i < n; ++i) m.peers.push_back(WorkerEndpoint(job, static_cast<int>(e.members[i]), o));
  return m;
}

json BuildMembershipConfigMap(const json& job_object, const api::TrainingJob& job, const BuildOptions& o) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", ChildMeta(job_object, MembershipConfigMapName(job.metadata.name))},
          {"data", {{kMembershipKey, api::RenderMembership(PublishedMembership(job, o))}}}};
}

std::string CheckpointClaimFor(const api::TrainingJob& job) {
  const auto& c = job.spec.checkpoint;
  if (c.storage == api::kStorageExistingClaim) return c.claim_name;
  if (c.storage == api::kStorageHostPath) return "";
  return CheckpointClaimName(job.metadata.name);
}

std::string ModelDir(const api::TrainingJob& job) {
  std::string job_dir = job.spec.checkpoint.storage == api::kStorageExistingClaim ? job.metadata.name + "/" : "";
  return absl::StrCat(kCheckpointMountPath, "/", job_dir, "model");
}

std::string CheckpointDir(const api::TrainingJob& job, const std::string& role, int rank) {
  std::string job_dir = job.spec.checkpoint.storage == api::kStorageExistingClaim ? job.metadata.name + "/" : "";
  return absl::StrCat(kCheckpointMountPath, "/", job_dir, role, "-", rank);
}

json ChildMeta(const json& job_object, const std::string& name) {
  return {{"name", name},
          {"namespace", kube::NamespaceOf(job_object)},
          {"labels", {{kJobLabel, kube::NameOf(job_object)}}},
          {"ownerReferences", {kube::ControllerRef(job_object)}}};
}

json Resources(const api::ResourceRequirements& r) {
  json out = json::object();
  if (!r.requests.empty()) out["requests"] = api::ResourceListToJson(r.requests);
  if (!r.limits.empty()) out["limits"] = api::ResourceListToJson(r.limits);
  // GPUs cannot be overcommitted: Kubernetes requires limits == requests for extended resources.
  auto gpu = r.requests.find(api::kResourceGpu);
  if (gpu != r.requests.end() && gpu->second.milli() > 0 && !r.limits.count(api::kResourceGpu)) {
    out["limits"][api::kResourceGpu] = out["requests"][api::kResourceGpu];
  }
  return out;
}

api::WorkerContract WorkerContractFor(const api::TrainingJob& job, api::WorkerRole role, int rank,
                                      const BuildOptions& o) {
  const std::string& name = job.metadata.name;
  const int world = static_cast<int>(job.status.placement.empty() ? job.spec.workers.count
                                                                  : job.status.placement.size());
  const bool trainer = role == api::WorkerRole::kTrainer;
  // An elastic job's worker starts with the membership it is planned into (the survivors'
  // slots, then the new ones): its rank there, those slots as peers. Fixed: slots 0..world-1.
  std::vector<int> slots = WorkerSlots(job);
  const auto self = std::find(slots.begin(), slots.end(), rank);
  const bool elastic = job.spec.elastic.has_value() && job.status.elastic.has_value() && self != slots.end();
  if (!elastic) {
    slots.clear();
    for (int r = 0; r < world; ++r) slots.push_back(r);
  }
  api::WorkerContract c;
  c.role = role;
  c.manifest_path = absl::StrCat(kJobMountPath, "/", kJobManifestKey);
  c.job_name = name;
  c.rank = elastic ? static_cast<int>(self - slots.begin()) : rank;
  c.world_size = static_cast<int>(slots.size());
  // No pservers where nothing lives on them (api::UsesPServers, as under `tandem run`): the
  // trainer then gets no TANDEM_PSERVERS and keeps everything local.
  const bool pservers = api::UsesPServers(job.spec);
  for (int slot : slots) {
    c.peers.push_back(WorkerEndpoint(job, slot, o));
    if (pservers) c.pservers.push_back({WorkerHost(job, slot), o.ports.pserver});
  }
  if (elastic && trainer) c.membership_file = absl::StrCat(kMembershipMountPath, "/", kMembershipKey);
  c.token = kTokenFromSecret;
  c.tls = PodTlsFiles();
  c.checkpoint_dir = CheckpointDir(job, api::RoleName(role), rank);
  // Rank 0 writes the final model next to the checkpoints.
  if (trainer) c.output_dir = ModelDir(job);
  // The trainer's result goes where the kubelet reads a termination message (see BuildWorkerPod).
  if (trainer) c.termination_log = kTerminationMessagePath;
  c.metrics_port = trainer ? o.ports.trainer_metrics : o.ports.pserver_metrics;
  c.threads = static_cast<int>(api::EffectiveThreads(trainer ? job.spec.trainer : job.spec.pserver));
  return c;
}

namespace {

// A container's command, args and env: the contract rendered, the token taken from the Secret.
void SetInvocation(const api::WorkerContract& c, const std::string& job_name, json* container) {
  api::WorkerInvocation inv = api::RenderWorker(c, /*bin_dir=*/"");
  (*container)["command"] = {inv.argv[0]};
  (*container)["args"] = json(std::vector<std::string>(inv.argv.begin() + 1, inv.argv.end()));
  json env = json::array();
  for (const api::EnvVar& e : inv.env) {
    if (e.name == api::kEnvJobToken) {
      env.push_back({{"name", e.name},
                     {"valueFrom", {{"secretKeyRef", {{"name", TokenSecretName(job_name)},
                                                      {"key", kTokenSecretKey}}}}}});
    } else {
      env.push_back({{"name", e.name}, {"value", e.value}});
    }
  }
  (*container)["env"] = env;
}

}  // namespace

json BuildWorkerPod(const json& job_object, const api::TrainingJob& job, int rank,
                    const std::string& node, int64_t restart, const BuildOptions& o) {
  const std::string& name = job.metadata.name;
  const std::string& ns = job.metadata.namespace_;
  json mounts = json::array({{{"name", "checkpoints"}, {"mountPath", kCheckpointMountPath}},
                             {{"name", "job"}, {"mountPath", kJobMountPath}, {"readOnly", true}},
                             {{"name", "tmp"}, {"mountPath", "/tmp"}},
                             TlsVolumeMount()});
  // Least privilege: no root, no new privileges, no capabilities, nothing written outside the
  // volumes above.
  json container_security = {{"runAsNonRoot", true},
                             {"allowPrivilegeEscalation", false},
                             {"privileged", false},
                             {"readOnlyRootFilesystem", true},
                             {"capabilities", {{"drop", {"ALL"}}}}};
  json trainer = {
      {"name", kTrainerContainer},
      {"image", job.spec.image},
      {"ports", {{{"name", "collective"}, {"containerPort", o.ports.collective}},
                 {{"name", "trainer-metrics"}, {"containerPort", o.ports.trainer_metrics}}}},
      {"resources", Resources(job.spec.trainer.resources)},
      {"securityContext", container_security},
      // Success: the trainer's result (api/worker_result.h), which the reconciler turns into the
      // final status.progress; failure without one: the kubelet reports the log's tail instead.
      {"terminationMessagePath", kTerminationMessagePath},
      {"terminationMessagePolicy", "FallbackToLogsOnError"},
      {"volumeMounts", mounts}};
  const api::WorkerContract trainer_contract = WorkerContractFor(job, api::WorkerRole::kTrainer, rank, o);
  if (!trainer_contract.membership_file.empty()) {
    trainer["volumeMounts"].push_back({{"name", "membership"}, {"mountPath", kMembershipMountPath}, {"readOnly", true}});
  }
  SetInvocation(trainer_contract, name, &trainer);
  json containers = json::array({trainer});
  // The pserver container only where something lives on it (api::UsesPServers): a dense job on
  // the ring would otherwise hold an idle process, its CPU and memory, and a port per worker.
  if (api::UsesPServers(job.spec)) {
    json pserver = {
        {"name", kPServerContainer},
        {"image", job.spec.image},
        {"ports", {{{"name", "pserver"}, {"containerPort", o.ports.pserver}},
                   {{"name", "pserver-metrics"}, {"containerPort", o.ports.pserver_metrics}}}},
        {"resources", Resources(job.spec.pserver.resources)},
        {"securityContext", container_security},
        {"volumeMounts", mounts}};
    SetInvocation(WorkerContractFor(job, api::WorkerRole::kPServer, rank, o), name, &pserver);
    containers.push_back(pserver);
  }
  json checkpoint_volume = {{"name", "checkpoints"}};
  if (std::string claim = CheckpointClaimFor(job); !claim.empty()) {
    checkpoint_volume["persistentVolumeClaim"] = {{"claimName", claim}};
  } else {
    std::string root = job.spec.checkpoint.host_path.empty() ? o.checkpoint_root : job.spec.checkpoint.host_path;
    checkpoint_volume["hostPath"] = {{"path", absl::StrCat(root, "/", ns, "/", name)}, {"type", "DirectoryOrCreate"}};
  }
  json meta = ChildMeta(job_object, WorkerPodName(name, rank));
  meta["labels"][kRankLabel] = std::to_string(rank);
  meta["annotations"] = {{kRestartAnnotation, std::to_string(restart)},
                         {"prometheus.io/scrape", "true"},
                         {"prometheus.io/port", std::to_string(o.ports.trainer_metrics)}};
  json spec = {
      {"nodeName", node},  // placed by the fair-share scheduler, which accounted its capacity
      {"hostname", WorkerPodName(name, rank)},
      {"subdomain", ServiceName(name)},
      {"restartPolicy", "Never"},  // the operator restarts the gang from the checkpoint
      {"terminationGracePeriodSeconds", o.termination_grace_s},
      {"automountServiceAccountToken", false},  // the workers never call the API server
      {"securityContext", {{"runAsNonRoot", true},
                           {"runAsUser", o.run_as_user},
                           {"runAsGroup", o.run_as_user},
                           {"fsGroup", o.run_as_user},
                           {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"containers", containers},
      {"volumes",
       {checkpoint_volume,
        {{"name", "job"}, {"configMap", {{"name", ConfigMapName(name)}}}},
        {{"name", "tmp"}, {"emptyDir", json::object()}},
        TlsVolume(name)}}};
  if (!trainer_contract.membership_file.empty()) {
    spec["volumes"].push_back({{"name", "membership"}, {"configMap", {{"name", MembershipConfigMapName(name)}}}});
  }
  if (!job.spec.node_selector.empty()) spec["nodeSelector"] = job.spec.node_selector;
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", meta}, {"spec", spec}};
}

json BuildService(const json& job_object, const api::TrainingJob& job, const BuildOptions& o) {
  json ports = json::array({{{"name", "collective"}, {"port", o.ports.collective}}});
  if (api::UsesPServers(job.spec)) ports.push_back({{"name", "pserver"}, {"port", o.ports.pserver}});
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata", ChildMeta(job_object, ServiceName(job.metadata.name))},
          {"spec",
           {{"clusterIP", "None"},  // headless: one DNS record per worker pod
            {"publishNotReadyAddresses", true},  // peers resolve each other while starting
            {"selector", {{kJobLabel, job.metadata.name}}},
            {"ports", ports}}}};
}

json BuildTokenSecret(const json& job_object, const api::TrainingJob& job, const std::string& token) {
  return {{"apiVersion", "v1"},
          {"kind", "Secret"},
          {"metadata", ChildMeta(job_object, TokenSecretName(job.metadata.name))},
          {"type", "Opaque"},
          {"data", {{kTokenSecretKey, absl::Base64Escape(token)}}}};
}

json BuildConfigMap(const json& job_object, const api::TrainingJob& job) {
  api::TrainingJob copy = job;
  copy.status = {};
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", ChildMeta(job_object, ConfigMapName(job.metadata.name))},
          {"data", {{kJobManifestKey, api::ToJson(copy).dump(2)}}}};
}

json BuildNetworkPolicy(const json& job_object, const api::TrainingJob& job, const BuildOptions& o) {
  const json own = {{"matchLabels", {{kJobLabel, job.metadata.name}}}};
  auto tcp = [](int port) { return json{{"protocol", "TCP"}, {"port", port}}; };
  json peer_ports = json::array({tcp(o.ports.collective)});
  json metrics_ports = json::array({tcp(o.ports.trainer_metrics)});
  if (api::UsesPServers(job.spec)) {  // no pserver container, no pserver port to open
    peer_ports.push_back(tcp(o.ports.pserver));
    metrics_ports.push_back(tcp(o.ports.pserver_metrics));
  }
  return {{"apiVersion", "networking.k8s.io/v1"},
          {"kind", "NetworkPolicy"},
          {"metadata", ChildMeta(job_object, NetworkPolicyName(job.metadata.name))},
          {"spec",
           {{"podSelector", own},
            {"policyTypes", {"Ingress"}},
            {"ingress",
             {{{"from", {{{"podSelector", own}}}},
               {"ports", peer_ports}},
              {{"ports", metrics_ports}}}}}}};
}

json BuildCheckpointClaim(const json& job_object, const api::TrainingJob& job) {
  json spec = {{"accessModes", {"ReadWriteMany"}},  // every worker, on any node, mounts it
               {"volumeMode", "Filesystem"},
               {"resources", {{"requests", {{"storage", job.spec.checkpoint.size}}}}}};
  if (!job.spec.checkpoint.storage_class_name.empty()) spec["storageClassName"] = job.spec.checkpoint.storage_class_name;
  return {{"apiVersion", "v1"},
          {"kind", "PersistentVolumeClaim"},
          {"metadata", ChildMeta(job_object, CheckpointClaimName(job.metadata.name))},
          {"spec", spec}};
}

}  // namespace tandem::controller
