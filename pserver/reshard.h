// Driving a reshard of an elastic job's pservers (proto/pserver.proto "Resharding"): the
// coordinator's side, used by tests, bench/pserver-reshard and (not built yet) `tandem run`.
//
//   ReshardPlan plan;
//   plan.epoch = 2;
//   plan.from = {{0, "127.0.0.1:7000"}, {1, "127.0.0.1:7001"}};
//   plan.to = {{0, "127.0.0.1:7000"}, {1, "127.0.0.1:7001"}, {2, "127.0.0.1:7002"}};
//   TANDEM_ASSIGN_OR_RETURN(ReshardReport r, RunReshard(plan, {.token = token}));
//
// The shards of `to` not in `from` must already run, started with ShardOptions::joining and the
// new layout. The trainers must be paused at a step boundary (sync mode requires it: a shard
// with pushes pending refuses to begin); calls that arrive anyway are answered UNAVAILABLE while
// the shards are frozen (clients retry) and FAILED_PRECONDITION once they serve the new layout
// (the trainer reloads the membership and reconnects). After a failure before the commit every
// shard is told to abort and keeps its old layout; the commits (in parallel, after every send
// succeeded) are not undone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/job_certificates.h"

namespace tandem::pserver {

struct ReshardMember {
  uint32_t id = 0;
  std::string endpoint;
};

struct ReshardPlan {
  uint64_t epoch = 0;  // the new layout's; > the old one's
  std::vector<ReshardMember> from;
  std::vector<ReshardMember> to;
  uint32_t num_trainers = 0;  // the trainer count from the commit on (0: unchanged)
};

struct ReshardAuth {
  std::string token;
  tls::TlsFiles tls;
};

struct ReshardReport {
  uint64_t rows_moved = 0, blocks_moved = 0, bytes_moved = 0;
  uint64_t rows_kept = 0, blocks_kept = 0;
  absl::Duration begin, send, commit, total;
  std::vector<uint32_t> left;  // shards that are not in the new layout (they may exit)
};

absl::StatusOr<ReshardReport> RunReshard(const ReshardPlan& plan, const ReshardAuth& auth);

}  // namespace tandem::pserver
