// tandem-trainer: trains a TrainingJob's model in one process (one worker's trainer).
//
//   tandem-trainer examples/fashion-mnist-cnn.yaml [--threads 2] [--metrics-port 9100]
//
// Prints progress lines and, last, a summary of key=value pairs:
//   test_accuracy=0.9102 test_loss=0.2511 ... examples_per_sec=1234.5 wall_s=150.20
// Started by `tandem run` or in a pod, it reads its worker contract (api/worker_contract.h: the
// manifest argument and the TANDEM_* environment) once, here; the flags override it. With
// TANDEM_WORLD_SIZE > 1 it is one rank of a data-parallel job (docs/data-parallel.md).
// --check-contract parses and validates everything (contract, manifest, model) and prints the
// contract as JSON without training: how tests feed it what the operator and `tandem run` render.
// --check-device opens the job's device and exits (`tandem run` asks it before a GPU job starts).
// A job whose trainers request nvidia.com/gpu trains on the CUDA device (api/trainer_device.h),
// opened through the CUDA plugin (trainer/backend/device_loader.h); without a usable GPU it
// exits 2 at once, naming the field and CUDA's reason.
// Exit codes (api/exit_codes.h): 0 trained; 1 training failed; 2 bad flags, environment or
// manifest; 3 out of memory (common/out_of_memory.h, not retried); 75 a peer died, stalled or
// never came up (restart from the last checkpoint).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

#include "common/cli.h"
#include "common/logging.h"
#include "common/metrics_endpoint.h"
#include "api/manifest.h"
#include "api/trainer_device.h"
#include "api/worker_contract.h"
#include "api/worker_result.h"
#include "common/endpoint.h"
#include "common/environment.h"
#include "common/out_of_memory.h"
#include "common/status.h"
#include "trainer/backend/device_loader.h"
#include "trainer/collective/exit_codes.h"
#include "trainer/engine/data_parallel.h"
#include "trainer/engine/elastic_world.h"
#include "trainer/engine/events.h"
#include "trainer/engine/publisher.h"
#include "trainer/engine/peer_failure_watchdog.h"
#include "trainer/engine/sparse_path.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_graph.h"
#include "trainer/engine/trainer.h"
#include "trainer/model/trainer_spec.h"

namespace {

std::atomic<bool> g_stop{false};

// The decoded cache's folder (trainer/data/decoded_cache.h), a tuning variable outside the worker
// contract: TANDEM_DATA_CACHE ("off" or empty: none), else the user's cache folder (XDG base
// directories), else none.
std::string DecodedCacheDirFromEnv(const tandem::Environment& env) {
  if (auto v = tandem::EnvValue(env, "TANDEM_DATA_CACHE")) return v->empty() ? "off" : *v;
  if (auto xdg = tandem::EnvValue(env, "XDG_CACHE_HOME"); xdg && !xdg->empty()) return *xdg + "/tandem/decoded";
  if (auto home = tandem::EnvValue(env, "HOME"); home && !home->empty()) return *home + "/.cache/tandem/decoded";
  return "off";
}

// The tuning variables of the trainer's pserver client (outside the worker contract, like
// TANDEM_COLLECTIVE_*): seconds, unset for the client's defaults.
absl::StatusOr<tandem::trainer::PServerTimeouts> PServerTimeoutsFromEnv(const tandem::Environment& env) {
  tandem::trainer::PServerTimeouts t;
  const std::pair<const char*, std::optional<absl::Duration>*> vars[] = {
      {"TANDEM_PSERVER_RPC_TIMEOUT_S", &t.rpc}, {"TANDEM_PSERVER_RECONNECT_TIMEOUT_S", &t.reconnect}};
  for (const auto& [name, out] : vars) {
    if (!tandem::EnvValue(env, name)) continue;
    double seconds = 0;
    TANDEM_RETURN_IF_ERROR(tandem::ReadEnvNumber(env, name, &seconds));
    if (seconds <= 0 || seconds > 86400)
      return absl::InvalidArgumentError(absl::StrCat(name, "=", seconds, ": must be in (0, 86400]"));
    *out = absl::Seconds(seconds);
  }
  return t;
}
std::atomic<bool> g_training{false};

// SIGTERM (tandem run's Ctrl-C, a pod's eviction) and SIGINT are blocked in every thread and
// taken by this one with sigwait, so no other thread (collective, data prefetch, metrics) ever
// has a system call interrupted or a handler run in the middle of its work. Before training
// there is nothing to save: leave at once (a rendezvous may wait minutes); during training,
// checkpoint after the current step and exit 143.
void WaitForStopSignals(sigset_t signals) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (!g_training.load()) ::_exit(128 + SIGTERM);
    g_stop.store(true);
  }
}

