// BatchReader: one rank's batches of a Dataset, pass after pass, prepared by a background thread.
//
//   BatchReader reader(dataset, {.batch_size = 64, .rank = rank, .world_size = world,
//                                .shuffle = true, .seed = 1, .prefetch = 2, .name = "train"});
//   for (int64_t pass = 0; pass < passes; ++pass) {
//     reader.StartPass(pass);
//     while (const Batch* batch = reader.Next()) Step(*batch);   // batch valid until next Next()
//   }
//
// Semantics:
// - Exactly one pass: every example of this rank's shard appears once per pass; the last batch may
//   be short (size < batch_size).
// - Sharding: pass p orders all N examples (a permutation that depends only on seed and p, or the
//   identity without shuffle) and rank r takes positions r, r+W, r+2W, ... So each example is in
//   exactly one shard, shards differ by at most one example, and with shuffle the shards are
//   re-dealt every pass (a global shuffle, as with one process). Every rank needs the whole dataset.
// - The permutation is computed with our own generator (not std::shuffle, whose algorithm differs
//   between standard libraries), so an order is reproducible on every platform.
// - Prefetch: with prefetch > 0 a background thread fills up to `prefetch` batches ahead, from a
//   fixed pool of prefetch+1 batches (no allocation per step). With prefetch == 0 Next() fills the
//   batch on the caller's thread.
// - StartPass() abandons an unfinished pass. Destruction stops the thread promptly, mid-pass too.
//
// Thread-safety: one consumer thread calls StartPass/Next; the reader owns its thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "trainer/data/batch.h"
#include "trainer/data/data_config.h"
#include "trainer/data/dataset.h"

namespace tandem::metrics {
class Counter;
class Gauge;
}  // namespace tandem::metrics

namespace tandem::trainer::data {

struct ReaderOptions {
  int batch_size = 64;   // REQUIRES: > 0
  int rank = 0;          // REQUIRES: 0 <= rank < world_size
  int world_size = 1;
  bool shuffle = true;
  uint64_t seed = 1;
  int prefetch = 2;      // REQUIRES: >= 0
  // Value of the `source` label on the tandem_trainer_data_* metrics.
  std::string name = "train";
  // Similar lengths per batch (length_buckets.h), batch order shuffled when `shuffle`.
  bool bucket_by_length = false;
  // > 0: batch_size becomes BatchSizeForTokens(dataset, batch_tokens) (length_buckets.h).
  int64_t batch_tokens = 0;
  // Elastic dealing (docs/elastic.md), when global_batch > 0: the pass's order from position
  // `start_offset` on is cut into global batches of `global_batch` examples (the last one
  // shorter), and rank r takes the r-th of world_size contiguous slices of each, the slice
  // bounds being floor(i * g / world_size). batch_size is then unused. However often the world
  // changes between global batches, every position of the order is read once per pass.
  // REQUIRES: global_batch >= world_size; 0 <= start_offset.
  int64_t global_batch = 0;
  int64_t start_offset = 0;
};

// Reader options for a job's training data (shuffled with the job's seed, name "train") and for
// its test data (in order, name "test"), for `rank` of `world_size`.
ReaderOptions TrainReaderOptions(const DataConfig& config, int rank, int world_size);
ReaderOptions TestReaderOptions(const DataConfig& config, int rank, int world_size);

class BatchReader {
 public:
  // REQUIRES: dataset != nullptr; options as documented above.
  BatchReader(std::shared_ptr<const Dataset> dataset, ReaderOptions options);
  ~BatchReader();
  BatchReader(const BatchReader&) = delete;
  BatchReader& operator=(const BatchReader&) = delete;

  // Begins pass `pass` (any order; passes may be repeated) at batch `first_batch` of it: resuming
  // from a checkpoint taken after k batches of a pass, StartPass(pass, k) yields exactly the
  // batches an uninterrupted run would have read next, without reading the skipped ones.
  // REQUIRES: first_batch >= 0 (past the end: the pass is empty).
  void StartPass(int64_t pass, int64_t first_batch = 0);
  // The next batch of the current pass, or nullptr when the pass is over. The batch stays valid
  // until the next call to Next() or StartPass(). REQUIRES: StartPass() was called.
  const Batch* Next();

  // Examples of this rank per pass, and its batches per pass.
  int64_t ShardSize() const { return ShardSize(options_.rank); }
  int64_t BatchesPerPass() const;
  // The largest batch count of any rank: ranks that must take the same number of steps (ring
  // all-reduce) run this many, the ranks with fewer taking an empty step at the end.
  int64_t MaxBatchesPerPass() const;
  const Dataset& dataset() const { return *dataset_; }
  const ReaderOptions& options() const { return options_; }

  // Examples of `rank` per pass (elastic: from start_offset on).
  int64_t ShardSize(int rank) const;
  // The size of `rank`'s full batches (elastic: its slice of a full global batch).
  int64_t BatchSize(int rank) const;
  // Examples of every rank together in batch `index` of the pass (the global batch).
  int64_t GlobalBatchSize(int64_t index) const;
  // The dataset positions that `rank` reads in pass `pass`, in order. (What the reader does; used
  // by tests and by anyone who wants the order without reading.)
  static std::vector<int64_t> ShardOrder(int64_t num_examples, const ReaderOptions& options,
                                         int64_t pass);

 private:
  void ProducerLoop();
  // Fills `batch` with the next examples of `order` from `*position`.
  void Fill(const std::vector<int64_t>& order, size_t* position, int64_t pass, int64_t index,
            Batch* batch) const;
  void UpdateDepthLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ShardOrder, then bucketing when the options ask for it.
  std::vector<int64_t> PassOrder(int64_t pass) const;
  // Elastic dealing: examples of `rank` in batch `index`, and where batch `index` starts in this
  // rank's order.
  int64_t SliceSize(int rank, int64_t index) const;
  int64_t OrderPosition(int64_t index) const;

  const std::shared_ptr<const Dataset> dataset_;
  const ReaderOptions options_;
  std::vector<std::unique_ptr<Batch>> pool_;

  metrics::Counter* examples_read_;
  metrics::Counter* wait_seconds_;
  metrics::Gauge* queue_depth_;

  // Synchronous mode (prefetch == 0), consumer thread only.
  std::vector<int64_t> sync_order_;
  size_t sync_position_ = 0;
  int64_t sync_index_ = 0;

  absl::Mutex mu_;
  absl::CondVar producer_cv_;  // new pass, free batch, or stop
  absl::CondVar consumer_cv_;  // ready batch or end of pass
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by StartPass
  uint64_t done_generation_ ABSL_GUARDED_BY(mu_) = 0;  // producer finished this generation
  int64_t pass_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t first_batch_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Batch*> free_ ABSL_GUARDED_BY(mu_);
  std::deque<Batch*> ready_ ABSL_GUARDED_BY(mu_);
  Batch* held_ ABSL_GUARDED_BY(mu_) = nullptr;  // the batch the consumer holds
  std::thread producer_;
};

}  // namespace tandem::trainer::data
