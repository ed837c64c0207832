#include "serve/batcher.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/metrics.h"

namespace tandem::serve {

Batcher::Batcher(const BatcherOptions& options) : options_(options) {
  TANDEM_CHECK_GE(options_.max_batch_size, 1);
  auto& r = metrics::Registry::Default();
  batch_size_ = r.AddHistogram("tandem_serve_batch_size", "Examples per batch run by a worker.", {},
                               metrics::ExponentialBuckets(1, 2, 13))
                    .Get();
  queue_seconds_ = r.AddHistogram("tandem_serve_queue_seconds",
                                  "Time a request waited in the batching queue.", {},
                                  metrics::ExponentialBuckets(1e-5, 2, 18))
                       .Get();
  const int workers = std::max(1, options_.workers);
  {
    absl::MutexLock lock(&mu_);
    busy_.assign(static_cast<size_t>(workers), false);
  }
  slots_.resize(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i)
    threads_.emplace_back([this, i] { WorkerLoop(i); });
}

Batcher::~Batcher() { Stop(); }

void Batcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  absl::MutexLock lock(&mu_);
  for (Pending* p : queue_) {
    p->result.status = absl::UnavailableError("the server is stopping");
    p->done = true;
  }
  queue_.clear();
  queued_examples_ = 0;
}

BatchResult Batcher::Predict(std::shared_ptr<const ServedModel> model, std::vector<Example> examples) {
  Pending p{.model = std::move(model), .examples = std::move(examples), .enqueued = absl::Now()};
  int slot = -1;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return {.status = absl::UnavailableError("the server is stopping")};
    if (queued_examples_ + p.examples.size() > options_.max_queued_examples)
      return {.status = absl::ResourceExhaustedError(absl::StrCat(
                  "overloaded: ", queued_examples_, " examples queued (at most ",
                  options_.max_queued_examples, "); retry later"))};
    // It would start at once: run it here, on a free worker slot (the header says why).
    const bool starts_now =
        queue_.empty() && (options_.max_queue_delay <= absl::ZeroDuration() ||
                           p.examples.size() >= static_cast<size_t>(options_.max_batch_size));
    if (starts_now && options_.threads_per_worker <= 1) {
      for (size_t i = 0; i < busy_.size() && slot < 0; ++i)
        if (!busy_[i]) slot = static_cast<int>(i);
    }
    if (slot < 0) {
      queue_.push_back(&p);
      queued_examples_ += p.examples.size();
      mu_.Await(absl::Condition(&p.done));
      return std::move(p.result);
    }
    busy_[slot] = true;
  }
  omp_set_num_threads(1);  // this thread's OpenMP setting: one compute thread, as a worker's
  RunBatch(slot, {&p}, p.enqueued);
  absl::MutexLock lock(&mu_);
  busy_[slot] = false;  // a worker thread waiting for its slot may now take queued requests
  return std::move(p.result);
}

void Batcher::RunBatch(int slot, const std::vector<Pending*>& batch, absl::Time start) {
  Slot& s = slots_[static_cast<size_t>(slot)];
  s.examples.clear();
  for (Pending* p : batch) {
    queue_seconds_->Observe(absl::ToDoubleSeconds(start - p->enqueued));
    for (const Example& e : p->examples) s.examples.push_back(&e);
  }
  batch_size_->Observe(static_cast<double>(s.examples.size()));
  const ServedModel& model = *batch.front()->model;
  absl::Status st = model.worker(slot % model.num_workers()).Run(s.examples, &s.outputs);
  const int64_t per = model.signature().output_size;
  size_t offset = 0;
  for (Pending* p : batch) {
    p->result.status = st;
    p->result.model = p->model;
    if (st.ok()) {
      const size_t count = p->examples.size() * static_cast<size_t>(per);
      p->result.outputs.assign(s.outputs.begin() + offset, s.outputs.begin() + offset + count);
      offset += count;
    }
  }
}

bool Batcher::BatchReady() const {
  if (stopping_ || queue_.empty()) return stopping_;
  // Full: the requests at the front of one model version fill a batch.
  size_t n = 0;
  const ServedModel* model = queue_.front()->model.get();
  for (const Pending* p : queue_) {
    if (p->model.get() != model) return true;  // a version boundary ends the batch
    n += p->examples.size();
    if (n >= static_cast<size_t>(options_.max_batch_size)) return true;
  }
  return false;
}

void Batcher::WorkerLoop(int index) {
  omp_set_num_threads(std::max(1, options_.threads_per_worker));
  std::vector<Pending*> batch;
  while (true) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      // Queued requests, and this worker's slot not taken by a caller running one inline.
      auto ready = [this, index]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || (!queue_.empty() && !busy_[static_cast<size_t>(index)]);
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      // Wait for a full batch, at most until the oldest request has waited max_queue_delay.
      const absl::Time deadline = queue_.front()->enqueued + options_.max_queue_delay;
      mu_.AwaitWithDeadline(absl::Condition(this, &Batcher::BatchReady), deadline);
      if (stopping_) return;
      if (queue_.empty() || busy_[static_cast<size_t>(index)]) continue;  // taken meanwhile
      const ServedModel* model = queue_.front()->model.get();
      size_t n = 0;
      while (!queue_.empty() && queue_.front()->model.get() == model) {
        Pending* p = queue_.front();
        if (!batch.empty() && n + p->examples.size() > static_cast<size_t>(options_.max_batch_size)) break;
        batch.push_back(p);
        n += p->examples.size();
        queue_.pop_front();
      }
      queued_examples_ -= n;
      busy_[static_cast<size_t>(index)] = true;
    }
    RunBatch(index, batch, absl::Now());
    absl::MutexLock lock(&mu_);
    busy_[static_cast<size_t>(index)] = false;
    for (Pending* p : batch) p->done = true;
  }
}

}  // namespace tandem::serve
