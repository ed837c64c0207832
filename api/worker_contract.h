// The worker contract: everything a worker process (tandem-trainer, tandem-pserver) is started
// with, defined once. Its producers (the operator's pod builder, operator/controller/
// worker_builder.cc, and `tandem run`'s supervisor, cli/local/local_run.cc) fill a WorkerContract
// and render it with RenderWorker; the two binaries' mains parse it back with ParseWorkerContract,
// once, and hand typed values down (libraries never read the environment).
//
//   WorkerContract c{.role = WorkerRole::kPServer, .manifest_path = "/etc/tandem/job.json",
//                    .job_name = "ctr", .rank = 1, .world_size = 2, ...};
//   WorkerInvocation inv = RenderWorker(c, /*bin_dir=*/"");   // argv + env
//   // the worker's main:
//   TANDEM_ASSIGN_OR_RETURN(WorkerContract back,
//       ParseWorkerContract(WorkerRole::kPServer, argv_manifest, ProcessEnvironment()));
//
// On the wire:
//   argv:  <binary> <manifest>            the TrainingJob manifest (YAML or JSON): the job's
//                                         settings (model, data, sync mode, staleness,
//                                         checkpoint interval, ...) are read from it through
//                                         api/, never passed a second way
//   TANDEM_JOB_NAME        the job's name (checked at the collective rendezvous)
//   TANDEM_RANK            this worker's rank, 0 <= rank < TANDEM_WORLD_SIZE (the pserver's shard)
//   TANDEM_WORLD_SIZE      W, the number of workers (trainers = pserver shards)
//   TANDEM_PEERS           W host:port, rank order: the trainers' collective endpoints
//   TANDEM_PSERVERS        W host:port, shard order: the pservers (a pserver listens on its own
//                          entry's port); absent for a trainer of a job without pservers
//                          (api::UsesPServers: nothing lives on one), under `tandem run` and in
//                          the operator's pods alike
//   TANDEM_JOB_TOKEN       the job's secret (pods: from the Secret "<job>-token"); required by
//                          the pserver and by a trainer that uses pservers
//   TANDEM_TLS_CA          mutual TLS on the pserver's gRPC (docs/pserver.md): the job's trust
//   TANDEM_TLS_CERT        bundle, certificate and key files (common/job_certificates.h; pods:
//   TANDEM_TLS_KEY         the job's Secret mounted read-only). All three or none; with them the
//                          job token may be empty (plain mode needs it), and when both are given
//                          both are checked
//   TANDEM_CHECKPOINT_DIR  this process' checkpoint folder (empty: no checkpoints)
//   TANDEM_OUTPUT_DIR      trainer: where rank 0 writes the final model (empty: nowhere)
//   TANDEM_METRICS_PORT    /metrics, /healthz, /readyz (-1 or unset: off)
//   TANDEM_THREADS         compute threads (also rendered as OMP_NUM_THREADS); 0: all cores
//   TANDEM_EVENTS          trainer: 1 prints `@tandem {json}` progress lines (docs/local-run.md)
//   TANDEM_TERMINATION_LOG trainer: a file it writes its result to when it succeeds
//                          (api/worker_result.h; pods: the container's terminationMessagePath,
//                          which the kubelet reports in the pod's status). Empty: not written
//   TANDEM_HOST            optional: the host this process runs on, as its producer placed it
//                          (`tandem run --placement`: the placement's host name). Ranks with
//                          equal values (and one kernel) may share memory; unset: the machine
//                          decides (boot id and host name). Rendered only when set
//   TANDEM_GPU_ORDINAL     trainer of a GPU job (api/trainer_device.h), optional: the CUDA device
//                          ordinal it opens among the GPUs it sees. Unset: 0 (a pod sees only its
//                          own GPUs); `tandem run` sets it per trainer on a shared machine.
//                          Rendered only when set
//   TANDEM_MEMBERSHIP      trainer of an elastic job (spec.elastic): the membership file
//                          (api/membership.h) its coordinator rewrites on every resize; once it
//                          exists it, not TANDEM_RANK/WORLD_SIZE/PEERS, says who is in the job.
//                          The trainer is known by its own entry of TANDEM_PEERS. Unset: fixed.
// Tuning variables outside the contract (TANDEM_COLLECTIVE_*, TANDEM_LOG_LEVEL) are read by the
// mains from the same environment; their producers never set them.
// Exit codes: api/exit_codes.h.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/exit_codes.h"
#include "common/endpoint.h"
#include "common/job_certificates.h"
#include "common/environment.h"

