// The children of a TrainingJob, as the reconciler creates them. One worker = ONE POD with two
// containers, `trainer` and `pserver` (docs/operator.md explains the choice): they share the
// node, the network namespace (the trainer reaches its own shard on localhost) and the
// lifecycle, and kube binds them atomically. A job with nothing on a pserver (no embedding
// tables, sync.dense: ring; api::UsesPServers, the rule `tandem run` follows too) has the
// `trainer` container alone, and its Service and NetworkPolicy no pserver ports.
//
// Names: pod "<job>-worker-<rank>", headless Service "<job>" (peer DNS
// "<job>-worker-<rank>.<job>.<ns>.svc"), Secret "<job>-token" (key "token"), ConfigMap
// "<job>-config" (key "job.json": the job as the trainer and the pserver read it), NetworkPolicy
// "<job>" (only the job's own pods reach its ring and any pserver ports). Every child carries the
// labels tandem.dev/job=<job> (and tandem.dev/rank on pods) and a controller ownerReference.
#pragma once

#include <string>

#include "api/membership.h"
#include "api/training_job.h"
#include "api/worker_contract.h"
#include "nlohmann/json.hpp"

namespace tandem::controller {

inline constexpr char kJobLabel[] = "tandem.dev/job";
inline constexpr char kRankLabel[] = "tandem.dev/rank";
inline constexpr char kRestartAnnotation[] = "tandem.dev/restart";

struct WorkerPorts {
  int collective = 7000;      // trainer: ring all-reduce
  int pserver = 7100;         // pserver: gRPC
  int trainer_metrics = 9100; // both containers share the pod's network namespace,
  int pserver_metrics = 9101; // so their ports differ
};

// The worker pod's containers. The trainer's exit is the worker's outcome: the pserver beside
// it (where the job has pservers) serves until SIGTERM (other ranks may still use its shard), so
// it outlives the trainer.
inline constexpr char kTrainerContainer[] = "trainer";
inline constexpr char kPServerContainer[] = "pserver";

// The ConfigMap "<job>-config" is mounted at kJobMountPath in both containers; its key
// kJobManifestKey is the manifest every trainer and pserver reads (their first argument).
inline constexpr char kJobMountPath[] = "/etc/tandem";
inline constexpr char kJobManifestKey[] = "job.json";
// The Secret "<job>-token" holds the job token under this key; TANDEM_JOB_TOKEN refers to it.
inline constexpr char kTokenSecretKey[] = "token";
// The token in a pod's contract: never rendered as a value (the env refers to the Secret).
inline constexpr char kTokenFromSecret[] = "(from Secret)";
// The trainer container's terminationMessagePath (Kubernetes' default): the trainer writes its
// result there (TANDEM_TERMINATION_LOG) and the kubelet copies it into the pod's status.
inline constexpr char kTerminationMessagePath[] = "/dev/termination-log";

// Elastic jobs (spec.elastic): the ConfigMap "<job>-membership" holds the membership
// (api/membership.h) under kMembershipKey; it is mounted (whole, not with subPath, so that the
// kubelet refreshes the file in place) at kMembershipMountPath in the trainer container, and
// TANDEM_MEMBERSHIP names the file.
inline constexpr char kMembershipMountPath[] = "/etc/tandem-membership";
inline constexpr char kMembershipKey[] = "membership.json";

// Where the checkpoint volume is mounted in both containers. TANDEM_CHECKPOINT_DIR is a folder
// under it per role and rank ("trainer-0", "pserver-0"; under "<job>/" on an ExistingClaim, which
// may hold several jobs), created by the processes themselves (no subPath: kubelet would create
// it owned by root, unwritable to the non-root workers).
inline constexpr char kCheckpointMountPath[] = "/var/lib/tandem/checkpoints";

struct BuildOptions {
  WorkerPorts ports{};
  int termination_grace_s = 60;  // SIGTERM -> checkpoint -> exit
  // storage HostPath without spec.checkpoint.hostPath: <checkpoint_root>/<ns>/<job> on the node.
  std::string checkpoint_root = "/var/lib/tandem/checkpoints";
  // The workers' user, group and fsGroup (the claim's files are group-writable through fsGroup
  // on volume types that support ownership management). Never 0: pods run as non-root.
  int64_t run_as_user = 65532;
};

std::string WorkerPodName(const std::string& job, int rank);
std::string ServiceName(const std::string& job);
std::string TokenSecretName(const std::string& job);
std::string ConfigMapName(const std::string& job);
std::string NetworkPolicyName(const std::string& job);  // "<job>"
std::string CheckpointClaimName(const std::string& job);  // "<job>-checkpoints"
std::string MembershipConfigMapName(const std::string& job);  // "<job>-membership"
// The claim to mount, by spec.checkpoint.storage: "<job>-checkpoints", claimName, or "" (HostPath).
std::string CheckpointClaimFor(const api::TrainingJob& job);
// TANDEM_CHECKPOINT_DIR of one process: kCheckpointMountPath/[<job>/]<role>-<rank>.
std::string CheckpointDir(const api::TrainingJob& job, const std::string& role, int rank);
// TANDEM_OUTPUT_DIR of the trainers (rank 0 writes the final model): kCheckpointMountPath/[<job>/]model.
std::string ModelDir(const api::TrainingJob& job);

// Every child's metadata: name, the job's namespace, tandem.dev/job, the controller reference.
nlohmann::json ChildMeta(const nlohmann::json& job_object, const std::string& name);
// A container's resources (GPU limits = requests, as Kubernetes requires).
nlohmann::json Resources(const api::ResourceRequirements& r);

// The worker contract of one container of worker `rank` (api/worker_contract.h): what
// BuildWorkerPod renders into its command, args and env (the token as a Secret reference).
api::WorkerContract WorkerContractFor(const api::TrainingJob& job, api::WorkerRole role, int rank,
                                      const BuildOptions& options);

// The worker slots of an admitted job in rank order: for an elastic job with status.elastic,
// its members (one per entry of status.placement); otherwise 0 .. placement.size()-1.
std::vector<int> WorkerSlots(const api::TrainingJob& job);
// The collective endpoint of worker `slot`: its stable DNS name in the headless Service.
Endpoint WorkerEndpoint(const api::TrainingJob& job, int slot, const BuildOptions& options);
// The membership status.elastic says is published (its epoch, the first `workers` members).
// REQUIRES: job.status.elastic.
api::Membership PublishedMembership(const api::TrainingJob& job, const BuildOptions& options);
nlohmann::json BuildMembershipConfigMap(const nlohmann::json& job_object, const api::TrainingJob& job,
                                        const BuildOptions& options);

// `job_object` is the job as read from the API (for the owner reference); `job` its parse.
// `rank` is the worker's slot (its pod name and tandem.dev/rank label); for an elastic job its
// contract is the membership of WorkerSlots(job) (its rank there, all of them as peers).
nlohmann::json BuildWorkerPod(const nlohmann::json& job_object, const api::TrainingJob& job, int rank,
                              const std::string& node, int64_t restart, const BuildOptions& options);
nlohmann::json BuildService(const nlohmann::json& job_object, const api::TrainingJob& job,
                            const BuildOptions& options);
nlohmann::json BuildTokenSecret(const nlohmann::json& job_object, const api::TrainingJob& job,
                                const std::string& token);
nlohmann::json BuildConfigMap(const nlohmann::json& job_object, const api::TrainingJob& job);
// Ingress to the job's workers: the ring and pserver ports only from the job's own pods (same
// tandem.dev/job), the metrics ports from anywhere (the operator reads rank 0's progress there,
// Prometheus scrapes them); the pserver ports only where the job has pservers
// (api::UsesPServers). Enforced where the cluster's network plugin enforces NetworkPolicy.
nlohmann::json BuildNetworkPolicy(const nlohmann::json& job_object, const api::TrainingJob& job,
                                  const BuildOptions& options);
// The job's own checkpoint claim (storage PersistentVolumeClaim): ReadWriteMany, the spec's size
// and storage class, owned by the job (deleted with it).
nlohmann::json BuildCheckpointClaim(const nlohmann::json& job_object, const api::TrainingJob& job);

}  // namespace tandem::controller
