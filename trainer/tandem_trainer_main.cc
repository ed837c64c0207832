// tandem-trainer: trains a TrainingJob's model in one process (one worker's trainer).
#include <iostream>

#include "common/cli.h"
#include "common/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"tandem-trainer: trains a TrainingJob's model in one process (one worker's trainer)"};
  app.name("tandem-trainer");
  tandem::AddVersionFlag(app, "tandem-trainer");
  int metrics_port = -1;
  app.add_option("--metrics-port", metrics_port, "Port for /metrics, /healthz, /readyz (-1: off)")
      ->check(CLI::Range(-1, 65535));
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  tandem::InitLogging("trainer");
  std::cerr << "tandem-trainer: not built yet in this version (see the open issue for trainer/)" << std::endl;
  return 1;
}
