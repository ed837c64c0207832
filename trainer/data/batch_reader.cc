#include "trainer/data/batch_reader.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/check.h"
#include "common/metrics.h"
#include "trainer/data/data_metrics.h"
#include "trainer/data/length_buckets.h"

namespace tandem::trainer::data {
namespace {

// SplitMix64 (Steele, Lea, Flood 2014): a fixed, portable 64-bit generator; good enough for
// shuffling and identical on every platform.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) without modulo bias (Lemire 2019). REQUIRES: n > 0.
  uint64_t Below(uint64_t n) {
    __uint128_t m = static_cast<__uint128_t>(Next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = -n % n;
      while (low < threshold) {
        m = static_cast<__uint128_t>(Next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

 private:
  uint64_t state_;
};

}  // namespace

ReaderOptions TrainReaderOptions(const DataConfig& config, int rank, int world_size) {
  return {.batch_size = config.batch_size,
          .rank = rank,
          .world_size = world_size,
          .shuffle = config.shuffle,
          .seed = config.seed,
          .prefetch = config.prefetch,
          .name = "train",
          .bucket_by_length = config.bucket_by_length,
          .batch_tokens = config.batch_tokens};
}

ReaderOptions TestReaderOptions(const DataConfig& config, int rank, int world_size) {
  ReaderOptions o = TrainReaderOptions(config, rank, world_size);
  o.shuffle = false;
  o.name = "test";
  return o;
}

namespace {

ReaderOptions Resolve(const Dataset* dataset, ReaderOptions o) {
  TANDEM_CHECK(dataset != nullptr);
  if (o.batch_tokens > 0) o.batch_size = BatchSizeForTokens(*dataset, o.batch_tokens);
  return o;
}

}  // namespace

BatchReader::BatchReader(std::shared_ptr<const Dataset> dataset, ReaderOptions options)
    : dataset_(std::move(dataset)), options_(Resolve(dataset_.get(), std::move(options))) {
  TANDEM_CHECK_GT(options_.batch_size, 0);
  TANDEM_CHECK_GT(options_.world_size, 0);
  TANDEM_CHECK(options_.rank >= 0 && options_.rank < options_.world_size)
      << "rank " << options_.rank << " of " << options_.world_size;
  TANDEM_CHECK_GE(options_.prefetch, 0);
  TANDEM_CHECK(options_.global_batch == 0 || options_.global_batch >= options_.world_size)
      << "global batch " << options_.global_batch << " over " << options_.world_size << " ranks";
  TANDEM_CHECK_GE(options_.start_offset, 0);
  const DataMetrics& m = DataMetrics::For(options_.name);
  examples_read_ = m.examples_read;
  wait_seconds_ = m.wait_seconds;
  queue_depth_ = m.queue_depth;
  const int pool_size = options_.prefetch + 1;
  for (int i = 0; i < pool_size; ++i) {
    pool_.push_back(std::make_unique<Batch>());
    pool_.back()->Allocate(dataset_->layout(), options_.global_batch > 0
                                                   ? (options_.global_batch + options_.world_size - 1) /
                                                         options_.world_size
                                                   : options_.batch_size);
    free_.push_back(pool_.back().get());
  }
  if (options_.prefetch > 0) producer_ = std::thread([this] { ProducerLoop(); });
}

BatchReader::~BatchReader() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  producer_cv_.SignalAll();
  consumer_cv_.SignalAll();
  if (producer_.joinable()) producer_.join();
}

namespace {

// Examples [floor(r * g / w), floor((r + 1) * g / w)) of a global batch of g go to rank r.
int64_t SliceBegin(int64_t g, int r, int w) { return g * r / w; }

}  // namespace

int64_t BatchReader::ShardSize(int rank) const {
  const int64_t w = options_.world_size;
  if (options_.global_batch > 0) {
    const int64_t remaining = std::max<int64_t>(0, dataset_->size() - options_.start_offset);
    const int64_t full = remaining / options_.global_batch;
    const int64_t last = remaining % options_.global_batch;
    return full * BatchSize(rank) + SliceBegin(last, rank + 1, static_cast<int>(w)) -
           SliceBegin(last, rank, static_cast<int>(w));
  }
  const int64_t n = dataset_->size();
  return n / w + (rank < n % w ? 1 : 0);
}

int64_t BatchReader::BatchSize(int rank) const {
  if (options_.global_batch == 0) return options_.batch_size;
  return SliceBegin(options_.global_batch, rank + 1, options_.world_size) -
         SliceBegin(options_.global_batch, rank, options_.world_size);
}

int64_t BatchReader::SliceSize(int rank, int64_t index) const {
  const int64_t remaining = std::max<int64_t>(0, dataset_->size() - options_.start_offset);
  const int64_t g = std::clamp<int64_t>(remaining - index * options_.global_batch, 0,
                                        options_.global_batch);
  return SliceBegin(g, rank + 1, options_.world_size) - SliceBegin(g, rank, options_.world_size);
}

int64_t BatchReader::GlobalBatchSize(int64_t index) const {
  if (options_.global_batch > 0) {
    const int64_t remaining = std::max<int64_t>(0, dataset_->size() - options_.start_offset);
    return std::clamp<int64_t>(remaining - index * options_.global_batch, 0, options_.global_batch);
  }
  int64_t n = 0;
  for (int r = 0; r < options_.world_size; ++r)
    n += std::clamp<int64_t>(ShardSize(r) - index * options_.batch_size, 0, options_.batch_size);
  return n;
}

int64_t BatchReader::OrderPosition(int64_t index) const {
  if (options_.global_batch == 0) return index * options_.batch_size;
  // Every batch before the last is full.
  const int64_t full = std::max<int64_t>(0, dataset_->size() - options_.start_offset) /
                       options_.global_batch;
  const int64_t k = std::min(index, full);
  return k * BatchSize(options_.rank) + (index > full ? SliceSize(options_.rank, full) : 0);
}

int64_t BatchReader::BatchesPerPass() const {
  if (options_.global_batch > 0) return MaxBatchesPerPass();
  return (ShardSize() + options_.batch_size - 1) / options_.batch_size;
}

int64_t BatchReader::MaxBatchesPerPass() const {
  if (options_.global_batch > 0) {
    const int64_t remaining = std::max<int64_t>(0, dataset_->size() - options_.start_offset);
    return (remaining + options_.global_batch - 1) / options_.global_batch;
  }
  return (ShardSize(0) + options_.batch_size - 1) / options_.batch_size;
}

std::vector<int64_t> BatchReader::ShardOrder(int64_t num_examples, const ReaderOptions& options,
                                             int64_t pass) {
  std::vector<int64_t> order;
  const int64_t w = options.world_size;
  // Elastic dealing: this rank's slice of each global batch, in pass order.
  auto deal = [&](auto position_to_example) {
    const int64_t g = options.global_batch;
    for (int64_t begin = options.start_offset; begin < num_examples; begin += g) {
      const int64_t size = std::min(g, num_examples - begin);
      for (int64_t i = begin + SliceBegin(size, options.rank, static_cast<int>(w));
           i < begin + SliceBegin(size, options.rank + 1, static_cast<int>(w)); ++i)
        order.push_back(position_to_example(i));
    }
  };
  if (!options.shuffle) {
    if (options.global_batch > 0) {
      deal([](int64_t i) { return i; });
      return order;
    }
    for (int64_t i = options.rank; i < num_examples; i += w) order.push_back(i);
    return order;
  }
  std::vector<int64_t> all(static_cast<size_t>(num_examples));
  std::iota(all.begin(), all.end(), 0);
  // Mix seed and pass so that consecutive seeds or passes give unrelated streams.
  SplitMix64 mixer(options.seed ^ 0x5DEECE66Dull);
  const uint64_t stream = mixer.Next() ^ (static_cast<uint64_t>(pass) * 0xD1B54A32D192ED03ull);
  SplitMix64 rng(SplitMix64(stream).Next());
  for (int64_t i = num_examples - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(i) + 1));
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(j)]);
  }
  order.reserve(static_cast<size_t>(num_examples / w + 1));
  if (options.global_batch > 0) {
    deal([&](int64_t i) { return all[static_cast<size_t>(i)]; });
    return order;
  }
  for (int64_t i = options.rank; i < num_examples; i += w) order.push_back(all[static_cast<size_t>(i)]);
  return order;
}

