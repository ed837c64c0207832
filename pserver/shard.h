// One parameter-server shard: its tables and the step protocol (sync barrier or bounded-staleness
// async), independent of gRPC so that it can be tested directly. PServerService (service.h) puts
// authentication, limits and metrics in front of it.
//
// Sync mode: pushes of step t are summed into a pending buffer; step t is applied (sum / W, with
// the table's optimizer) once every trainer called StepBarrier(t) or moved past t, and only then
// does StepBarrier(t) return. version() is the number of the next step to apply.
// Async mode: a push is applied on arrival unless version() - based_on_version > staleness, in
// which case it is dropped and counted; version() is 1 + the newest step pushed. A repeated
// (rank, step, seq) of a rank's newest step is ignored (client retries are applied once).
// After a (re)start, the first step a trainer reports fast-forwards the shard to that step; the
// skipped steps are "lost" (their updates are missing from this shard) and counted.
//
// Consistent cut (docs/pserver.md): once trainers drive checkpoints (Join, CheckpointAtStep,
// RestoreToStep), the shard is in "cut mode": it never fast-forwards. In sync mode a push,
// barrier or checkpoint for a step the shard has not reached (it restarted from an older
// checkpoint or was rolled back) is answered ABORTED, as is everything after a known rank
// re-joined, until the trainers, resumed from one common step S, call RestoreToStep(S).
//
// Resharding (elastic jobs, rendezvous placement; proto/pserver.proto "Resharding"): BeginReshard
// freezes the shard (pulls, pushes and barriers answer UNAVAILABLE, which clients retry) once
// the data calls in flight finished; PrepareOutgoing copies what the new layout puts elsewhere;
// ReceiveReshard stages what other shards send; CommitReshard installs the staged rows, drops
// the sent ones and serves the new layout. Until the commit nothing is removed or installed, so
// AbortReshard restores the old layout exactly.
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/pserver.pb.h"
#include "pserver/placement.h"
#include "pserver/table.h"

namespace tandem::pserver {

struct ShardOptions {
  uint32_t shard = 0;         // REQUIRES: < num_shards
  uint32_t num_shards = 1;    // REQUIRES: > 0
  uint32_t num_trainers = 1;  // W; REQUIRES: > 0
  bool sync = true;
  uint64_t staleness = 4;  // async: the largest accepted version - based_on_version
  // Limits on what clients may declare (INVALID_ARGUMENT beyond them).
  uint32_t max_tables = 1024;
  uint32_t max_dim = 1 << 16;
  uint64_t max_dense_size = uint64_t{1} << 32;
  uint32_t max_block_size = 1 << 22;
  // Largest pull answer, in floats (a bigger request gets INVALID_ARGUMENT: split it).
  uint64_t max_response_floats = uint64_t{16} << 20;
  // A push or barrier may run at most this many steps ahead of version() (except the first step
  // after a start, which fast-forwards): a runaway step number would otherwise make its rank
  // count as "moved past" every pending step, or (async) make every other push look stale.
  uint64_t max_step_lead = 8;
  // Elastic jobs: rendezvous placement over the shard ids `members` of membership epoch
  // `placement_epoch`; `shard` is this shard's id. Empty: modulo placement over num_shards.
  std::vector<uint32_t> members;
  uint64_t placement_epoch = 0;
  // Started to join the layout (`members`, `placement_epoch`) at a reshard: holds nothing and
  // serves nothing until that reshard's commit.
  bool joining = false;
};

// What one shard sends to the others at a reshard, by receiving shard id.
struct OutgoingReshard {
  uint64_t version = 0;
  std::map<uint32_t, std::vector<ReshardTable>> by_shard;
  std::map<uint32_t, std::string> endpoints;  // the new layout's shards
  uint64_t rows_sent = 0, blocks_sent = 0, bytes_sent = 0, rows_kept = 0, blocks_kept = 0;
};

// Everything a checkpoint holds.
struct ShardState {
  uint32_t shard = 0;
  uint32_t num_shards = 1;
  uint64_t version = 0;
  uint64_t steps_lost = 0;
  bool cut_mode = false;  // written while trainers drive checkpoints
  struct Table {
    TableConfig config;
    TableSnapshot data;
  };
  std::vector<Table> tables;
};

class Shard {
 public:
  explicit Shard(const ShardOptions& options);
  ~Shard();