// A GPU job's device (api/trainer_device.h): the CUDA plugin (TANDEM_CUDA_PLUGIN, a tuning
// variable outside the contract, else beside this binary, else the loader's search path) makes
// the device of TANDEM_GPU_ORDINAL. Any failure names the field that asked for the GPU and
// CUDA's own reason: no fall-back to the CPU.
absl::StatusOr<std::unique_ptr<tandem::trainer::Device>> OpenGpu(
    const tandem::api::TrainerDevice& choice, int ordinal, const tandem::Environment& env,
    tandem::trainer::CudaPlugin** plugin_out) {
  auto explain = [&](const absl::Status& why) {
    return absl::Status(why.code(),
                        absl::StrCat(tandem::api::kTrainerGpuField, " = ", choice.gpus_per_trainer,
                                     ": this job trains on a GPU (GPU ", ordinal, " of this process",
                                     "), which cannot be used: ", why.message(),
                                     ". There is no fall-back to the CPU: run the job where a GPU "
                                     "is, or remove the GPU request to train on the CPU"));
  };
  std::string exe(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
  exe.resize(n > 0 ? static_cast<size_t>(n) : 0);
  auto plugin = tandem::trainer::CudaPlugin::Load(tandem::trainer::CudaPluginCandidates(
      tandem::EnvValue(env, "TANDEM_CUDA_PLUGIN").value_or(""), exe));
  if (!plugin.ok()) return explain(plugin.status());
  auto device = (*plugin)->CreateDevice({.ordinal = ordinal, .host_accessible = true});
  if (!device.ok()) return explain(device.status());
  *plugin_out = *plugin;
  return device;
}

// An elastic job's ring of membership `epoch`: the hello carries the epoch beside the job id, so
// a peer on another epoch is told apart from another job (trainer/collective/tcp_transport.h).
tandem::collective::CommunicatorOptions ElasticCommunicatorOptions(
    tandem::collective::CommunicatorOptions options, int64_t epoch,
    const std::function<absl::Status()>& keep_waiting) {
  options.transport.epoch = epoch;
  options.transport.keep_waiting = keep_waiting;
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  tandem::InstallOutOfMemoryHandler("tandem-trainer");
  // Block the stop signals before any thread exists (threads inherit the mask); one thread
  // takes them (WaitForStopSignals).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::thread(WaitForStopSignals, stop_signals).detach();
  CLI::App app{"tandem-trainer: trains a TrainingJob's model in one process (one worker's trainer)"};
  app.name("tandem-trainer");
  tandem::AddVersionFlag(app, "tandem-trainer");
  std::string job_path;
  // Not ->required(): CLI11 would then report a missing job before an unknown flag.
  app.add_option("job", job_path, "TrainingJob manifest (YAML or JSON)");
  int metrics_port = -1;
  app.add_option("--metrics-port", metrics_port,
                 "Port for /metrics, /healthz, /readyz (-1: off; default $TANDEM_METRICS_PORT)")
      ->check(CLI::Range(-1, 65535));
  int threads = -1;
  app.add_option("--threads", threads, "Compute threads (default spec.trainer.threads)")
      ->check(CLI::Range(0, 1024));
  int64_t passes = 0;
  app.add_option("--passes", passes, "Override spec.passes")->check(CLI::Range(1, 1000000));
  std::string checkpoint_dir;
  app.add_option("--checkpoint-dir", checkpoint_dir,
                 "Checkpoint directory (default $TANDEM_CHECKPOINT_DIR; empty: none)");
  int64_t checkpoint_every = -1;
  app.add_option("--checkpoint-every", checkpoint_every,
                 "Steps between checkpoints (-1: spec.checkpoint.intervalSteps; 0: each pass)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 40));
  bool resume = true;
  app.add_flag("--resume,!--no-resume", resume, "Resume from the newest checkpoint (default on)");
  int64_t max_steps = 0;
  app.add_option("--max-steps", max_steps, "Stop after this many steps (0: all passes)");
  int64_t stop_after_pass = 0;
  app.add_option("--stop-after-pass", stop_after_pass,
                 "Pause after this pass (0: never): checkpoint, report a `paused` event and exit 0; "
                 "a later run resumes from there as if it had not paused (ASHA's rungs in sweeps)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  std::string output_dir;
  app.add_option("--output-dir", output_dir,
                 "Where rank 0 writes the final model (default $TANDEM_OUTPUT_DIR; empty: nowhere)");
  std::string data_cache;
  app.add_option("--data-cache", data_cache,
                 "Folder of the decoded cache of gzip IDX files, 'off' for none (default "
                 "$TANDEM_DATA_CACHE, else $XDG_CACHE_HOME/tandem/decoded or ~/.cache/tandem/decoded)");
  bool check_contract = false;
  app.add_flag("--check-contract", check_contract,
               "Parse and validate the worker contract and the manifest, print them, exit");
  bool check_device = false;
  app.add_flag("--check-device", check_device,
               "Open the device the job trains on (its GPU for a job that requests "
               "nvidia.com/gpu), print it, exit: 0 usable, 2 not, with the reason");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  const tandem::Environment env = tandem::ProcessEnvironment();
  auto contract = tandem::api::ParseWorkerContract(tandem::api::WorkerRole::kTrainer, job_path, env);
  if (!contract.ok()) {
    std::cerr << "tandem-trainer: " << contract.status().message() << "\n"
              << "Run 'tandem-trainer --help' for usage." << std::endl;
    return tandem::api::kExitInvalid;
  }
  tandem::InitLogging("trainer");
  // Flags override the contract.
  if (metrics_port == -1) metrics_port = contract->metrics_port;
  if (checkpoint_dir.empty()) checkpoint_dir = contract->checkpoint_dir;
  if (output_dir.empty()) output_dir = contract->output_dir;
  if (threads == -1) threads = contract->threads;
  if (data_cache.empty()) data_cache = DecodedCacheDirFromEnv(env);
  if (data_cache == "off") data_cache.clear();

  auto job = tandem::api::LoadTrainingJob(job_path, tandem::trainer::TrainerSectionValidators());
  if (!job.ok()) {
    std::cerr << "tandem-trainer: invalid TrainingJob:\n" << job.status().message() << std::endl;
    return tandem::api::kExitInvalid;
  }
  // Elastic (spec.elastic with TANDEM_MEMBERSHIP): the membership file says who is in the job;
  // this trainer is known by its own endpoint and connects once it is named there (ElasticWorld::
  // Join, after loading its data).
  const bool elastic = job->spec.elastic.has_value() && !contract->membership_file.empty();
  std::unique_ptr<tandem::trainer::FileMembershipSource> membership;
  tandem::Endpoint self;
  if (elastic) {
    self = contract->peers.at(static_cast<size_t>(contract->rank));
    membership = std::make_unique<tandem::trainer::FileMembershipSource>(contract->membership_file);
  }
  const int world_size = contract->world_size;
  const nlohmann::json spec_json = tandem::api::SpecToJson(job->spec);
  auto spec = tandem::trainer::ParseTrainerSpec(spec_json, {.check_files = true});
  if (!spec.ok()) {
    std::cerr << "tandem-trainer: " << job_path << ": invalid TrainingJob:\n"
              << spec.status().message() << std::endl;
    return tandem::api::kExitInvalid;
  }
  if (passes > 0) spec->passes = passes;
  // spec.checkpoint.intervalSteps as the API defaults it (500), as the pservers read it too.
  if (checkpoint_every == -1) checkpoint_every = job->spec.checkpoint.interval_steps;
  const tandem::api::SyncSpec& sync_spec = job->spec.sync;
  const tandem::api::TrainerDevice device_choice = tandem::api::SelectTrainerDevice(job->spec);
  const bool gpu_job = device_choice.kind == tandem::api::TrainerDeviceKind::kCuda;
  const int gpu_ordinal = gpu_job ? std::max(0, contract->gpu_ordinal) : -1;
  if (check_contract) {
    nlohmann::json out = {{"role", "trainer"},
                          {"manifest", contract->manifest_path},
                          {"job", job->metadata.name},
                          {"jobName", contract->job_name},
                          {"rank", contract->rank},
                          {"worldSize", contract->world_size},
                          {"peers", tandem::EndpointListToString(contract->peers)},
                          {"pservers", tandem::EndpointListToString(contract->pservers)},
                          {"tokenBytes", contract->token.size()},
                          {"tlsCa", contract->tls.ca_file},
                          {"tlsCert", contract->tls.cert_file},
                          {"tlsKey", contract->tls.key_file},
                          {"checkpointDir", checkpoint_dir},
                          {"outputDir", output_dir},
                          {"metricsPort", metrics_port},
                          {"threads", threads},
                          {"events", contract->events},
                          {"host", contract->host},
                          {"syncMode", sync_spec.mode},
                          {"syncDense", sync_spec.dense},
                          {"staleness", sync_spec.staleness},
                          {"device", device_choice.ToString()},
                          {"gpuOrdinal", gpu_ordinal}};
    std::cout << out.dump() << std::endl;
    return 0;
  }
  const bool events_on = contract->events;
  // A GPU job opens its device first: on a machine without a usable GPU it fails here, at once,
  // before it meets its peers or loads its data.
  std::unique_ptr<tandem::trainer::Device> gpu;
  tandem::trainer::CudaPlugin* cuda_plugin = nullptr;
  if (gpu_job) {
    auto opened = OpenGpu(device_choice, gpu_ordinal, env, &cuda_plugin);
    if (!opened.ok()) {
      std::cerr << "tandem-trainer: " << opened.status().message() << std::endl;
      return tandem::api::kExitInvalid;
    }
    gpu = *std::move(opened);
    std::cout << "device: " << gpu->Describe() << " through " << cuda_plugin->path() << " ("
              << cuda_plugin->description() << ")" << std::endl;
  }
  if (check_device) {
    if (!gpu_job)
      std::cout << "device: cpu (" << tandem::api::kTrainerGpuField << " unset)" << std::endl;
    return 0;
  }

  tandem::HealthState health;
  tandem::MetricsEndpoint endpoint(tandem::metrics::Registry::Default(), &health);
  if (auto st = endpoint.Start("0.0.0.0", metrics_port); !st.ok()) {
    std::cerr << "tandem-trainer: metrics endpoint: " << st.message() << std::endl;
    return tandem::api::kExitFailed;
  }
  if (metrics_port >= 0) std::cout << "metrics on port " << endpoint.port() << std::endl;
  health.SetReady(true);

  const std::string name = job->metadata.name;
  // Sparse path: embedding tables (and, with spec.sync.dense: pserver, dense parameters) live on
  // the pservers of TANDEM_PSERVERS. Without pservers the tables stay local. Connected before the
  // ring: see Join below.
  std::unique_ptr<tandem::trainer::SparsePath> sparse;
  if (!contract->pservers.empty()) {
    const tandem::trainer::PServerSyncOptions sync = tandem::trainer::PServerSyncOptionsFrom(sync_spec);
    tandem::trainer::ModelGraph graph;
    auto errors = tandem::trainer::BuildModelGraph(
        spec->model, tandem::trainer::LayerRegistry::Builtin(), "spec.model", &graph);
    if (errors.empty() && (tandem::trainer::HasSparseTables(graph) || sync.dense_on_pserver)) {
      std::vector<std::string> endpoints;
      for (const tandem::Endpoint& e : contract->pservers) endpoints.push_back(e.ToString());
      tandem::trainer::PServerLayout layout;
      if (elastic) {
        // Elastic shards are the membership's pserver layout (rendezvous placement over worker
        // slots); a new member of a grow starts on the current one and moves to the grown one
        // once rank 0 resharded (TrainingLoop::FollowLayout).
        auto now = membership->Latest();
        if (!now.ok() || !now->has_value() || (*now)->pservers.empty()) {
          std::cerr << "tandem-trainer: " << contract->membership_file << ": "
                    << (!now.ok() ? std::string(now.status().message())
                                  : std::string("no pserver layout (pservers), but the model has "
                                                "tables on the pservers"))
                    << std::endl;
          return tandem::api::kExitInvalid;
        }
        endpoints.clear();
        for (const tandem::api::PServerShard& s : (*now)->pservers) {
          endpoints.push_back(s.endpoint.ToString());
          layout.ids.push_back(static_cast<uint32_t>(s.slot));
        }
        layout.epoch = static_cast<uint64_t>((*now)->pserver_epoch);
        layout.block_size_shards = static_cast<uint32_t>(job->spec.workers.max_count);
      }
      auto timeouts = PServerTimeoutsFromEnv(env);
      if (!timeouts.ok()) {
        std::cerr << "tandem-trainer: " << timeouts.status().message() << std::endl;
        return tandem::api::kExitInvalid;
      }
      auto sp = tandem::trainer::SparsePath::Connect(endpoints, contract->token, contract->tls,
                                                           contract->rank, sync, *timeouts, layout);
      if (!sp.ok()) {
        std::cerr << "tandem-trainer: parameter server: " << sp.status().message() << std::endl;
        return tandem::api::kExitFailed;
      }
      sparse = std::move(*sp);
      // Elastic: the trainer announces itself (Join) once on the layout it trains with, when its
      // tables are declared (SparsePath::Attach): a new member's shards serve only after the
      // reshard. The restart handling Join exists for does not apply (a failure fails the job).
      // Before meeting the other trainers: if this rank restarted, the shards release the
      // others from the step they wait in, so that they restart and resume with it.
      if (auto joined = elastic ? absl::OkStatus() : sparse->Join(); !joined.ok()) {
        // A shard unreachable for the reconnect timeout (its host partitioned, restarting) is
        // the peer failure of the pserver path: retried like the ring's, not fatal to the job.
        const bool transient = absl::IsUnavailable(joined) || absl::IsDeadlineExceeded(joined);
        std::cerr << "tandem-trainer: parameter server: " << joined.message()
                  << (transient ? " (exit 75: retry from the last checkpoint)" : "") << std::endl;
        if (transient) tandem::trainer::ExitAfter(absl::Seconds(5), tandem::api::kExitPeerFailure);
        return transient ? tandem::api::kExitPeerFailure : tandem::api::kExitFailed;
      }
    }
  }
  // Data-parallel: meet the peers before the (long) data loading, so that a missing peer is
  // reported early; the rendezvous waits TANDEM_COLLECTIVE_RENDEZVOUS_TIMEOUT_S for them.
  std::unique_ptr<tandem::trainer::DataParallel> parallel;
  if (world_size > 1 || elastic) {
    absl::StatusOr<std::unique_ptr<tandem::collective::Communicator>> comm =
        std::unique_ptr<tandem::collective::Communicator>();
    if (!elastic) comm = tandem::collective::Communicator::ConnectWorker(*contract, env);
    if (!comm.ok()) {
      const int code = tandem::collective::ExitCodeFor(comm.status());
      std::cerr << "tandem-trainer: cannot join the data-parallel ring: " << comm.status().message()
                << (code == tandem::api::kExitPeerFailure
                        ? " (exit 75: retry from the last checkpoint)"
                        : "")
                << std::endl;
      return code == tandem::api::kExitPeerFailure ? code : tandem::api::kExitInvalid;
    }
    parallel = std::make_unique<tandem::trainer::DataParallel>(
        *std::move(comm), tandem::trainer::SyncOptionsFrom(sync_spec));
  }
  // A GPU job's dense gradients go through NCCL (its id broadcast over the ring just made),
  // unless TANDEM_COLLECTIVE_NCCL=0 or the job is elastic (its ring changes at every resize;
  // NCCL's communicator does not follow yet): then they are staged through the host memory the
  // GPU shares (managed memory) into the TCP ring, as a CPU job's.
  std::unique_ptr<tandem::trainer::GpuAllReducer> nccl;
  if (parallel != nullptr && gpu != nullptr && !elastic && sync_spec.dense == "ring" &&
      tandem::EnvValue(env, "TANDEM_COLLECTIVE_NCCL").value_or("1") != "0") {
    auto made = cuda_plugin->CreateAllReducer(
        gpu_ordinal, parallel->rank(), parallel->world_size(),
        [&](void* id, size_t bytes) { return parallel->Broadcast(id, bytes, 0); });
    if (!made.ok()) {
      const bool peer = tandem::collective::IsPeerFailure(made.status());
      std::cerr << "tandem-trainer: NCCL between the GPU ranks: " << made.status().message()
                << (peer ? " (exit 75: retry from the last checkpoint)" : "") << std::endl;
      return peer ? tandem::api::kExitPeerFailure : tandem::api::kExitFailed;
    }
    nccl = *std::move(made);
    parallel->UseDeviceAllReduce([r = nccl.get()](float* data, int64_t count) {
      return r->AllReduceAverage(data, count);
    });
  }
  // A failed ring ends this rank within a grace period even when its training thread is blocked
  // elsewhere (a pserver RPC behind the same cut link): trainer/engine/peer_failure_watchdog.h.
  // Not in an elastic job: there a failed ring is the survivors' cue to wait for the smaller
  // membership (elastic_world.h), and its communicator is replaced at every resize.
  std::unique_ptr<tandem::trainer::PeerFailureWatchdog> watchdog;
  if (parallel != nullptr && !elastic) {
    tandem::collective::Communicator* comm = &parallel->communicator();
    watchdog = std::make_unique<tandem::trainer::PeerFailureWatchdog>(
        [comm] { return comm->health(); }, absl::Seconds(2), [](const absl::Status& s) {
          std::cerr << "tandem-trainer: a peer failed and training did not stop within 2 s "
                       "(exit 75: restart from the last checkpoint): "
                    << s.message() << std::endl;
          ::_exit(tandem::api::kExitPeerFailure);
        });
  }
  std::unique_ptr<tandem::trainer::ElasticWorld> elastic_world;
  if (elastic) {
    auto comm_options = tandem::collective::CommunicatorOptionsFromEnv(env, contract->job_name);
    if (!comm_options.ok()) {
      std::cerr << "tandem-trainer: " << comm_options.status().message() << std::endl;
      return tandem::api::kExitInvalid;
    }
    tandem::trainer::ElasticOptions eo;
    eo.source = membership.get();
    eo.self = self;
    eo.connect = [base = *comm_options](const tandem::collective::PeerList& peers, int64_t epoch,
                                        const std::function<absl::Status()>& keep_waiting) {
      return tandem::collective::Communicator::Connect(
          ElasticCommunicatorOptions(base, epoch, keep_waiting), peers);
    };
    eo.policy = *job->spec.elastic;
    eo.stop = &g_stop;
    eo.registry = &tandem::metrics::Registry::Default();
    eo.job = job->metadata.name;
    eo.reference_workers = static_cast<int>(job->spec.workers.count);
    eo.max_workers = static_cast<int>(job->spec.workers.max_count);
    eo.batch_size = spec->data.batch_size;
    elastic_world = std::make_unique<tandem::trainer::ElasticWorld>(std::move(eo), *parallel);
  }
  std::unique_ptr<tandem::trainer::EventReporter> events;
  if (events_on) events = std::make_unique<tandem::trainer::EventReporter>(&std::cout);

  tandem::trainer::TrainOptions options;
  options.job = name;
  options.log = &std::cout;
  options.threads = threads;
  options.device = gpu.get();  // null: the CPU
  options.checkpoint_dir = checkpoint_dir;
  options.checkpoint_every = checkpoint_every;
  options.resume = resume;
  options.max_steps = max_steps;
  options.stop_after_pass = stop_after_pass;
  options.parallel = parallel.get();
  options.elastic = elastic_world.get();
  options.events = events.get();
  options.output_dir = output_dir;
  options.decoded_cache_dir = data_cache;
  options.stop = &g_stop;
  options.sparse = sparse.get();
  options.keep_final_parameters = false;  // nobody reads it here; it would be a second model
  // spec.publish: rank 0 publishes the model for tandem-serve, into the checkpoint volume.
  std::unique_ptr<tandem::trainer::Publisher> publisher;
  if (job->spec.publish.has_value() && contract->rank == 0) {
    if (checkpoint_dir.empty()) {
      std::cerr << "tandem-trainer: spec.publish needs a checkpoint directory "
                   "(TANDEM_CHECKPOINT_DIR or --checkpoint-dir): the published models live there"
                << std::endl;
      return tandem::api::kExitInvalid;
    }
    const tandem::api::PublishSpec& pub = *job->spec.publish;
    publisher = std::make_unique<tandem::trainer::Publisher>(
        tandem::trainer::PublishOptions{.dir = tandem::api::PublishDirectory(checkpoint_dir, pub),
                                        .every_steps = pub.every_steps,
                                        .every_seconds = 60.0 * static_cast<double>(pub.every_minutes),
                                        .keep = static_cast<int>(pub.keep),
                                        .job = name},
        spec->model.ToJson(), options.seed);
    options.publisher = publisher.get();
  }
  g_training.store(true);
  auto result = tandem::trainer::Train(*spec, options);
  watchdog.reset();  // training returned: failures are this thread's to report from here on
  // Leaving for a restart: the other ranks must learn it now (a clean close says goodbye, which
  // they take for a finished peer, and one blocked at a pserver's step barrier would wait there
  // for its timeout), and tearing down connections to unreachable pservers must not hold this
  // rank up.
  auto leave_for_restart = [&](const absl::Status& why) {
    // (An elastic trainer's ring may already be gone: a failed rebuild leaves none.)
    if (parallel != nullptr && !elastic) (void)parallel->communicator().transport().Fail(why);
    // Then go at once, without tearing down: what the restart resumes from is on disk, the
    // kernel closes the sockets, and the teardown of a failed ring and pserver connections once
    // ended this process with "double free or corruption" (exit 134, which a restart policy does
    // not retry) instead of 75, in trainer_ps_consistent_restart_test. That teardown, run again
    // under ASan + UBSan more than 110 times in the same case, reported nothing, and its cause
    // was not found (docs/hardening.md); trainer_ps_pserver_killed_exit_test guards this exit.
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    ::_exit(tandem::api::kExitPeerFailure);
    return tandem::api::kExitPeerFailure;
  };
  if (!result.ok()) {
    if (tandem::collective::IsPeerFailure(result.status())) {
      std::cerr << "tandem-trainer: a peer failed (exit 75: restart from the last checkpoint): "
                << result.status().message() << std::endl;
      return leave_for_restart(result.status());
    }
    if (absl::IsAborted(result.status()) && sparse != nullptr) {
      // A trainer or a pserver restarted: the job resumes from its last consistent checkpoint.
      std::cerr << "tandem-trainer: the parameter servers aborted the step (exit 75: restart "
                   "from the last consistent checkpoint): "
                << result.status().message() << std::endl;
      return leave_for_restart(result.status());
    }
    if (absl::IsCancelled(result.status())) {
      std::cerr << "tandem-trainer: " << result.status().message() << std::endl;
      return tandem::api::kExitStopped;
    }
    std::cerr << "tandem-trainer: " << result.status().message() << std::endl;
    return tandem::api::kExitFailed;
  }
  if (result->left_job) {
    // The examples go in the plain line too: pods run without @tandem events, and their logs are
    // how the data guarantee is checked there (tests/cluster/node_elastic_test.sh).
    std::cout << "tandem-trainer: left the job after step " << result->steps << " (the coordinator took "
              << "this worker out) examples=" << result->examples << std::endl;
    // What this trainer trained while in the job: summed over every trainer that ever took part,
    // the examples of the run (docs/elastic.md, the data guarantee).
    if (events)
      events->Emit({{"event", "left"}, {"steps", result->steps}, {"examples", result->examples}});
    return 0;
  }
  if (result->paused_after_pass > 0) {
    // Not finished: no result for the operator, no summary; a later run resumes.
    std::cout << "tandem-trainer: paused after pass " << result->paused_after_pass << " at step "
              << result->steps << std::endl;
    if (events)
      events->Emit({{"event", "paused"}, {"pass", result->paused_after_pass}, {"step", result->steps}});
    return 0;
  }
  std::cout << result->SummaryLine() << std::endl;
  if (!contract->termination_log.empty()) {
    // The operator reads the final metrics from here (api/worker_result.h): a failure to write is
    // reported but does not fail a job that trained.
    auto finite = [](double v) { return std::isfinite(v) ? std::optional<double>(v) : std::nullopt; };
    tandem::api::WorkerResult r;
    r.steps = result->steps;
    r.passes = max_steps == 0 ? spec->passes : 0;  // stopped by --max-steps: the pass is unknown
    r.test_accuracy = finite(result->test_accuracy);
    r.test_loss = finite(result->test_loss);
    r.test_auc = finite(result->test_auc);
    r.examples_per_sec = finite(result->examples_per_sec);
    std::ofstream out(contract->termination_log, std::ios::trunc);
    out << tandem::api::RenderWorkerResult(r);
    out.close();
    if (!out)
      std::cerr << "tandem-trainer: cannot write the result to " << contract->termination_log << " ("
                << tandem::api::kEnvTerminationLog << ")" << std::endl;
  }
  if (events) {
    auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
    nlohmann::json summary = {{"event", "summary"},
                  {"test_accuracy", number(result->test_accuracy)},
                  {"test_loss", number(result->test_loss)},
                  {"train_loss", number(result->train_loss)},
                  {"examples_per_sec", number(result->examples_per_sec)},
                  {"wall_s", result->wall_seconds},
                  {"steps", result->steps},
                  {"examples_this_trainer", result->examples},  // this process trained them
                  {"parameters", result->parameters}};
    // CTR models: the test AUC and, on synthetic data, the best achievable one.
    if (std::isfinite(result->test_auc)) summary["test_auc"] = result->test_auc;
    if (std::isfinite(result->best_auc)) summary["best_auc"] = result->best_auc;
    // Sequence-to-sequence models with spec.model.decode: the decoded test set's scores.
    if (std::isfinite(result->test_bleu)) {
      summary["test_exact_match"] = result->test_exact_match;
      summary["test_bleu"] = result->test_bleu;
    }
    if (elastic_world) summary["epoch"] = elastic_world->epoch();
    if (result->rows_pulled > 0) {
      summary["rows_pulled"] = result->rows_pulled;
      summary["ids_looked_up"] = result->ids_seen;
    }
    events->Emit(summary);
  }
  return 0;
}
