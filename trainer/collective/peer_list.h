// The peer list a rank is started with: every rank's collective endpoint, in rank order. The
// trainer's main takes it from its worker contract (api/worker_contract.h: TANDEM_PEERS,
// TANDEM_RANK, TANDEM_WORLD_SIZE).
//
//   TANDEM_ASSIGN_OR_RETURN(PeerList peers, MakePeerList(contract.peers, contract.rank,
//                                                        contract.world_size));
//   peers.endpoints[peers.rank]   // where this rank listens
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/endpoint.h"

namespace tandem::collective {

using PeerEndpoint = ::tandem::Endpoint;

struct PeerList {
  int rank = 0;
  std::vector<PeerEndpoint> endpoints;  // size() == world size; rank order
  int world_size() const { return static_cast<int>(endpoints.size()); }
  // "rank 2 (10.0.0.3:7070)": how errors name a peer.
  std::string Describe(int peer_rank) const;
};

// Parses "host:port,host:port,..." (common/endpoint.h). Errors name the entry.
inline absl::StatusOr<std::vector<PeerEndpoint>> ParsePeerEndpoints(absl::string_view text) {
  return ParseEndpointList(text);
}

// Builds and validates a peer list: 0 <= rank < world_size == endpoints.size().
absl::StatusOr<PeerList> MakePeerList(std::vector<PeerEndpoint> endpoints, int rank,
                                      int world_size);

}  // namespace tandem::collective
