// BucketedAllReducer: overlaps gradient all-reduce with the backward pass of data-parallel
// training, without copying gradients into a fusion buffer.
//
// The trainer allocates every gradient in one contiguous arena, in reverse layer order (the order
// backward produces them). This class cuts the arena into buckets of about `bucket_bytes` at
// parameter boundaries. Backward calls MarkReady(i) when parameter i's gradient is final; when a
// bucket's last gradient is ready, a background thread all-reduces that bucket's arena range in
// place while backward carries on. Wait() (before the optimizer step) returns once every bucket
// is reduced (averaged over ranks by default).
//
//   std::vector<GradientSlice> slices = ...;        // arena offsets, reverse layer order
//   TANDEM_ASSIGN_OR_RETURN(auto reducer, BucketedAllReducer::Create(comm, arena, n, slices, {}));
//   for each step:
//     backward: ... reducer->MarkReady(i) ...
//     TANDEM_RETURN_IF_ERROR(reducer->Wait());       // then optimizer.Step()
//
// Buckets are always all-reduced in bucket order (never in completion order), so every rank
// issues the same collectives in the same order even when backward is multi-threaded.
// Parameters not marked by Wait() (unused in this step) are reduced with whatever the arena holds.
// Between the first MarkReady and Wait, issue no other collective on the same communicator: it
// could interleave with the buckets in a different order on another rank (the ranks would then
// fail with "ranks disagree on the next collective", never silently mix data).
// Thread-safety: MarkReady from any thread; Wait from one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "trainer/collective/communicator.h"

namespace tandem::collective {

// One parameter's gradient inside the arena, in floats.
struct GradientSlice {
  size_t offset = 0;
  size_t count = 0;
};

struct BucketOptions {
  size_t bucket_bytes = 4 << 20;  // target bucket size; a larger parameter gets its own bucket
  ReduceOp op = ReduceOp::kAverage;
  Compression compression = Compression::kNone;
};

class BucketedAllReducer {
 public:
  // REQUIRES: slices in increasing, non-overlapping arena order, inside [0, arena_count).
  // `comm` and `arena` must outlive the reducer.
  static absl::StatusOr<std::unique_ptr<BucketedAllReducer>> Create(
      Communicator* comm, float* arena, size_t arena_count, std::vector<GradientSlice> slices,
      const BucketOptions& options);
  ~BucketedAllReducer();

  // Parameter `param`'s gradient is final for this step. REQUIRES: not yet marked this step.
  void MarkReady(size_t param);
  // Marks the remaining parameters, waits for every bucket, starts the next step. Returns the
  // first failure (the communicator is then failed for good: see exit_codes.h).
  absl::Status Wait();

  struct Bucket {
    size_t offset = 0, count = 0;          // arena range, in floats
    size_t first_param = 0, num_params = 0;
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  BucketedAllReducer(Communicator* comm, float* arena, const BucketOptions& options);
  void Worker();

  Communicator* const comm_;
  float* const arena_;
  const BucketOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_param_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::vector<uint8_t> marked_ ABSL_GUARDED_BY(mu_);  // per parameter
  std::vector<size_t> pending_ ABSL_GUARDED_BY(mu_);  // unmarked parameters per bucket
  size_t next_bucket_ ABSL_GUARDED_BY(mu_) = 0;  // next bucket the worker reduces
  absl::Status status_ ABSL_GUARDED_BY(mu_);  // first failure of this step
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace tandem::collective
