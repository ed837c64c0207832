// The trainer's sparse path: embedding tables that live only on the parameter-server shards.
//
//   TANDEM_ASSIGN_OR_RETURN(auto sp, SparsePath::Connect(pservers, token, rank,
//                                                        PServerSyncOptionsFrom(job.spec.sync)));
//   TrainOptions options;  options.sparse = sp.get();
//   TANDEM_ASSIGN_OR_RETURN(TrainResult r, Train(spec, options));
//
// With a SparsePath, Train() builds its Network with remote sparse parameters: an embedding
// table is never allocated in the trainer. Per step:
//   1. BeforeForward: the batch's ids (already fed into the network) are de-duplicated; the
//      unique rows of every table are pulled from their owner shards (all shards in parallel, by
//      PServerClient), or taken from the prefetch started during the previous step; the table
//      parameter becomes a [unique rows, dim] block and the ids are rewritten to row slots, so
//      the embedding layer runs unchanged. Dense parameters are pulled too when they live on
//      the pserver (spec.sync.dense: pserver).
//   2. forward / backward (the next batch's rows are prefetched meanwhile in async mode).
//   3. AfterBackward: one gradient row per unique id is pushed (and the dense gradients, in the
//      hybrid mode); sync mode then waits at the step barrier of every shard and starts the
//      prefetch of the next batch's rows right after it, while the engine finishes the step.
// Every RPC carries the job token (TANDEM_JOB_TOKEN of the worker contract; (PServerClient sends it; a wrong one fails the first
// registration with a message naming the shard and the token problem).
//
// Tables: sparse table k is the k-th trainable sparse parameter in network order (its name is
// "<layer>.<param>", which salts placement); hybrid dense parameters are one DENSE table each.
// Tables are registered with the layer's initializer (as a pserver Initializer) and the job's
// optimizer (the pserver runs it; the learning-rate schedule must be constant).
// Not thread-safe: the training thread drives it.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/training_job.h"
#include "pserver/client/pserver_client.h"
#include "trainer/data/batch.h"
#include "trainer/data/batch_reader.h"
#include "trainer/model/network.h"
#include "trainer/optim/optimizer_config.h"

namespace tandem::trainer {

// spec.sync as far as the pserver is concerned.
struct PServerSyncOptions {
  bool dense_on_pserver = false;  // spec.sync.dense == pserver
  bool async = false;             // spec.sync.mode == async
  int staleness = 4;              // spec.sync.staleness (enforced by the pservers)
};
// From the validated api type (the one parse of spec.sync).
PServerSyncOptions PServerSyncOptionsFrom(const api::SyncSpec& sync);

// How long the trainer waits on a shard (pserver::PServerClientOptions; unset: its defaults,
// 30 s per attempt and 120 s of retries). The trainer's main reads them from the tuning variables
// TANDEM_PSERVER_RPC_TIMEOUT_S and TANDEM_PSERVER_RECONNECT_TIMEOUT_S.
struct PServerTimeouts {
  std::optional<absl::Duration> rpc;
  std::optional<absl::Duration> reconnect;
};

// Elastic jobs (docs/elastic.md): the shards' ids (worker slots) in endpoint order, the epoch of
// that layout, and the largest shard count (dense block sizes never follow the live count).
// Empty ids: a fixed job's modulo placement.
struct PServerLayout {
  std::vector<uint32_t> ids;
  uint64_t epoch = 0;
  uint32_t block_size_shards = 0;
};

// True when the model has a trainable sparse parameter (an embedding table).
bool HasSparseTables(const ModelGraph& graph);

class SparsePath {
 public:
  // Connects to the shards at `endpoints` (host:port, shard order) as trainer `rank`, over
  // mutual TLS with `tls` (when set); `token` is required without TLS and sent when given.
  static absl::StatusOr<std::unique_ptr<SparsePath>> Connect(const std::vector<std::string>& endpoints,
                                                             const std::string& token,
                                                             const tls::TlsFiles& tls, int rank,
                                                             const PServerSyncOptions& sync,
                                                             const PServerTimeouts& timeouts = {},
                                                             const PServerLayout& layout = {});
  SparsePath(std::unique_ptr<pserver::PServerClient> client, const PServerSyncOptions& sync,
             uint64_t seed_salt = 0);
  ~SparsePath();

  bool dense_on_pserver() const { return sync_.dense_on_pserver; }
  pserver::PServerClient& client() { return *client_; }
  // The options the current client was connected with (endpoints, layout); Connect only.
  const pserver::PServerClientOptions& client_options() const { return options_; }

