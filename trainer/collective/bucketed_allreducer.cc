#include "trainer/collective/bucketed_allreducer.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/check.h"

namespace tandem::collective {

BucketedAllReducer::BucketedAllReducer(Communicator* comm, float* arena,
                                       const BucketOptions& options)
    : comm_(comm), arena_(arena), options_(options) {}

absl::StatusOr<std::unique_ptr<BucketedAllReducer>> BucketedAllReducer::Create(
    Communicator* comm, float* arena, size_t arena_count, std::vector<GradientSlice> slices,
    const BucketOptions& options) {
  if (comm == nullptr) return absl::InvalidArgumentError("bucketed all-reduce: no communicator");
  if (options.bucket_bytes == 0)
    return absl::InvalidArgumentError("bucketed all-reduce: bucket_bytes must be > 0");
  std::unique_ptr<BucketedAllReducer> r(new BucketedAllReducer(comm, arena, options));
  size_t end = 0;
  for (size_t i = 0; i < slices.size(); ++i) {
    const GradientSlice& s = slices[i];
    if (s.offset < end || s.offset + s.count > arena_count || s.offset + s.count < s.offset)
      return absl::InvalidArgumentError(absl::StrCat(
          "bucketed all-reduce: gradient ", i, " [", s.offset, ", ", s.offset + s.count,
          ") overlaps the previous one or leaves the arena of ", arena_count, " floats"));
    end = s.offset + s.count;
    const size_t bytes = s.count * sizeof(float);
    if (r->buckets_.empty() ||
        (r->buckets_.back().count * sizeof(float) + bytes > options.bucket_bytes &&
         r->buckets_.back().num_params > 0)) {
      r->buckets_.push_back(Bucket{s.offset, 0, i, 0});
    }
    Bucket& b = r->buckets_.back();
    b.count = end - b.offset;
    ++b.num_params;
    r->bucket_of_param_.push_back(r->buckets_.size() - 1);
  }
  {
    absl::MutexLock lock(&r->mu_);
    r->marked_.assign(slices.size(), 0);
    r->pending_.resize(r->buckets_.size());
    for (size_t b = 0; b < r->buckets_.size(); ++b) r->pending_[b] = r->buckets_[b].num_params;
  }
  r->worker_ = std::thread([p = r.get()] { p->Worker(); });
  return r;
}

BucketedAllReducer::~BucketedAllReducer() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (worker_.joinable()) worker_.join();
}

void BucketedAllReducer::MarkReady(size_t param) {
  bool start = false;
  {
    absl::MutexLock lock(&mu_);
    TANDEM_CHECK_LT(param, marked_.size());
    TANDEM_CHECK(!marked_[param]) << "gradient " << param << " marked ready twice in one step";
    marked_[param] = 1;
    start = --pending_[bucket_of_param_[param]] == 0;
  }
  if (start) cv_.SignalAll();
}

void BucketedAllReducer::Worker() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    while (!stop_ && !(next_bucket_ < buckets_.size() && pending_[next_bucket_] == 0)) {
      cv_.Wait(&mu_);
    }
    if (stop_) return;
    const Bucket b = buckets_[next_bucket_];
    const bool skip = !status_.ok();  // after a failure, drain the step without the wire
    mu_.Unlock();
    absl::Status s = skip ? absl::OkStatus()
                          : comm_->AllReduce(arena_ + b.offset, b.count, options_.op,
                                             options_.compression);
    mu_.Lock();
    if (!s.ok() && status_.ok()) status_ = s;
    ++next_bucket_;
    cv_.SignalAll();
  }
}

absl::Status BucketedAllReducer::Wait() {
  absl::MutexLock lock(&mu_);
  for (size_t p = 0; p < marked_.size(); ++p) {
    if (marked_[p]) continue;
    marked_[p] = 1;
    --pending_[bucket_of_param_[p]];
  }
  cv_.SignalAll();
  while (next_bucket_ != buckets_.size()) cv_.Wait(&mu_);
  absl::Status s = status_;
  status_ = absl::OkStatus();
  next_bucket_ = 0;
  std::fill(marked_.begin(), marked_.end(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].num_params;
  return s;
}

}  // namespace tandem::collective
