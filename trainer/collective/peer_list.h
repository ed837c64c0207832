// The peer list a rank is started with: every rank's collective endpoint, in rank order, from
// TANDEM_PEERS / TANDEM_RANK / TANDEM_WORLD_SIZE (set by `tandem run` and by the operator).
//
//   TANDEM_ASSIGN_OR_RETURN(PeerList peers, PeerListFromEnv());
//   peers.endpoints[peers.rank]   // where this rank listens
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::collective {

struct PeerEndpoint {
  std::string host;
  int port = 0;
  std::string ToString() const;  // "host:port" ("[v6]:port" for IPv6 literals)
};

struct PeerList {
  int rank = 0;
  std::vector<PeerEndpoint> endpoints;  // size() == world size; rank order
  int world_size() const { return static_cast<int>(endpoints.size()); }
  // "rank 2 (10.0.0.3:7070)": how errors name a peer.
  std::string Describe(int peer_rank) const;
};

// Parses "host:port,host:port,..." (IPv6 literals as "[::1]:port"). Errors name the entry.
absl::StatusOr<std::vector<PeerEndpoint>> ParsePeerEndpoints(absl::string_view text);

// Builds and validates a peer list: 0 <= rank < world_size == endpoints.size().
absl::StatusOr<PeerList> MakePeerList(std::vector<PeerEndpoint> endpoints, int rank,
                                      int world_size);

// Reads TANDEM_PEERS, TANDEM_RANK and TANDEM_WORLD_SIZE; errors name the variable at fault.
absl::StatusOr<PeerList> PeerListFromEnv();

}  // namespace tandem::collective
