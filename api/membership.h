// The membership of an elastic job (spec.elastic, docs/elastic.md): which trainers are in it now,
// in rank order, and the epoch that numbers each change. Its coordinator (`tandem run`'s
// supervisor; on Kubernetes the operator, through a ConfigMap the pods mount) writes it; every
// trainer of the job reads it (TANDEM_MEMBERSHIP, api/worker_contract.h). A trainer is known by
// its collective endpoint (its own entry of TANDEM_PEERS), so its rank is its index in `peers`.
//
//   Membership m{.epoch = 3, .peers = {{"127.0.0.1", 4001}, {"127.0.0.1", 4003}},
//                .reason = "tandem resize: 3 -> 2"};
//   TANDEM_RETURN_IF_ERROR(WriteMembershipFile(path, m));     // atomic: readers see old or new
//   TANDEM_ASSIGN_OR_RETURN(std::optional<Membership> now, ReadMembershipFile(path));
//
// On the wire (JSON): {"epoch": 3, "peers": ["127.0.0.1:4001", "127.0.0.1:4003"], "reason": "..."}
// A job with tables on the pservers (sparse embeddings) also carries the shards' layout, one
// co-located shard per worker slot (optional, absent without pservers):
//   "pserverEpoch": 3, "pservers": [{"slot": 0, "endpoint": "127.0.0.1:5001"}, ...]
// pserverEpoch is the epoch of the layout (pserver/placement.h Placement::Rendezvous): the
// membership epoch at which the shard set last changed (a restart epoch keeps it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/endpoint.h"

namespace tandem::api {

// One live pserver shard of an elastic job: its stable id (the worker slot) and address.
struct PServerShard {
  int slot = 0;
  Endpoint endpoint;
  bool operator==(const PServerShard&) const = default;
};

struct Membership {
  int64_t epoch = 0;             // >= 0; a coordinator only ever raises it
  std::vector<Endpoint> peers;   // rank order; non-empty, no duplicates
  std::string reason;            // why this epoch began (events, logs)
  // The pserver layout (empty: the job has no pservers); slots distinct, in any order.
  int64_t pserver_epoch = 0;     // <= epoch
  std::vector<PServerShard> pservers;

  // The rank of the trainer listening at `self`, or -1 when it is not a member.
  int RankOf(const Endpoint& self) const;
  int world_size() const { return static_cast<int>(peers.size()); }
  bool operator==(const Membership&) const = default;
};

std::string RenderMembership(const Membership& m);
// Errors name `source` (the file) and the field at fault.
absl::StatusOr<Membership> ParseMembership(absl::string_view text, absl::string_view source);

// Writes `m` to `path` atomically (a temporary file in the same folder, renamed over it).
absl::Status WriteMembershipFile(const std::string& path, const Membership& m);
// The file's membership; nullopt when the file does not exist (yet).
absl::StatusOr<std::optional<Membership>> ReadMembershipFile(const std::string& path);

}  // namespace tandem::api
