// PServerClient: a trainer's view of the sharded parameter server.
//
//   PServerClientOptions o;
//   o.endpoints = {"10.0.0.1:7070", "10.0.0.2:7070"};   // shard order (WorkerContract::pservers)
//   o.token = contract.token;                           // api/worker_contract.h
//   o.rank = rank;  o.sync = true;
//   TANDEM_ASSIGN_OR_RETURN(auto client, PServerClient::Connect(o));
//   TANDEM_RETURN_IF_ERROR(client->RegisterTable(embedding_config));    // idempotent
//
//   SparseBatch cur, next;                        // reused every step: no per-row allocations
//   TANDEM_RETURN_IF_ERROR(client->PullSparse(kEmb, ids0, &cur));
//   for (step = 0; ...) {
//     auto prefetch = client->PrefetchSparse(kEmb, ids_next, &next);   // async mode: overlap
//     ... forward with cur.rows(), cur.slots() ... backward: grads per unique row ...
//     TANDEM_RETURN_IF_ERROR(client->PushSparse(cur, unique_grads, step));
//     TANDEM_RETURN_IF_ERROR(client->FinishStep(step));   // sync: barrier on every shard
//     TANDEM_RETURN_IF_ERROR(prefetch.get());  std::swap(cur, next);
//   }
//
// A batch's ids are de-duplicated, grouped by owner shard (salted hash, placement.h) and pulled
// from all shards in parallel; pushes send one gradient per unique row. In sync mode the next
// step's pull must follow FinishStep(step) (prefetch after it, or use async mode).
//
// Failures: an unavailable shard (restarting) is retried with exponential backoff for up to
// `reconnect_timeout`; a shard that lost its tables is re-sent their declarations; in sync mode
// a restarted shard is re-sent the step's pushes before the barrier. steps_lost() reports how
// many steps of updates the restarted shards lost (at most one checkpoint interval each).
//
// Thread-safety: all methods are thread-safe; a SparseBatch must not be used by two calls at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/job_certificates.h"
#include "proto/pserver.grpc.pb.h"
#include "pserver/placement.h"

namespace tandem::pserver {

struct PServerClientOptions {
  std::vector<std::string> endpoints;  // host:port of every shard, in shard order. REQUIRES: != {}
  std::string token;                   // the job token sent with every RPC (empty: none)
  // Mutual TLS with the job's certificates (pserver/tls_credentials.h); none: plaintext, and
  // then the token is required. Files re-read every `tls_reload_interval`.
  tls::TlsFiles tls;
  absl::Duration tls_reload_interval = absl::Seconds(60);
  uint32_t rank = 0;                   // this trainer's rank
  bool sync = true;                    // must match the pservers' --mode
  absl::Duration rpc_timeout = absl::Seconds(30);         // one attempt of a pull or push
  absl::Duration barrier_timeout = absl::Minutes(10);     // FinishStep waiting for other trainers
  absl::Duration reconnect_timeout = absl::Seconds(120);  // retrying an unavailable shard
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // Elastic jobs: the shards' ids (worker slots) in endpoint order and the membership epoch of
  // that layout; rows and blocks are placed by rendezvous hashing over the ids (placement.h)
  // and every pull and push names the epoch (a shard of another layout refuses it with
  // FAILED_PRECONDITION: reconnect with the new membership). Empty: modulo placement.
  std::vector<uint32_t> shard_ids;
  uint64_t placement_epoch = 0;
  // Shard count that DefaultBlockSize() is computed for (0: the number of endpoints). Elastic
  // jobs pass their largest shard count, so that the block size does not change with the layout.
  uint32_t block_size_shards = 0;
  // Requests are split so that none exceeds this (the pservers' --max-request-mib is 64).
  size_t max_request_bytes = size_t{16} << 20;
};

// The rows of one batch of ids for one sparse table. Reuse one object per in-flight batch: its
// buffers keep their capacity, so steady-state pulls and pushes allocate nothing per row.
class SparseBatch {
 public:
  uint32_t table_id() const { return table_id_; }
  uint32_t dim() const { return dim_; }
  // The distinct ids of the batch, in first-seen order.
  absl::Span<const uint64_t> unique_keys() const { return unique_; }
  // For each id given to the pull, its index in unique_keys().
  absl::Span<const uint32_t> slots() const { return slots_; }
  // unique_keys().size() x dim() parameters, row i for unique_keys()[i].
  absl::Span<const float> rows() const { return rows_; }
  // Row of the id at position `i` of the pull. REQUIRES: i < slots().size().
  absl::Span<const float> RowOf(size_t i) const {
    return absl::MakeConstSpan(rows_.data() + static_cast<size_t>(slots_[i]) * dim_, dim_);
  }
  // Sums per-id gradients (slots().size() x dim()) into per-unique-row gradients
  // (unique_keys().size() x dim()), the form PushSparse takes.
  void ReduceGradients(absl::Span<const float> per_id, absl::Span<float> per_unique) const;

