// tandem-trainer: trains a TrainingJob's model in one process (one worker's trainer).
//
//   tandem-trainer examples/fashion-mnist-cnn.yaml [--threads 2] [--metrics-port 9100]
//
// Prints progress lines and, last, a summary of key=value pairs:
//   test_accuracy=0.9102 test_loss=0.2511 ... examples_per_sec=1234.5 wall_s=150.20
// With TANDEM_WORLD_SIZE > 1 it is one rank of a data-parallel job (docs/data-parallel.md):
// it meets its peers (TANDEM_PEERS, TANDEM_RANK) and trains on its shard with averaged gradients.
// With TANDEM_EVENTS=1 it also prints `@tandem {json}` event lines (docs/local-run.md).
// Exit codes: 0 trained; 1 training failed; 2 bad flags or an invalid manifest; 3 out of memory
// (common/out_of_memory.h); 75 a peer died, stalled or never came up (restart from the last
// checkpoint: trainer/collective/exit_codes.h).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <thread>

#include "common/cli.h"
#include "common/logging.h"
#include "common/metrics_endpoint.h"
#include "common/out_of_memory.h"
#include "common/yaml_json.h"
#include "trainer/collective/exit_codes.h"
#include "trainer/engine/data_parallel.h"
#include "trainer/engine/events.h"
#include "trainer/engine/sparse_path.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_graph.h"
#include "trainer/engine/trainer.h"
#include "trainer/model/trainer_spec.h"

namespace {

std::atomic<bool> g_stop{false};
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
  int64_t checkpoint_every = 0;
  app.add_option("--checkpoint-every", checkpoint_every,
                 "Steps between checkpoints (default spec.checkpoint.intervalSteps; 0: each pass)");
  bool resume = true;
  app.add_flag("--resume,!--no-resume", resume, "Resume from the newest checkpoint (default on)");
  int64_t max_steps = 0;
  app.add_option("--max-steps", max_steps, "Stop after this many steps (0: all passes)");
  std::string output_dir;
  app.add_option("--output-dir", output_dir,
                 "Where rank 0 writes the final model (default $TANDEM_OUTPUT_DIR; empty: nowhere)");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  if (job_path.empty()) {
    std::cerr << "tandem-trainer: a TrainingJob manifest is required (tandem-trainer JOB.yaml)\n"
              << "Run 'tandem-trainer --help' for usage." << std::endl;
    return 2;
  }
  tandem::InitLogging("trainer");

  if (metrics_port == -1) {
    if (const char* env = std::getenv("TANDEM_METRICS_PORT"); env != nullptr && *env != '\0')
      metrics_port = std::atoi(env);
  }
  if (checkpoint_dir.empty()) {
    if (const char* env = std::getenv("TANDEM_CHECKPOINT_DIR"); env != nullptr) checkpoint_dir = env;
  }
  if (output_dir.empty()) {
    if (const char* env = std::getenv("TANDEM_OUTPUT_DIR"); env != nullptr) output_dir = env;
  }
  if (threads == -1) {
    if (const char* env = std::getenv("TANDEM_THREADS"); env != nullptr && *env != '\0')
      threads = std::atoi(env);
  }
  int world_size = 1;
  if (const char* env = std::getenv("TANDEM_WORLD_SIZE"); env != nullptr && *env != '\0') {
    world_size = std::atoi(env);
    if (world_size < 1) {
      std::cerr << "tandem-trainer: TANDEM_WORLD_SIZE: must be an integer >= 1, got '" << env
                << "'" << std::endl;
      return 2;
    }
  }
  const char* events_env = std::getenv("TANDEM_EVENTS");
  const bool events_on = events_env != nullptr && std::string(events_env) == "1";

  auto docs = tandem::YamlFileToJson(job_path);
  if (!docs.ok()) {
    std::cerr << "tandem-trainer: " << docs.status().message() << std::endl;
    return 2;
  }
  if (docs->size() != 1 || !(*docs)[0].is_object() || !(*docs)[0].contains("spec")) {
    std::cerr << "tandem-trainer: " << job_path
              << ": expected one TrainingJob document with a spec" << std::endl;
    return 2;
  }
  const nlohmann::json& job = (*docs)[0];
  auto spec = tandem::trainer::ParseTrainerSpec(job["spec"], {.check_files = true});
  if (!spec.ok()) {
    std::cerr << "tandem-trainer: " << job_path << ": invalid TrainingJob:\n"
              << spec.status().message() << std::endl;
    return 2;
  }
  if (passes > 0) spec->passes = passes;
  if (checkpoint_every == 0 && job["spec"].contains("checkpoint") &&
      job["spec"]["checkpoint"].is_object() &&
      job["spec"]["checkpoint"].value("intervalSteps", nlohmann::json()).is_number_integer()) {
    checkpoint_every = job["spec"]["checkpoint"]["intervalSteps"].get<int64_t>();
  }

  tandem::HealthState health;
  tandem::MetricsEndpoint endpoint(tandem::metrics::Registry::Default(), &health);
  if (auto st = endpoint.Start("0.0.0.0", metrics_port); !st.ok()) {
    std::cerr << "tandem-trainer: metrics endpoint: " << st.message() << std::endl;
    return 1;
  }
  if (metrics_port >= 0) std::cout << "metrics on port " << endpoint.port() << std::endl;
  health.SetReady(true);

