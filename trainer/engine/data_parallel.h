// Data-parallel training across W trainer processes (one per worker), over the ring all-reduce of
// trainer/collective. Train() (trainer.h) drives it through a handful of calls; this class owns
// everything that crosses process boundaries.
//
//   TANDEM_ASSIGN_OR_RETURN(auto comm, collective::Communicator::Connect(options, peers));
//   auto dp = std::make_unique<DataParallel>(std::move(comm), SyncOptionsFrom(job.spec.sync));
//   TrainOptions options;  options.parallel = dp.get();
//   TANDEM_ASSIGN_OR_RETURN(TrainResult r, Train(spec, options));
//   // a peer that died or stalled: r.status() is a peer failure -> exit 75 (exit_codes.h)
//
// What it guarantees, with every rank running the same spec:
// - Same start: after RestoreCheckpoint() every rank holds rank 0's parameters and optimizer
//   state (SyncState broadcasts them), whether the job starts fresh or resumes.
// - Same resume point: ranks agree on the newest checkpoint step that every rank has (each rank
//   keeps its own checkpoint folder, as pods do); a rank without it falls back with the others.
// - Averaged gradients: each rank trains on its shard (BatchReader with rank/world); the gradient
//   arena is cut into buckets (BucketedAllReducer), each bucket all-reduced as soon as backward
//   has produced its last gradient, overlapping communication with the rest of backward.
//   FinishGradients() waits for every bucket before the optimizer step. Shards that give a rank a
//   short (or no) batch are weighted by their example counts, so a step's gradient is the mean
//   over every example of the global batch: W ranks with batch B follow 1 rank with batch W*B.
// - Same evaluation: each rank evaluates its shard of the test set and SumAcrossRanks() combines
//   the totals, in rank order, so every rank reports bit-identical test metrics.
// Any collective failure (a peer died, stalled, or never came up) is returned as a Status for which
// collective::IsPeerFailure() holds, naming the peer; the communicator then stays failed.
//
// Not thread-safe: the training thread drives it (the reducer has its own worker thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "api/training_job.h"
#include "trainer/collective/bucketed_allreducer.h"
#include "trainer/collective/communicator.h"
#include "trainer/data/batch_reader.h"
#include "trainer/engine/checkpointer.h"
#include "trainer/model/network.h"
#include "trainer/optim/optimizer.h"

namespace tandem::trainer {

// spec.sync, as far as dense data-parallel training is concerned.
struct SyncOptions {
  double bucket_mib = 4;                                           // spec.sync.bucketMiB
  collective::Compression compression = collective::Compression::kNone;  // spec.sync.compression
};

// From the validated api type (the one parse of spec.sync). spec.sync.dense: pserver is
// SparsePath's (sparse_path.h).
SyncOptions SyncOptionsFrom(const api::SyncSpec& sync);

class DataParallel {
 public:
  // Over a connected communicator (the trainer's main connects it to the contract's peers;
  // tests: threads over loopback). Elastic trainers may start with none (nullptr) and connect
  // once they are members (Reconnect); until then rank() is 0 and world_size() 1.
  DataParallel(std::unique_ptr<collective::Communicator> comm, const SyncOptions& sync);
  ~DataParallel();

  int rank() const { return comm_ ? comm_->rank() : 0; }
  int world_size() const { return comm_ ? comm_->world_size() : 1; }
  bool connected() const { return comm_ != nullptr; }
  collective::Communicator& communicator() { return *comm_; }

  // A GPU job's dense all-reduce (NCCL, made by the CUDA plugin: trainer/backend/device_loader.h):
  // `average(data, count)` replaces data[0, count) by its average over the ranks, in place, and
  // waits. Then FinishGradients averages the dense gradients with it after backward (one call
  // per contiguous run of them), instead of the TCP ring's buckets during backward; the ring still
  // carries the broadcasts, the checkpoint agreement and the metrics. Call before Attach.
  void UseDeviceAllReduce(std::function<absl::Status(float* data, int64_t count)> average) {
    device_allreduce_ = std::move(average);
  }
  bool uses_device_allreduce() const { return static_cast<bool>(device_allreduce_); }

