// tandem-pserver: serves one parameter-server shard over gRPC.
#include <iostream>

#include "common/cli.h"
#include "common/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"tandem-pserver: serves one parameter-server shard over gRPC"};
  app.name("tandem-pserver");
  tandem::AddVersionFlag(app, "tandem-pserver");
  int metrics_port = -1;
  app.add_option("--metrics-port", metrics_port, "Port for /metrics, /healthz, /readyz (-1: off)")
      ->check(CLI::Range(-1, 65535));
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  tandem::InitLogging("pserver");
  std::cerr << "tandem-pserver: not built yet in this version (see the open issue for pserver/)" << std::endl;
  return 1;
}