 private:
  friend class PServerClient;
  uint32_t table_id_ = 0;
  uint32_t dim_ = 0;
  std::vector<uint64_t> unique_;
  std::vector<uint32_t> slots_;
  std::vector<float> rows_;
  absl::flat_hash_map<uint64_t, uint32_t> dedupe_;
  std::vector<std::vector<uint32_t>> by_shard_;  // indices into unique_, per shard
  std::vector<uint64_t> versions_;               // per shard: version the rows were pulled at
  std::vector<PullSparseRequest> requests_;      // per RPC, reused
  std::vector<PullSparseResponse> responses_;
  std::vector<std::pair<uint32_t, size_t>> calls_;  // (shard, first index in by_shard_[shard])
};

class PServerClient {
 public:
  static absl::StatusOr<std::unique_ptr<PServerClient>> Connect(
      const PServerClientOptions& options);
  ~PServerClient();

  // Declares a table on every shard (idempotent; the client re-sends it to a shard that
  // restarted without it). A DENSE table with block_size 0 gets DefaultBlockSize(). The first
  // call also checks that every endpoint is the shard of that index, of as many shards as
  // endpoints, in this client's mode, with this client's rank below its trainer count
  // (FAILED_PRECONDITION otherwise).
  absl::Status RegisterTable(const TableConfig& config);

  // Pulls the rows of `ids` (duplicates allowed) of sparse table `table_id` into `batch`.
  absl::Status PullSparse(uint32_t table_id, absl::Span<const uint64_t> ids, SparseBatch* batch);
  // PullSparse on the client's background thread. `ids` and `batch` must stay valid and untouched
  // until the returned future is ready.
  std::future<absl::Status> PrefetchSparse(uint32_t table_id, absl::Span<const uint64_t> ids,
                                           SparseBatch* batch);
  // Pushes one gradient row per unique key of `batch` (grads: unique_keys().size() x dim()).
  absl::Status PushSparse(const SparseBatch& batch, absl::Span<const float> grads, uint64_t step);

  // The whole dense table `table_id` (out.size() == its size), from all shards in parallel.
  absl::Status PullDense(uint32_t table_id, absl::Span<float> out);
  // REQUIRES: grads.size() == the table's size.
  absl::Status PushDense(uint32_t table_id, absl::Span<const float> grads, uint64_t step);

  // Sync: waits until every shard applied `step` (re-sending this step's pushes to shards that
  // restarted). Async: nothing to wait for; returns OK.
  absl::Status FinishStep(uint64_t step);

  // Largest number of steps any shard reported lost to restarts, and the per-shard counts.
  uint64_t steps_lost() const;
  std::vector<uint64_t> steps_lost_per_shard() const;
  // Rows (dense: blocks) this client moved to/from each shard, and max/min over shards.
  std::vector<uint64_t> rows_per_shard() const;
  double shard_balance() const;

  // ---- Consistent checkpoints (docs/pserver.md "Consistent cut") ----
  // Announces this trainer process to every shard (once per process, before meeting the other
  // trainers). Returns the checkpoint steps every shard holds (the intersection, ascending).
  absl::StatusOr<std::vector<uint64_t>> Join();
  // The checkpoint steps every shard holds (the intersection, ascending).
  absl::StatusOr<std::vector<uint64_t>> CommonCheckpointSteps();
  // Every shard checkpoints its state of `step` (sync: exactly after `step` steps; call it after
  // FinishStep(step - 1) and before pushing `step`), all shards in parallel. ABORTED when a shard
  // restarted or was rolled back (the trainer must resume from its last checkpoint).
  absl::Status CheckpointAll(uint64_t step);
  // Every shard rolls back to its checkpoint of `step` (0: the initial state); idempotent.
  // Returns the largest number of steps a shard rolled back. Clears the retained pushes.
  absl::StatusOr<uint64_t> RestoreAll(uint64_t step);

  // Every shard writes its tables into the snapshot directory named `snapshot` under its publish
  // directory (docs/serving.md), all shards in parallel; returns each shard's file name.
  absl::StatusOr<std::vector<std::string>> PublishAll(const std::string& snapshot, uint64_t step);