  std::string name = "local";
  if (job.contains("metadata") && job["metadata"].is_object() &&
      job["metadata"].value("name", nlohmann::json()).is_string())
    name = job["metadata"]["name"].get<std::string>();
  // Sparse path: embedding tables (and, with spec.sync.dense: pserver, dense parameters) live on
  // the pservers of TANDEM_PSERVERS. Without pservers the tables stay local. Connected before the
  // ring: see Join below.
  std::unique_ptr<tandem::trainer::SparsePath> sparse;
  if (const char* ps = std::getenv("TANDEM_PSERVERS"); ps != nullptr && *ps != '\0') {
    auto sync = tandem::trainer::ParsePServerSyncOptions(job["spec"]);
    if (!sync.ok()) {
      std::cerr << "tandem-trainer: " << job_path << ": " << sync.status().message() << std::endl;
      return 2;
    }
    tandem::trainer::ModelGraph graph;
    auto errors = tandem::trainer::BuildModelGraph(
        spec->model, tandem::trainer::LayerRegistry::Builtin(), "spec.model", &graph);
    if (errors.empty() && (tandem::trainer::HasSparseTables(graph) || sync->dense_on_pserver)) {
      auto sp = tandem::trainer::SparsePath::ConnectFromEnv(*sync);
      if (!sp.ok()) {
        std::cerr << "tandem-trainer: parameter server: " << sp.status().message() << std::endl;
        return 1;
      }
      sparse = std::move(*sp);
      // Before meeting the other trainers: if this rank restarted, the shards release the
      // others from the step they wait in, so that they restart and resume with it.
      if (auto joined = sparse->Join(); !joined.ok()) {
        std::cerr << "tandem-trainer: parameter server: " << joined.message() << std::endl;
        return 1;
      }
    }
  }
  // Data-parallel: meet the peers before the (long) data loading, so that a missing peer is
  // reported early; the rendezvous waits TANDEM_COLLECTIVE_RENDEZVOUS_TIMEOUT_S for them.
  std::unique_ptr<tandem::trainer::DataParallel> parallel;
  if (world_size > 1) {
    auto sync = tandem::trainer::ParseSyncOptions(job["spec"]);
    if (!sync.ok()) {
      std::cerr << "tandem-trainer: " << job_path << ": " << sync.status().message() << std::endl;
      return 2;
    }
    auto dp = tandem::trainer::DataParallel::ConnectFromEnv(*sync);
    if (!dp.ok()) {
      const int code = tandem::collective::ExitCodeFor(dp.status());
      std::cerr << "tandem-trainer: cannot join the data-parallel ring: " << dp.status().message()
                << (code == tandem::collective::kPeerFailureExitCode
                        ? " (exit 75: retry from the last checkpoint)"
                        : "")
                << std::endl;
      return code == tandem::collective::kPeerFailureExitCode ? code : 2;
    }
    parallel = std::move(*dp);
  }
  std::unique_ptr<tandem::trainer::EventReporter> events;
  if (events_on) events = std::make_unique<tandem::trainer::EventReporter>(&std::cout);

  tandem::trainer::TrainOptions options;
  options.job = name;
  options.log = &std::cout;
  options.threads = threads;
  options.checkpoint_dir = checkpoint_dir;
  options.checkpoint_every = checkpoint_every;
  options.resume = resume;
  options.max_steps = max_steps;
  options.parallel = parallel.get();
  options.events = events.get();
  options.output_dir = output_dir;
  options.stop = &g_stop;
  options.sparse = sparse.get();
  g_training.store(true);
  auto result = tandem::trainer::Train(*spec, options);
  if (!result.ok()) {
    if (tandem::collective::IsPeerFailure(result.status())) {
      std::cerr << "tandem-trainer: a peer failed (exit 75: restart from the last checkpoint): "
                << result.status().message() << std::endl;
      return tandem::collective::kPeerFailureExitCode;
    }
    if (absl::IsAborted(result.status()) && sparse != nullptr) {
      // A trainer or a pserver restarted: the job resumes from its last consistent checkpoint.
      std::cerr << "tandem-trainer: the parameter servers aborted the step (exit 75: restart "
                   "from the last consistent checkpoint): "
                << result.status().message() << std::endl;
      return tandem::collective::kPeerFailureExitCode;
    }
    if (absl::IsCancelled(result.status())) {
      std::cerr << "tandem-trainer: " << result.status().message() << std::endl;
      return 128 + SIGTERM;
    }
    std::cerr << "tandem-trainer: " << result.status().message() << std::endl;
    return 1;
  }
  std::cout << result->SummaryLine() << std::endl;
  if (events) {
    auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
    nlohmann::json summary = {{"event", "summary"},
                  {"test_accuracy", number(result->test_accuracy)},
                  {"test_loss", number(result->test_loss)},
                  {"train_loss", number(result->train_loss)},
                  {"examples_per_sec", number(result->examples_per_sec)},
                  {"wall_s", result->wall_seconds},
                  {"steps", result->steps},
                  {"parameters", result->parameters}};
    // CTR models: the test AUC and, on synthetic data, the best achievable one.
    if (std::isfinite(result->test_auc)) summary["test_auc"] = result->test_auc;
    if (std::isfinite(result->best_auc)) summary["best_auc"] = result->best_auc;
    if (result->rows_pulled > 0) {
      summary["rows_pulled"] = result->rows_pulled;
      summary["ids_looked_up"] = result->ids_seen;
    }
    events->Emit(summary);
  }
  return 0;
}