  // Installs the gradients-ready hook on `net` and cuts its gradient arena into buckets.
  // `reader` is this rank's training reader: its geometry gives every rank's batch sizes.
  // REQUIRES: `net` and `reader` outlive this object, or Attach is called again, or Detach.
  absl::Status Attach(Network& net, const data::BatchReader& reader);
  // The same for a stream, whose batches have no fixed geometry: each step says its global batch
  // (BeginStreamStep).
  absl::Status AttachStream(Network& net);
  // Lets go of the attached network before it is destroyed: removes the gradient hook and stops
  // the bucket reducer (waiting for an all-reduce in flight), so nothing touches the network's
  // gradients afterwards. Idempotent.
  void Detach();

  // Agrees with the other ranks on a checkpoint to resume from and loads it (`checkpointer` is this
  // rank's; `resume` false: start fresh), then makes every rank's parameters and optimizer state
  // equal to rank 0's. Returns the agreed step, or nullopt when the job starts from scratch (then
  // every rank re-initialises from `seed`, discarding whatever it had loaded).
  // `ranks_may_lack` (elastic jobs): a rank with no checkpoint at all does not send everyone back
  // to scratch; it takes the state of the ranks that agree.
  absl::StatusOr<std::optional<int64_t>> RestoreCheckpoint(Checkpointer* checkpointer, bool resume,
                                                           Network& net, Optimizer& optimizer,
                                                           uint64_t seed,
                                                           bool ranks_may_lack = false);
  // Broadcasts `root`'s parameter arena, optimizer state and update count to every rank.
  absl::Status SyncState(Network& net, Optimizer& optimizer, int root = 0);

  // Elastic jobs (trainer/engine/elastic_world.h): lets go of the attached network, closes the
  // communicator (freeing its port), then continues over the one `connect` returns (the new
  // membership's ring). Attach again before the next step. On error no communicator is left:
  // only Reconnect may be called again.
  absl::Status Reconnect(
      const std::function<absl::StatusOr<std::unique_ptr<collective::Communicator>>()>& connect);
  // Copies `bytes` bytes of `root`'s `data` to every rank.
  absl::Status Broadcast(void* data, size_t bytes, int root);

  // Before this rank's forward pass of the pass's batch `batch_index` (0-based), holding
  // `local_examples` examples (0: this rank's shard has no batch left; it takes an empty step).
  void BeginStep(int64_t batch_index, int64_t local_examples);
  // A stream's step: this rank holds `local_examples` of the `global_examples` all ranks hold.
  void BeginStreamStep(int64_t local_examples, int64_t global_examples);
  // After backward (or instead of it, for an empty step): waits until every gradient bucket is
  // averaged across the ranks. Then the optimizer may step.
  absl::Status FinishGradients();

  // Averages the state layers keep for themselves (parameters with trainable == false, such as
  // batch-norm running statistics, which each rank updates from its own batches), so that every
  // rank evaluates and saves the same model. Called at the end of each pass.
  absl::Status AverageLayerState(Network& net);

  // Element-wise sums over the ranks, added in rank order so every rank gets identical values.
  // REQUIRES: every rank passes the same number of values.
  absl::StatusOr<std::vector<double>> SumAcrossRanks(const std::vector<double>& values);
  // Every rank's `value`, in rank order.
  absl::StatusOr<std::vector<int64_t>> AllGather(int64_t value);

  // The global batch of step `batch_index`: the sum of every rank's batch size.
  int64_t GlobalBatchSize(int64_t batch_index) const;

 private:
  void OnGradientsReady(int64_t offset, int64_t count);
  absl::Status AttachNetwork(Network& net);
  absl::StatusOr<std::vector<double>> GatherDoubles(const std::vector<double>& values);

  std::unique_ptr<collective::Communicator> comm_;
  SyncOptions sync_;
  Network* net_ = nullptr;
  std::unique_ptr<collective::BucketedAllReducer> reducer_;
  std::vector<collective::GradientSlice> slices_;  // dense parameters, arena order
  const data::BatchReader* reader_ = nullptr;      // the attached reader: batch geometry
  float scale_ = 1;                                // this step's gradient weight
  bool empty_step_ = false;
  std::vector<float> layer_state_;                 // AverageLayerState's buffer
  std::function<absl::Status(float*, int64_t)> device_allreduce_;  // UseDeviceAllReduce
  std::vector<collective::GradientSlice> runs_;    // device all-reduce: contiguous dense runs
};

}  // namespace tandem::trainer
