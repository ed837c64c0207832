// tandem: the command-line interface. `tandem run JOB.yaml` runs a TrainingJob on this machine
// as local processes; `tandem validate FILE...` checks manifests.
#include <iostream>
#include <string>
#include <vector>

#include "cli/trainer_validators.h"
#include "cli/validate.h"
#include "common/cli.h"
#include "common/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"tandem: distributed deep-learning training, on one machine or on Kubernetes"};
  app.name("tandem");
  tandem::AddVersionFlag(app, "tandem");
  app.require_subcommand(0, 1);
  std::string job_path;
  CLI::App* run = app.add_subcommand("run", "Run a TrainingJob on this machine as local processes");
  run->add_option("job", job_path, "TrainingJob manifest (YAML)")->required();
  std::vector<std::string> files;
  CLI::App* validate = app.add_subcommand("validate", "Check TrainingJob and Queue manifests");
  validate->add_option("files", files, "Manifests to check")->required();
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  if (app.get_subcommands().empty()) {
    std::cerr << "tandem: error: a command is required (run, validate)\n"
              << "Run 'tandem --help' for usage." << std::endl;
    return tandem::kExitUsage;
  }
  tandem::InitLogging("tandem");
  // The trainer's checks of spec.model/data/optimizer join the API's (docs/api.md).
  tandem::cli::RegisterTrainerValidators();
  if (validate->parsed()) return tandem::cli::RunValidate(files, std::cout);
  std::cerr << "tandem: 'run' is not built yet in this version" << std::endl;
  return 1;
}
