// tandem-operator: the Kubernetes operator for TrainingJob and Queue resources.
#include <iostream>

#include "common/cli.h"
#include "common/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"tandem-operator: the Kubernetes operator for TrainingJob and Queue resources"};
  app.name("tandem-operator");
  tandem::AddVersionFlag(app, "tandem-operator");
  int metrics_port = -1;
  app.add_option("--metrics-port", metrics_port, "Port for /metrics, /healthz, /readyz (-1: off)")
      ->check(CLI::Range(-1, 65535));
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  tandem::InitLogging("operator");
  std::cerr << "tandem-operator: not built yet in this version (see the open issue for operator/)" << std::endl;
  return 1;
}
