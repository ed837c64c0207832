// tandem-trainer: trains a TrainingJob's model in one process (one worker's trainer).
//
//   tandem-trainer examples/fashion-mnist-cnn.yaml [--threads 2] [--metrics-port 9100]
//
// Prints progress lines and, last, a summary of key=value pairs:
//   test_accuracy=0.9102 test_loss=0.2511 ... examples_per_sec=1234.5 wall_s=150.20
// Exit codes: 0 trained; 1 training failed; 2 bad flags or an invalid manifest.
#include <cstdlib>
#include <iostream>

#include "common/cli.h"
#include "common/logging.h"
#include "common/metrics_endpoint.h"
#include "common/yaml_json.h"
#include "trainer/engine/trainer.h"
#include "trainer/model/trainer_spec.h"

int main(int argc, char** argv) {
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
  tandem::trainer::TrainOptions options;
  options.job = name;
  options.log = &std::cout;
  options.threads = threads;
  options.checkpoint_dir = checkpoint_dir;
  options.checkpoint_every = checkpoint_every;
  options.resume = resume;
  options.max_steps = max_steps;
  auto result = tandem::trainer::Train(*spec, options);
  if (!result.ok()) {
    std::cerr << "tandem-trainer: " << result.status().message() << std::endl;
    return 1;
  }
  std::cout << result->SummaryLine() << std::endl;
  return 0;
}
