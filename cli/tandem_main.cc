// tandem: the command-line interface. `tandem run JOB.yaml` runs a TrainingJob on this machine
// as local processes; `tandem resize RUN_DIR|JOB N` resizes a running elastic job;
// `tandem validate FILE...` checks manifests.
#include <iostream>
#include <string>
#include <vector>

#include "cli/run.h"
#include "cli/validate.h"
#include "common/cli.h"
#include "common/logging.h"
#include "trainer/model/trainer_spec.h"

int main(int argc, char** argv) {
  CLI::App app{"tandem: distributed deep-learning training, on one machine or on Kubernetes"};
  app.name("tandem");
  tandem::AddVersionFlag(app, "tandem");
  app.require_subcommand(0, 1);
  tandem::cli::RunFlags run_flags;
  CLI::App* run = app.add_subcommand("run", "Run a TrainingJob (or a Sweep of them) on this machine as local processes");
  run->add_option("job", run_flags.job_path, "TrainingJob or Sweep manifest (YAML)")->required();
  run->add_option("--run-dir", run_flags.run_dir,
                  "Folder for logs, checkpoints, model and metrics (default runs/<job>-<time>)");
  run->add_option("--workers", run_flags.workers, "Override spec.workers.count")
      ->check(CLI::Range(1, 64));
  run->add_option("--grace", run_flags.grace_seconds,
                  "Seconds between SIGTERM and SIGKILL when stopping")
      ->check(CLI::Range(0.0, 3600.0));
  run->add_option("--serve", run_flags.serve_port,
                  "Start tandem-serve on this port (0: a free one) following the models the job "
                  "publishes (spec.publish); stopped when the job ends")
      ->check(CLI::Range(0, 65535));
  run->add_option("--placement", run_flags.placement,
                  "YAML file placing each worker on a host: its address and the command prefix "
                  "that runs there, e.g. 'ip netns exec NS' (docs/local-run.md)");
  run->add_flag("--verbose", run_flags.verbose, "Stream every process' output on a terminal too");
  run->add_option("--bin-dir", run_flags.bin_dir,
                  "Folder of tandem-trainer and tandem-pserver (default: next to tandem)");
  std::string resize_target;
  int resize_workers = 0;
  double resize_timeout = 30;
  CLI::App* resize = app.add_subcommand(
      "resize", "Change the number of workers of a running elastic job (spec.elastic)");
  resize->add_option("job", resize_target, "The run folder, or the job's name (its newest run in runs/)")
      ->required();
  resize->add_option("workers", resize_workers, "The new number of workers")
      ->required()
      ->check(CLI::Range(1, 4096));
  resize->add_option("--timeout", resize_timeout, "Seconds to wait for the run's answer")
      ->check(CLI::Range(0.1, 3600.0));
  std::vector<std::string> files;
  CLI::App* validate = app.add_subcommand("validate", "Check TrainingJob, Queue and Sweep manifests");
  validate->add_option("files", files, "Manifests to check")->required();
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  if (app.get_subcommands().empty()) {
    std::cerr << "tandem: error: a command is required (run, resize, validate)\n"
              << "Run 'tandem --help' for usage." << std::endl;
    return tandem::kExitUsage;
  }
  tandem::InitLogging("tandem");
  // The trainer's checks of spec.model/data/optimizer join the API's (docs/api.md).
  const tandem::api::SectionValidators validators = tandem::trainer::TrainerSectionValidators();
  if (resize->parsed()) return tandem::cli::ResizeJob(resize_target, resize_workers, resize_timeout);
  if (validate->parsed()) {
    // The trainer's memory estimate against its budget, shown for every valid TrainingJob (a
    // job that does not fit is already refused by the validators).
    const tandem::cli::SpecNote memory = [](const nlohmann::json& spec) -> std::string {
      std::optional<tandem::trainer::TrainerMemoryCheck> c = tandem::trainer::CheckTrainerMemory(spec);
      return c ? "trainer memory: " + c->Explain() : "";
    };
    return tandem::cli::RunValidate(files, validators, std::cout, {memory});
  }
  return tandem::cli::RunJob(run_flags, validators);
}