  // Elastic jobs, at a step boundary after the shards were resharded to `layout` (every rank
  // paused): drops the rows pulled or prefetched (their batch is not the next one any more: the
  // readers are rebuilt), connects a client of the new layout and declares the tables on it
  // (the shards hold them already: declarations are idempotent). REQUIRES: made by Connect.
  absl::Status Relayout(const std::vector<std::string>& endpoints, const PServerLayout& layout);
  // The pserver initializer of parameter `p` held as table `table_id` in a job started with
  // `seed` (its ParamInit as a distribution; values depend only on (seed, table, row, column)).
  static pserver::Initializer InitializerFor(const ParamDesc& p, uint64_t seed, uint32_t table_id);
  static constexpr uint32_t kFirstSparseTable = 1;   // sparse table k: id 1 + k
  static constexpr uint32_t kFirstDenseTable = 1000; // hybrid dense parameter k: id 1000 + k

  // Registers the tables of `net` (built with remote sparse parameters) on every shard and marks
  // hybrid dense parameters remote. Errors name the table and the shard (a wrong token is
  // UNAUTHENTICATED). REQUIRES: net outlives this object.
  absl::Status Attach(Network& net, const OptimizerConfig& optimizer, uint64_t seed);

  // Consistent checkpoints with the shards (docs/pserver.md "Consistent cut").
  // Announces this trainer process to every shard; once per process, before meeting the other
  // trainers (a re-joining rank aborts the step the others are waiting in). Attach calls it
  // when nobody did.
  absl::Status Join();
  // Steps whose checkpoint every shard holds, ascending.
  absl::StatusOr<std::vector<uint64_t>> ShardCheckpointSteps();
  // Every shard checkpoints its state of `step` (call between steps, before this trainer writes
  // its own checkpoint of `step`, which then completes the cut).
  absl::Status CheckpointShards(int64_t step);
  // Every shard rolls back to `step` (0: initial); returns the most steps a shard rolled back.
  absl::StatusOr<uint64_t> RestoreShards(int64_t step);

  // Reading one batch ahead, so the next batch's rows can be prefetched: returns the current
  // batch (valid until the next call), nullptr at the end of the pass.
  void StartPass(data::BatchReader& reader, int64_t pass);
  const data::Batch* NextBatch();

  // Training step `step` on the batch just fed into the network (see the file comment).
  absl::Status BeforeForward(uint64_t step);
  absl::Status AfterBackward(uint64_t step);
  // A data-parallel rank with no batch left: takes part in the step barrier only.
  absl::Status EmptyStep(uint64_t step);
  // Evaluation: pulls the rows of the batch just fed (no gradient follows).
  absl::Status PrepareEval();

  // Totals for the summary and tests.
  uint64_t rows_pulled() const { return rows_pulled_; }
  uint64_t rows_pushed() const { return rows_pushed_; }
  uint64_t ids_seen() const { return ids_seen_; }

 private:
  struct Table {
    uint32_t id = 0;
    int param = -1;  // index into net->params()
    int blob = -1;   // the ids blob feeding it
    int input = -1;  // model input index of that blob (-1: not a model input)
    int64_t vocab = 0;
    uint32_t dim = 0;
  };
  struct IdsBlob {
    int blob = -1;
    int input = -1;
    int64_t vocab = 0;
    std::vector<int> tables;  // indices into tables_
  };
  // One batch's keys and pulled rows (double-buffered for prefetching).
  struct Rows {
    std::vector<std::vector<uint64_t>> keys;    // per ids blob
    std::vector<pserver::SparseBatch> batches;  // per table
    std::vector<std::future<absl::Status>> pending;
    bool valid = false;  // rows of the batch they were pulled for are in `batches`
  };
  absl::Status KeysOfBatch(const data::Batch& b, std::vector<std::vector<uint64_t>>* keys) const;
  absl::Status Pull(Rows& rows, bool prefetch);
  absl::Status Wait(Rows& rows);
  absl::Status Install(const Rows& rows);
  absl::Status PullDense();
  absl::Status StartPrefetch();

  std::unique_ptr<pserver::PServerClient> client_;
  pserver::PServerClientOptions options_;      // set by Connect
  std::vector<pserver::TableConfig> configs_;  // every table declared, for Relayout
  PServerSyncOptions sync_;
  Network* net_ = nullptr;
  std::vector<Table> tables_;
  std::vector<IdsBlob> blobs_;
  std::vector<int> dense_params_;        // hybrid: params held by the pserver
  std::vector<uint32_t> dense_table_ids_;
  std::vector<float> scratch_;           // dense gradients, per table
  std::vector<float> push_rows_;         // a table's gradient in slot order, for PushSparse
  Rows rows_[2], eval_;
  int cur_ = 0;
  // Lookahead reading.
  data::BatchReader* reader_ = nullptr;
  data::Batch batch_buf_[2];
  bool have_[2] = {false, false};
  int batch_cur_ = 0;
  bool started_ = false;
  bool joined_ = false;
  uint64_t rows_pulled_ = 0, rows_pushed_ = 0, ids_seen_ = 0;
};

}  // namespace tandem::trainer