std::vector<int64_t> BatchReader::PassOrder(int64_t pass) const {
  std::vector<int64_t> order = ShardOrder(dataset_->size(), options_, pass);
  if (options_.bucket_by_length) {
    const uint64_t seed = options_.seed ^ (static_cast<uint64_t>(pass) << 20) ^
                          static_cast<uint64_t>(options_.rank);
    BucketByLength(*dataset_, options_.batch_size, seed, options_.shuffle, &order);
  }
  return order;
}

void BatchReader::Fill(const std::vector<int64_t>& order, size_t* position, int64_t pass,
                       int64_t index, Batch* batch) const {
  batch->Clear();
  batch->pass = pass;
  batch->index = index;
  const int64_t limit =
      options_.global_batch > 0 ? SliceSize(options_.rank, index) : options_.batch_size;
  const size_t end = std::min(order.size(), *position + static_cast<size_t>(limit));
  for (; *position < end; ++*position) {
    const int64_t example = order[*position];
    batch->example_ids[static_cast<size_t>(batch->size)] = example;
    dataset_->Append(example, batch);
  }
  examples_read_->Inc(batch->size);
}

void BatchReader::StartPass(int64_t pass, int64_t first_batch) {
  TANDEM_CHECK_GE(first_batch, 0);
  if (options_.prefetch == 0) {
    absl::MutexLock lock(&mu_);  // uncontended: no producer thread
    started_ = true;
    sync_order_ = PassOrder(pass);
    sync_position_ = static_cast<size_t>(std::min<int64_t>(
        OrderPosition(first_batch), static_cast<int64_t>(sync_order_.size())));
    sync_index_ = first_batch;
    pass_ = pass;
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
    ++generation_;
    pass_ = pass;
    first_batch_ = first_batch;
    // Batches of the abandoned pass go back to the pool; the producer notices the new generation
    // before it publishes the batch it may be filling now.
    for (Batch* b : ready_) free_.push_back(b);
    ready_.clear();
    if (held_ != nullptr) free_.push_back(held_);
    held_ = nullptr;
    UpdateDepthLocked();
  }
  producer_cv_.SignalAll();
}