  absl::Status RegisterTable(const RegisterTableRequest& req, RegisterTableResponse* resp);
  absl::Status PullSparse(const PullSparseRequest& req, PullSparseResponse* resp);
  absl::Status PushSparse(const PushSparseRequest& req, PushResponse* resp);
  absl::Status PullDense(const PullDenseRequest& req, PullDenseResponse* resp);
  absl::Status PushDense(const PushDenseRequest& req, PushResponse* resp);
  // Sync: blocks until req.step is applied, `deadline` passes (DEADLINE_EXCEEDED) or Shutdown()
  // (UNAVAILABLE). FAILED_PRECONDITION when this shard has fewer than req.num_pushes of the
  // rank's pushes for the step (it restarted): the client re-sends them and retries.
  absl::Status StepBarrier(const StepBarrierRequest& req, absl::Time deadline,
                           StepBarrierResponse* resp);
  void FillStatus(StatusResponse* resp) const;

  // A consistent copy (sync: between steps; async: each row/block consistent).
  ShardState Snapshot() const;
  // Replaces tables and version with a checkpoint's. INVALID_ARGUMENT when it belongs to another
  // shard layout or its data does not match its table declarations.
  absl::Status Restore(const ShardState& state);

  // A trainer process (re)started (see JoinRequest). Fills version and aborted.
  absl::Status Join(const JoinRequest& req, JoinResponse* resp);
  // The state to write as the trainers' checkpoint of `step` (see CheckpointRequest).
  absl::StatusOr<ShardState> SnapshotAtStep(uint64_t step);
  // Rolls back to the checkpoint of `step` (see RestoreRequest); `load(step)` reads it (called
  // with the step lock held, only when the shard is not already at `step`; never for step 0).
  absl::Status RestoreToStep(const RestoreRequest& req,
                             const std::function<absl::StatusOr<ShardState>(uint64_t)>& load,
                             RestoreResponse* resp);
  bool cut_mode() const;

  // ---- Resharding (see the top of this file) ----
  absl::Status BeginReshard(const ReshardBeginRequest& req, ReshardBeginResponse* resp);
  absl::StatusOr<OutgoingReshard> PrepareOutgoing(uint64_t epoch);
  absl::Status ReceiveReshard(const ReshardData& data);
  absl::Status CommitReshard(const ReshardCommitRequest& req, ReshardCommitResponse* resp);
  // `aborted` (optional): whether a reshard to req.epoch was in progress and is now undone.
  absl::Status AbortReshard(const ReshardAbortRequest& req, bool* aborted = nullptr);
  Placement placement() const;

  // Wakes every StepBarrier waiter with UNAVAILABLE; later barriers fail at once.
  void Shutdown();

  // Called (outside locks) whenever version() advances.
  void SetVersionListener(std::function<void(uint64_t)> listener);

  uint64_t version() const;
  uint64_t steps_lost() const;
  uint64_t restored_version() const;
  const ShardOptions& options() const { return options_; }
  uint32_t num_trainers() const { return num_trainers_.load(); }

 private:
  struct TableEntry {
    TableConfig config;
    std::unique_ptr<SparseTable> sparse;
    std::unique_ptr<DenseTable> dense;
  };
  struct Staged {  // one sender's chunks during a reshard
    std::map<uint32_t, ReshardData> chunks;
    int64_t last_seq = -1;
  };
  struct ReshardState {
    Placement next;
    std::map<uint32_t, std::string> endpoints;
    std::vector<uint32_t> senders;  // the old layout's shards but this one
    std::map<uint32_t, Staged> received;
    uint32_t num_trainers = 0;  // the new trainer count (0: unchanged)
  };
  struct PendingTable {
    absl::flat_hash_map<uint64_t, uint32_t> index;  // sparse key (or dense block) -> slot
    std::vector<uint64_t> keys;
    std::vector<float> grads;       // slot-major, row/block width floats per slot
    std::vector<uint32_t> offsets;  // dense: start of each slot in grads
  };
  struct PendingStep {
    absl::flat_hash_map<uint32_t, PendingTable> tables;
    std::vector<absl::flat_hash_set<uint32_t>> seqs;  // per rank
    std::vector<bool> arrived;                        // per rank: StepBarrier called
  };

