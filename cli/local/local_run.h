// `tandem run`: runs one TrainingJob on this machine as local processes, wired exactly as the
// operator wires pods: W workers, each one trainer process and its co-located pserver process,
// on loopback ports, each started through the worker contract (api/worker_contract.h) as a pod's
// containers are.
//
// Outputs go to a run folder (runs/<job>-<timestamp>/ by default):
//   job.yaml            the manifest as given
//   logs/<worker>-<role>.log   every process' full output
//   checkpoints/        trainer checkpoints (TANDEM_CHECKPOINT_DIR) and pserver shard checkpoints
//   model/              the final model, written by rank 0 (TANDEM_OUTPUT_DIR)
//   metrics.jsonl       every progress event, one JSON object per line with a timestamp
//   summary.json        the final summary
#pragma once

#include <atomic>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "api/trainer_device.h"
#include "absl/status/statusor.h"
#include "api/membership.h"
#include "api/training_job.h"
#include "api/worker_contract.h"
#include "nlohmann/json.hpp"
#include "cli/local/placement.h"
#include "cli/local/supervisor.h"

namespace tandem::local {

// What `tandem run` needs to know of a TrainingJob (filled from the validated api object). The
// job's own settings (sync mode, staleness, checkpoints) reach the processes through the
// manifest, which every trainer and pserver reads.
struct LocalJob {
  std::string name;
  std::string manifest_path;       // passed to every trainer and pserver
  int workers = 1;
  RestartPolicy restart;
  int trainer_threads = 0;         // 0: the trainer decides (all cores of this machine)
  int pserver_threads = 0;
  // Whether each worker runs a pserver: only when something lives on it (embedding tables, or
  // spec.sync.dense: pserver). A dense job synchronised over the ring starts none (a pod's
  // pserver container is the operator's and unchanged).
  bool pservers = true;
  // spec.elastic: trainers following a membership file the run's coordinator changes
  // (cli/local/elastic_coordinator.h); between min and max workers. With embedding tables
  // (elastic_pservers) each worker slot also runs a pserver shard, resharded at each resize.
  bool elastic = false;
  bool elastic_pservers = false;
  int min_workers = 1, max_workers = 1;
  // What the trainers train on (api/trainer_device.h). A GPU job's trainers get their own GPU
  // ordinals (TANDEM_GPU_ORDINAL, TrainerGpuOrdinals) and are checked before anything starts.
  api::TrainerDevice device;
};

// The GPU ordinal of each trainer (rank order; -1 each for a CPU job): its local rank among the
// trainers of its host (the placement's host name; one machine without a placement) times the
// GPUs each requests, api::TrainerGpuOrdinal.
std::vector<int> TrainerGpuOrdinals(const LocalJob& job, const Placement* placement);

// The file `tandem resize` writes into a run folder, {"workers": N}, and the one the run answers
// with, {"ok": bool, "message": "..."} (cli/local/elastic_coordinator.h, docs/elastic.md).
inline constexpr char kResizeRequestFile[] = "resize-request.json";
inline constexpr char kResizeResultFile[] = "resize-result.json";
inline constexpr char kMembershipFile[] = "membership.json";

// `tandem resize RUN_DIR N`: asks the run in `run_dir` to change its size and waits up to
// `timeout_s` for its answer. Errors: no such run, the run refused (the message says why), no
// answer (the run is not running).
absl::StatusOr<std::string> RequestResize(const std::string& run_dir, int workers,
                                          double timeout_s);

// The LocalJob of a validated `job` read from `manifest_path` (made absolute); `workers` > 0
// overrides spec.workers.count. Trainers with spec.trainer.threads 0 share this machine's cores
// equally; pservers get api::EffectiveThreads, as in a pod.
LocalJob LocalJobFor(const api::TrainingJob& job, const std::string& manifest_path, int workers);

struct LocalRunOptions {
  std::string bin_dir;             // where tandem-trainer and tandem-pserver are
  std::string run_dir;             // empty: runs/<job>-<timestamp>
  bool tty = false;                // live progress bar
  bool verbose = false;            // also stream every process line on a terminal
  double stop_grace_seconds = 30;
  // Where each process runs (cli/local/placement.h); none: every process here, on loopback.
  std::optional<Placement> placement;
  // Appended to every trainer's command line (a sweep's ASHA trial: --stop-after-pass R).
  std::vector<std::string> trainer_args;
};

struct LocalRunResult {
  RunResult run;
  std::string run_dir;
  nlohmann::json summary;          // the trainers' summary event, plus the run's own figures
  double wall_s = 0;
  // User + system CPU seconds of the job's processes (trainers, pservers), from wait4 as each
  // exited: what this run of the job cost.
  double cpu_s = 0;
  int64_t lost_steps = 0;
};

// "runs/<name>-<local time>": the run folder when none is given.
std::string DefaultRunDir(const std::string& name);

// A fresh random token (hex) for the job's pservers.
absl::StatusOr<std::string> NewJobToken();

// A fresh CA and certificate for the job (common/job_certificates.h) written to `dir`
// (ca.crt, tls.crt, tls.key; the key mode 0600). The CA's key is never kept (no certificate can
// be minted later); the certificate lasts a year, and a local run never renews it. Errors name
// the file.
absl::StatusOr<tls::TlsFiles> WriteJobCertificates(const std::string& dir, const std::string& job);

// The worker contract of each process: [pserver 0, trainer 0, pserver 1, trainer 1, ...].
// Ports: [collective x W][pserver x W][trainer metrics x W][pserver metrics x W]. Every process
// gets the token and the TLS files: the pservers' gRPC is mutual TLS, as in pods. With a
// `placement`, peers and pservers are reached at their host's address (the same ports) and every
// process gets its host's name as TANDEM_HOST; without, 127.0.0.1 and no TANDEM_HOST.
std::vector<api::WorkerContract> BuildContracts(const LocalJob& job, const std::string& run_dir,
                                                const std::vector<int>& ports,
                                                const std::string& token, const tls::TlsFiles& tls,
                                                const Placement* placement = nullptr);

// The processes of the job: BuildContracts rendered, each behind its host's `exec` prefix when
// options.placement is set (exposed for tests).
std::vector<SupervisedProcess> BuildProcesses(const LocalJob& job, const LocalRunOptions& options,
                                              const std::string& run_dir,
                                              const std::vector<int>& ports,
                                              const std::string& token, const tls::TlsFiles& tls);

// An elastic job's trainer of worker slot `slot` under `membership` (its rank and peers):
// ports [collective x maxCount][trainer metrics x maxCount], then with pservers
// [pserver x maxCount][pserver metrics x maxCount].
SupervisedProcess BuildElasticTrainer(const LocalJob& job, const LocalRunOptions& options,
                                      const std::string& run_dir, const std::vector<int>& ports,
                                      const api::Membership& membership, int slot,
                                      const std::string& token, const tls::TlsFiles& tls);

// An elastic job's pserver shard of worker slot `slot` for the pserver layout of `membership`
// (tandem-pserver --layout ... --layout-epoch ... --shard slot --trainers N, and --joining for a
// shard started for a grow's reshard). No checkpoint directory: elastic shards do not checkpoint.
SupervisedProcess BuildElasticPServer(const LocalJob& job, const LocalRunOptions& options,
                                      const std::vector<int>& ports,
                                      const api::Membership& membership, int slot, bool joining,
                                      const std::string& token, const tls::TlsFiles& tls);

// Runs the job to completion (or failure, or Stop()). Prints progress to `out`.
class LocalRun {
 public:
  LocalRun(LocalJob job, LocalRunOptions options);
  absl::StatusOr<LocalRunResult> Run(std::FILE* out);
  // Async-signal-safe: SIGTERM every process (they checkpoint), SIGKILL after the grace period.
  void Stop();
  // The CPU seconds (user + system) its processes have used so far, running ones included
  // (sampled about twice a second; after Run returns, the final figure). Any thread.
  double CpuSecondsSoFar() const { return cpu_seconds_.load(); }

 private:
  LocalJob job_;
  LocalRunOptions options_;
  std::atomic<Supervisor*> supervisor_{nullptr};
  std::atomic<int> early_stops_{0};
  std::atomic<double> cpu_seconds_{0};
};

}  // namespace tandem::local