  // The shards' status (for tests and tools).
  absl::StatusOr<StatusResponse> ShardStatus(uint32_t shard);
  absl::StatusOr<CheckpointResponse> CheckpointShard(uint32_t shard);

  uint32_t num_shards() const { return static_cast<uint32_t>(options_.endpoints.size()); }
  const Placement& placement() const { return placement_; }

 private:
  struct TableInfo {
    TableConfig config;
    uint64_t salt = 0;
    std::vector<std::vector<uint32_t>> blocks_by_shard;  // dense
    std::vector<uint64_t> dense_versions;                // dense, per shard, async
  };
  using PushRequest = std::variant<PushSparseRequest, PushDenseRequest>;

  explicit PServerClient(const PServerClientOptions& options);
  absl::StatusOr<const TableInfo*> Table(uint32_t id) const;
  std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout) const;
  // Runs `call` against `shard` until it succeeds, fails permanently, or the shard stays
  // unavailable past reconnect_timeout. `first` is the status of an attempt already made.
  absl::Status Retry(uint32_t shard, grpc::Status first,
                     const std::function<grpc::Status(grpc::ClientContext*)>& call,
                     absl::Duration timeout);
  absl::Status ReRegister(uint32_t shard);
  // Once per client: every shard must agree with this client on layout and mode.
  absl::Status CheckLayout();
  // Sends requests[i] to shards[i], all concurrently; a failed call i is handed to
  // on_failure(i, status), whose result counts instead.
  template <typename Req, typename Resp, typename AsyncCall>
  absl::Status FanOut(absl::Span<const uint32_t> shards, absl::Span<const Req> requests,
                      absl::Span<Resp> responses, AsyncCall async_call, absl::Duration timeout,
                      const std::function<absl::Status(size_t, grpc::Status)>& on_failure);
  // Pushes (sparse or dense) to their shards: numbers them within the sync step, sends them
  // concurrently with retries, and keeps them for a replay until FinishStep(step).
  template <typename Req>
  absl::Status PushAll(const std::vector<uint32_t>& shards, std::vector<Req>& requests,
                       uint64_t step);
  absl::Status SendPush(uint32_t shard, const PushRequest& push);
  absl::Status BarrierRetry(uint32_t shard, const StepBarrierRequest& req, grpc::Status first,
                            StepBarrierResponse* resp);
  void NoteRows(uint32_t shard, uint64_t rows);
  void NoteStepsLost(uint32_t shard, uint64_t lost);
  void BackgroundLoop();
  // Runs fn(shard) for every shard concurrently; the first error (in shard order) wins.
  absl::Status ForEachShard(const std::function<absl::Status(uint32_t)>& fn);

  const PServerClientOptions options_;
  const std::string auth_;  // "Bearer <token>"
  const Placement placement_;
  // The stub of `shard` (a new channel replaces one that stayed down: see Reconnect).
  std::shared_ptr<ParameterServer::Stub> Stub(uint32_t shard) const;
  // Replaces the channel of `shard` by a fresh one that connects at once.
  void Reconnect(uint32_t shard);
  std::shared_ptr<grpc::Channel> NewChannel(const std::string& endpoint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(stubs_mu_);

  mutable absl::Mutex stubs_mu_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(stubs_mu_);
  std::vector<std::shared_ptr<ParameterServer::Stub>> stubs_ ABSL_GUARDED_BY(stubs_mu_);
  uint64_t channel_generation_ ABSL_GUARDED_BY(stubs_mu_) = 0;

  mutable absl::Mutex tables_mu_;
  std::map<uint32_t, std::unique_ptr<TableInfo>> tables_ ABSL_GUARDED_BY(tables_mu_);

  absl::Mutex push_mu_;                             // the current sync step's pushes
  uint64_t push_step_ ABSL_GUARDED_BY(push_mu_) = 0;
  std::vector<uint32_t> push_seq_ ABSL_GUARDED_BY(push_mu_);  // per shard
  std::vector<std::deque<PushRequest>> retained_ ABSL_GUARDED_BY(push_mu_);  // per shard

  std::atomic<bool> layout_checked_{false};
  std::unique_ptr<std::atomic<uint64_t>[]> rows_;        // per shard
  std::unique_ptr<std::atomic<uint64_t>[]> steps_lost_;  // per shard

  absl::Mutex bg_mu_;
  absl::CondVar bg_cv_;
  std::deque<std::packaged_task<absl::Status()>> bg_tasks_ ABSL_GUARDED_BY(bg_mu_);
  bool bg_stop_ ABSL_GUARDED_BY(bg_mu_) = false;
  std::thread bg_thread_;
};

}  // namespace tandem::pserver