namespace tandem::api {

enum class WorkerRole { kTrainer, kPServer };

inline constexpr char kTrainerBinary[] = "tandem-trainer";
inline constexpr char kPServerBinary[] = "tandem-pserver";

// The variables of the contract (and only those are rendered).
inline constexpr char kEnvJobName[] = "TANDEM_JOB_NAME";
inline constexpr char kEnvRank[] = "TANDEM_RANK";
inline constexpr char kEnvWorldSize[] = "TANDEM_WORLD_SIZE";
inline constexpr char kEnvPeers[] = "TANDEM_PEERS";
inline constexpr char kEnvPServers[] = "TANDEM_PSERVERS";
inline constexpr char kEnvJobToken[] = "TANDEM_JOB_TOKEN";
inline constexpr char kEnvTlsCa[] = "TANDEM_TLS_CA";
inline constexpr char kEnvTlsCert[] = "TANDEM_TLS_CERT";
inline constexpr char kEnvTlsKey[] = "TANDEM_TLS_KEY";
inline constexpr char kEnvCheckpointDir[] = "TANDEM_CHECKPOINT_DIR";
inline constexpr char kEnvOutputDir[] = "TANDEM_OUTPUT_DIR";
inline constexpr char kEnvMetricsPort[] = "TANDEM_METRICS_PORT";
inline constexpr char kEnvThreads[] = "TANDEM_THREADS";
inline constexpr char kEnvOmpThreads[] = "OMP_NUM_THREADS";
inline constexpr char kEnvEvents[] = "TANDEM_EVENTS";
inline constexpr char kEnvTerminationLog[] = "TANDEM_TERMINATION_LOG";
inline constexpr char kEnvHost[] = "TANDEM_HOST";
inline constexpr char kEnvMembership[] = "TANDEM_MEMBERSHIP";
inline constexpr char kEnvGpuOrdinal[] = "TANDEM_GPU_ORDINAL";

struct WorkerContract {
  WorkerRole role = WorkerRole::kTrainer;
  std::string manifest_path;        // REQUIRES: non-empty
  std::string job_name;
  int rank = 0;                     // 0 <= rank < world_size
  int world_size = 1;               // >= 1
  std::vector<Endpoint> peers;      // trainer: world_size entries when world_size > 1
  std::vector<Endpoint> pservers;   // world_size entries, or none (a trainer alone)
  std::string token;                // the pserver, and a trainer with pservers: non-empty
                                    // unless `tls` is set
  tls::TlsFiles tls;                // mutual TLS to and at the pservers; none: plain mode
  std::string checkpoint_dir;
  std::string output_dir;           // trainer only
  int metrics_port = -1;            // -1: off; 0: any free port
  int threads = 0;                  // 0: all cores
  bool events = false;              // trainer only
  std::string termination_log;      // trainer only: where its result goes (empty: nowhere)
  std::string host;                 // "" (not rendered): this machine; else [A-Za-z0-9._-]{1,63}
  std::string membership_file;      // trainer only; empty: the job never changes size
  int gpu_ordinal = -1;             // trainer only; -1: not rendered (ordinal 0 for a GPU job)

  // The pserver's own gRPC port: the port of pservers[rank]. REQUIRES: a valid pserver contract.
  int pserver_port() const { return pservers.at(rank).port; }
  bool operator==(const WorkerContract&) const = default;
};

struct EnvVar {
  std::string name;
  std::string value;
  bool operator==(const EnvVar&) const = default;
};

struct WorkerInvocation {
  std::vector<std::string> argv;  // argv[0] is the binary ("<bin_dir>/tandem-trainer", or the
                                  // bare name on PATH when bin_dir is empty)
  std::vector<EnvVar> env;        // in a fixed order; TANDEM_JOB_TOKEN among them (a pod
                                  // replaces its value with a reference to the job's Secret)
};

// The process that runs `c`. REQUIRES: ValidateWorkerContract(c).ok().
WorkerInvocation RenderWorker(const WorkerContract& c, const std::string& bin_dir);

// The rules above; errors name the variable at fault ("TANDEM_RANK='3': must be below
// TANDEM_WORLD_SIZE=2").
absl::Status ValidateWorkerContract(const WorkerContract& c);

// Parses what RenderWorker rendered: `manifest_path` is the binary's positional argument,
// `env` its environment. Errors name the variable (or the argument) at fault.
absl::StatusOr<WorkerContract> ParseWorkerContract(WorkerRole role, const std::string& manifest_path,
                                                   const Environment& env);

// "trainer" / "pserver": how folders, logs and errors name a role.
const char* RoleName(WorkerRole role);

}  // namespace tandem::api