const Batch* BatchReader::Next() {
  if (options_.prefetch == 0) {
    absl::MutexLock lock(&mu_);  // uncontended: no producer thread
    TANDEM_CHECK(started_) << "BatchReader::Next() before StartPass()";
    if (sync_position_ >= sync_order_.size()) return nullptr;
    Batch* b = pool_[0].get();
    Fill(sync_order_, &sync_position_, pass_, sync_index_++, b);
    return b;
  }
  absl::MutexLock lock(&mu_);
  TANDEM_CHECK(started_) << "BatchReader::Next() before StartPass()";
  if (held_ != nullptr) {
    free_.push_back(held_);
    held_ = nullptr;
    producer_cv_.Signal();
  }
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_ || !ready_.empty() || done_generation_ == generation_;
  };
  if (!ready()) {
    const auto start = std::chrono::steady_clock::now();
    while (!ready()) consumer_cv_.Wait(&mu_);
    wait_seconds_->Inc(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  if (ready_.empty()) return nullptr;  // end of pass (or stopping)
  held_ = ready_.front();
  ready_.pop_front();
  UpdateDepthLocked();
  return held_;
}

void BatchReader::UpdateDepthLocked() { queue_depth_->Set(static_cast<double>(ready_.size())); }

void BatchReader::ProducerLoop() {
  uint64_t my_generation = 0;
  absl::MutexLock lock(&mu_);
  while (true) {
    while (!stop_ && generation_ == my_generation) producer_cv_.Wait(&mu_);
    if (stop_) return;
    my_generation = generation_;
    const int64_t pass = pass_;
    const int64_t first_batch = first_batch_;
    mu_.Unlock();
    const std::vector<int64_t> order = PassOrder(pass);
    mu_.Lock();
    size_t position = static_cast<size_t>(
        std::min<int64_t>(OrderPosition(first_batch), static_cast<int64_t>(order.size())));
    int64_t index = first_batch;
    while (position < order.size()) {
      while (!stop_ && generation_ == my_generation && free_.empty()) producer_cv_.Wait(&mu_);
      if (stop_) return;
      if (generation_ != my_generation) break;
      Batch* b = free_.back();
      free_.pop_back();
      mu_.Unlock();
      Fill(order, &position, pass, index++, b);
      mu_.Lock();
      if (generation_ != my_generation) {
        free_.push_back(b);
        break;
      }
      ready_.push_back(b);
      UpdateDepthLocked();
      consumer_cv_.Signal();
    }
    if (generation_ == my_generation) {
      done_generation_ = my_generation;
      consumer_cv_.Signal();
    }
  }
}

}  // namespace tandem::trainer::data
