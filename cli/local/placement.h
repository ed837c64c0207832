// Placement: which host each process of a `tandem run` job runs on, and how to start a command
// there. Without one, every process runs here and the workers meet on 127.0.0.1. With one
// (`tandem run JOB.yaml --placement hosts.yaml`), each worker's trainer and pserver are started
// through their host's `exec` prefix and reached at the host's address:
//
//   hosts:                                  # one entry per host
//     - name: h0                            # becomes TANDEM_HOST of the processes placed here
//       address: 10.213.7.1                 # peers dial TANDEM_PEERS / TANDEM_PSERVERS here
//       exec: [ip, netns, exec, tdm-h0]     # prefix of every command started on this host
//     - {name: h1, address: 10.213.7.2, exec: [ip, netns, exec, tdm-h1]}
//   workers: [h0, h1]                       # worker i's host (default: round-robin over hosts)
//   pservers: [h1, h0]                      # pserver i's host (default: its worker's)
//
// What an `exec` prefix must do: run the command that follows it (argv) with the environment it
// was given (the worker contract travels in the environment), in the same process (exec, not
// fork: the supervisor signals and reaps that pid), on the same filesystem (the manifest, the
// TLS files, checkpoints and logs are paths of this machine). `ip netns exec NS`, `nsenter -n -t
// PID` and `unshare` do; `ssh` does not (no environment, another filesystem), so this is not a
// launcher for remote machines: the operator is. It exists to run a real job (the supervisor,
// the worker contract, checkpoints and restarts) across network namespaces, where links can be
// cut, partitioned and shaped (tests/network/, docs/hardening.md).
//
// Ports are picked free on this machine's loopback and used unchanged on every host (a network
// namespace has a port space of its own, empty at creation).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::local {

struct PlacementHost {
  std::string name;               // non-empty, unique, [A-Za-z0-9._-]{1,63}
  std::string address;            // an IPv4/IPv6 literal or a host name, no port
  std::vector<std::string> exec;  // may be empty: the command runs as is
};

struct Placement {
  std::vector<PlacementHost> hosts;
  std::vector<int> worker_hosts;   // worker i -> index into hosts (trainer i)
  std::vector<int> pserver_hosts;  // pserver i -> index into hosts

  const PlacementHost& worker_host(int i) const { return hosts.at(worker_hosts.at(i)); }
  const PlacementHost& pserver_host(int i) const { return hosts.at(pserver_hosts.at(i)); }
};

// Validates a placement document for a job of `workers` workers. `source` names it in errors,
// which name the field: "hosts.yaml: workers[2]: host 'h9' is not one of hosts (h0, h1)".
absl::StatusOr<Placement> ParsePlacement(const nlohmann::json& doc, int workers,
                                         const std::string& source);

// Reads `path` (YAML or JSON, one document) and parses it with ParsePlacement.
absl::StatusOr<Placement> LoadPlacement(const std::string& path, int workers);

}  // namespace tandem::local
