// Training progress for TrainingJob status, scraped by the operator from the rank-0 trainer's
// Prometheus endpoint (http://<pod IP>:<TANDEM_METRICS_PORT>/metrics).
//
// Reconcile never waits on the network: it calls ProgressSource::Observe(key, endpoint), which
// only records that the job's trainer should be scraped and returns the last good sample from a
// cache. ProgressProber's own threads scrape every observed job at most once per `interval_s`
// (each with a `timeout_s` deadline) and call `on_update(key)` when the numbers changed, so the
// controller queues the job and the next Reconcile copies them into status.progress.
// An unreachable, slow or garbage endpoint is counted in tandem_operator_progress_scrapes_total
// {result} and leaves the last known sample in place.
//
//   ProgressProber prober({.interval_s = 12, .on_update = [&](const std::string& k) { q.Add(k); }});
//   prober.Start();
//   std::optional<ProgressSample> s = prober.Observe("ns/job", {"job", "10.0.0.7", 9100});
//   ...
//   prober.Forget("ns/job");   // job finished, suspended or deleted
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tandem::controller {

// The trainer's numbers, from its tandem_trainer_* metrics.
struct TrainerMetrics {
  int64_t steps = 0;            // tandem_trainer_steps_total
  int64_t pass = 0;             // tandem_trainer_pass (0-based: the pass in progress)
  double loss = 0;              // tandem_trainer_loss (0 when absent or not finite)
  double accuracy = 0;          // tandem_trainer_accuracy (training accuracy, last interval)
  double test_accuracy = 0;     // tandem_trainer_test_accuracy (after the last pass; 0 before)
  double test_loss = 0;         // tandem_trainer_test_loss
  std::optional<double> test_auc;  // tandem_trainer_test_auc (absent unless binary or ranking)
  int64_t test_pass = 0;        // tandem_trainer_test_pass: passes done at that evaluation (0: none)
  double examples_per_sec = 0;  // tandem_trainer_examples_per_second (this trainer's)
  bool operator==(const TrainerMetrics&) const = default;
};

// Extracts TrainerMetrics from a /metrics body. Samples labelled job=<job> are preferred; an
// endpoint that exports no tandem_trainer_steps_total or tandem_trainer_pass (for any job, or
// only for another job) is an error, as is a malformed body.
absl::StatusOr<TrainerMetrics> TrainerMetricsFromText(absl::string_view text, const std::string& job);

struct ProgressSample {
  TrainerMetrics metrics;
  double changed_at = 0;  // wall-clock seconds when these numbers were first seen
};

struct TrainerEndpoint {
  std::string job;  // the job name, matched against the metrics' job label
  std::string host;  // pod IP
  int port = 0;
  bool operator==(const TrainerEndpoint&) const = default;
};

// What the reconciler needs; tests substitute a fake.
class ProgressSource {
 public:
  virtual ~ProgressSource() = default;
  // Asks for `key`'s trainer to be scraped and returns the last good sample, if any. Never
  // blocks on the network. Thread-safe.
  virtual std::optional<ProgressSample> Observe(const std::string& key, const TrainerEndpoint& endpoint) = 0;
  // Stops scraping `key` and drops its cached sample. Thread-safe.
  virtual void Forget(const std::string& key) = 0;
};

struct ProgressProberOptions {
  double interval_s = 12;  // the least time between two scrapes of one job
  double timeout_s = 2;    // one scrape, connect to last byte
  int threads = 2;         // concurrent scrapes (a dead endpoint holds one for timeout_s)
  size_t max_body_bytes = 4 << 20;
  std::string path = "/metrics";
  // Called (from a prober thread, no lock held) when a job's numbers changed.
  std::function<void(const std::string& key)> on_update{};
  // Wall clock for ProgressSample::changed_at; injectable for tests.
  std::function<double()> now{};
};

class ProgressProber : public ProgressSource {
 public:
  explicit ProgressProber(ProgressProberOptions options);
  ~ProgressProber() override;  // Stop()s

  void Start();
  void Stop();

  std::optional<ProgressSample> Observe(const std::string& key, const TrainerEndpoint& endpoint) override;
  void Forget(const std::string& key) override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    TrainerEndpoint endpoint;
    Clock::time_point next_due;
    uint64_t flight = 0;      // non-zero while a thread scrapes it (that thread's token)
    uint64_t generation = 0;  // bumped when the endpoint changes or the entry is re-created
    std::optional<ProgressSample> last;
  };
  void Loop();
  double WallNow() const;

  const ProgressProberOptions options_;
  absl::Mutex mu_;
  absl::CondVar cv_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_flight_ ABSL_GUARDED_BY(mu_) = 1;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace tandem::controller
