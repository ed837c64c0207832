// Dynamic batching: requests from any number of connections are queued, and each of N worker
// threads takes the oldest ones, up to `max_batch_size` examples, as one batch for its own
// Network. A batch starts as soon as it is full, or when its oldest request has waited
// `max_queue_delay` (0: at once, with whatever is queued). A request larger than max_batch_size
// runs alone. Requests parsed against different model versions never share a batch: every
// request runs on the version it was validated against, so a hot reload never fails or mixes one.
//
// A request that would start at once anyway (nothing queued before it, and either no queue delay
// or it fills a batch by itself) runs on the calling thread, on a worker slot no thread is using:
// handing it to a worker thread and waking the caller again afterwards costs two thread wake-ups,
// which at batch 1 are a large part of a small model's latency. Worker slots (a model's Worker,
// its Network) are used by one thread at a time either way. Only with threads_per_worker == 1:
// an OpenMP team per calling connection thread is not wanted.
//
//   Batcher batcher({.workers = 4, .max_batch_size = 32, .max_queue_delay = absl::Milliseconds(1)});
//   BatchResult r = batcher.Predict(model, std::move(examples));   // blocks; thread-safe
//
// Thread-safety: Predict is thread-safe; Stop() fails queued requests (UNAVAILABLE) and joins.
#pragma once

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "serve/model.h"
#include "serve/request.h"

namespace tandem::metrics {
class Histogram;
}

namespace tandem::serve {

struct BatcherOptions {
  int workers = 1;  // threads; worker i uses the model's Worker i. REQUIRES: <= model workers
  int threads_per_worker = 1;  // OpenMP threads of each worker thread
  int max_batch_size = 32;     // REQUIRES: >= 1
  absl::Duration max_queue_delay = absl::Milliseconds(1);
  // Examples queued at most; beyond it Predict answers RESOURCE_EXHAUSTED at once (load shedding).
  size_t max_queued_examples = 65536;
};

struct BatchResult {
  absl::Status status;
  std::vector<float> outputs;  // per example signature().output_size floats
  std::shared_ptr<const ServedModel> model;  // the version that answered
};

class Batcher {
 public:
  explicit Batcher(const BatcherOptions& options);
  ~Batcher();  // Stop()s
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Runs `examples` (validated against model->signature()) on `model`; blocks until done.
  BatchResult Predict(std::shared_ptr<const ServedModel> model, std::vector<Example> examples);
  void Stop();

 private:
  struct Pending {
    std::shared_ptr<const ServedModel> model;
    std::vector<Example> examples;
    absl::Time enqueued;
    BatchResult result;
    bool done = false;
  };
  // Scratch of one worker slot, used by whoever holds busy_[slot].
  struct Slot {
    std::vector<const Example*> examples;
    std::vector<float> outputs;
  };
  void WorkerLoop(int index);
  bool BatchReady() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `batch` (one model version) on worker slot `slot` and fills the requests' results.
  // REQUIRES: the caller holds busy_[slot]; not mu_.
  void RunBatch(int slot, const std::vector<Pending*>& batch, absl::Time start);

  const BatcherOptions options_;
  metrics::Histogram* batch_size_;
  metrics::Histogram* queue_seconds_;
  absl::Mutex mu_;
  std::deque<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_examples_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<bool> busy_ ABSL_GUARDED_BY(mu_);  // per worker slot: running a batch
  std::vector<Slot> slots_;
  std::vector<std::thread> threads_;
};

}  // namespace tandem::serve
