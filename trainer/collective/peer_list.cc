#include "trainer/collective/peer_list.h"

#include "absl/strings/str_cat.h"

namespace tandem::collective {

std::string PeerList::Describe(int peer_rank) const {
  if (peer_rank < 0 || peer_rank >= world_size()) return absl::StrCat("rank ", peer_rank);
  return absl::StrCat("rank ", peer_rank, " (", endpoints[peer_rank].ToString(), ")");
}

absl::StatusOr<PeerList> MakePeerList(std::vector<PeerEndpoint> endpoints, int rank,
                                      int world_size) {
  if (world_size < 1)
    return absl::InvalidArgumentError(absl::StrCat("world size ", world_size, " must be >= 1"));
  if (static_cast<int>(endpoints.size()) != world_size)
    return absl::InvalidArgumentError(absl::StrCat("peer list has ", endpoints.size(),
                                                   " entries but the world size is ", world_size));
  if (rank < 0 || rank >= world_size)
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside [0, ", world_size, ")"));
  PeerList list;
  list.rank = rank;
  list.endpoints = std::move(endpoints);
  return list;
}

}  // namespace tandem::collective