  // The table `id`, or NOT_FOUND (the client re-registers on NOT_FOUND after a restart).
  absl::StatusOr<TableEntry*> FindTable(uint32_t id, TableConfig::Kind kind) const;
  absl::Status ValidateConfig(const TableConfig& config) const;
  absl::Status ValidateHeader(const PushHeader& header) const;
  // Under mu_: fast-forwards on the first step seen after start-up.
  void NoteFirstStepLocked(uint64_t step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ShardState SnapshotLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Under mu_, sync mode: ABORTED when the trainers must resume from a common checkpoint before
  // `step` (from `rank`, doing `what`) can be accepted.
  absl::Status CheckCutLocked(uint32_t rank, uint64_t step, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Builds table entries from declarations and data (`initial`: fresh, data ignored).
  absl::StatusOr<std::map<uint32_t, std::unique_ptr<TableEntry>>> BuildTables(
      const std::vector<ShardState::Table>& tables, bool initial) const;
  // Under mu_: replaces the tables; the old entries are retired, not freed (FindTable's
  // pointers stay valid for calls in flight).
  void ReplaceTablesLocked(std::map<uint32_t, std::unique_ptr<TableEntry>> tables)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PendingStep& PendingLocked(uint64_t step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Under mu_: applies every pending step whose barrier is complete; returns true if any.
  bool TryApplyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Common push logic; `accumulate` adds the gradients to a pending table (sync), `apply`
  // applies them to the table (async).
  absl::Status Push(const PushHeader& header, uint32_t table_id,
                    const std::function<void(PendingTable&)>& accumulate,
                    const std::function<void()>& apply, PushResponse* resp);
  void NotifyVersion(uint64_t version);
  // The placement for building tables from checkpoints: only fixed (modulo) shards, whose
  // placement never changes, checkpoint (PServer::Start), so no lock is needed.
  const Placement& PlacementUnlocked() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return placement_; }
  // Under serve_mu_ (shared): OK when a data request routed by `epoch` may be served here.
  absl::Status CheckServingLocked(uint64_t epoch, const char* what) const
      ABSL_SHARED_LOCKS_REQUIRED(serve_mu_);
  // Under serve_mu_: the owner of `key` must be this shard.
  absl::Status CheckOwnerLocked(uint64_t key, const TableConfig& config, const char* what) const
      ABSL_SHARED_LOCKS_REQUIRED(serve_mu_);

  const ShardOptions options_;

  // Data requests (pulls, pushes) hold serve_mu_ shared while they run; a reshard's begin and
  // commit hold it exclusively, so they wait for the calls in flight and none runs meanwhile.
  // Lock order: serve_mu_, mu_, reshard_mu_, tables_mu_.
  mutable absl::Mutex serve_mu_;
  Placement placement_ ABSL_GUARDED_BY(serve_mu_);
  // Frozen by a reshard (or joining): written with serve_mu_ and mu_ held, read under either.
  bool frozen_ = false;
  bool left_ ABSL_GUARDED_BY(serve_mu_) = false;  // not in the layout any more
  // W: options_.num_trainers, changed by a reshard's commit (with serve_mu_ and mu_ held).
  std::atomic<uint32_t> num_trainers_;
  mutable absl::Mutex reshard_mu_;
  std::optional<ReshardState> reshard_ ABSL_GUARDED_BY(reshard_mu_);

  mutable absl::Mutex tables_mu_;
  std::map<uint32_t, std::unique_ptr<TableEntry>> tables_ ABSL_GUARDED_BY(tables_mu_);

  mutable absl::Mutex mu_;  // the step protocol
  absl::CondVar applied_cv_;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t steps_lost_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t restored_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool awaiting_first_step_ ABSL_GUARDED_BY(mu_) = true;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<uint64_t> newest_step_ ABSL_GUARDED_BY(mu_);  // per rank
  std::vector<bool> seen_rank_ ABSL_GUARDED_BY(mu_);  // per rank
  std::map<uint64_t, PendingStep> pending_ ABSL_GUARDED_BY(mu_);
  // Async: per rank, the newest step pushed and the seqs seen in it, so that a push the client
  // retried after a timeout is applied once.
  std::vector<uint64_t> async_step_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::flat_hash_set<uint32_t>> async_seqs_ ABSL_GUARDED_BY(mu_);
  uint64_t stale_dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(uint64_t)> listener_ ABSL_GUARDED_BY(mu_);
  // Consistent cut.
  bool cut_mode_ ABSL_GUARDED_BY(mu_) = false;
  bool rejoin_pending_ ABSL_GUARDED_BY(mu_) = false;  // a known rank re-joined
  bool restored_awaiting_ ABSL_GUARDED_BY(mu_) = false;  // restored a cut checkpoint at start-up
  bool restart_loss_noted_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped when the step in flight is aborted
  std::vector<bool> joined_ ABSL_GUARDED_BY(mu_);  // per rank
  std::optional<uint64_t> async_restored_step_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<TableEntry>> retired_tables_ ABSL_GUARDED_BY(tables_mu_);
};

}  // namespace tandem::pserver
