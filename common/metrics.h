// Prometheus metrics: counters, gauges and histograms with labels, exposed in the Prometheus text
// exposition format (version 0.0.4) by Registry::Serialize() and served at /metrics by
// MetricsEndpoint (metrics_endpoint.h).
//
//   auto& steps = tandem::metrics::Registry::Default().AddCounter(
//       "tandem_trainer_steps_total", "Training steps completed.", {"job"});
//   tandem::metrics::Counter* c = steps.WithLabels({"mnist"});   // look up once, keep the pointer
//   c->Inc();                                                   // hot path: one atomic add
//
// Thread-safety: everything is thread-safe. Inc/Set/Observe are lock-free atomics; WithLabels
// takes a mutex, so hot paths resolve their label set once and keep the returned pointer, which
// stays valid for the registry's lifetime. Registering the same name twice returns the same
// family when type, help and label names agree, and is a programming error otherwise.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tandem::metrics {

// A monotonically increasing value (requests served, bytes sent).
class Counter {
 public:
  // REQUIRES: v >= 0.
  void Inc(double v = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down (queue depth, loss).
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Inc(double v = 1.0);
  void Dec(double v = 1.0) { Inc(-v); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into cumulative buckets with upper bounds `bounds` (+Inf is implicit).
class Histogram {
 public:
  // REQUIRES: bounds strictly increasing and finite.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts; the last is the +Inf bucket.
  std::vector<uint64_t> BucketCounts() const;
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

// `count` bucket bounds start, start*factor, start*factor^2, ...
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// `count` bucket bounds start, start+width, ...
std::vector<double> LinearBuckets(double start, double width, int count);
// Bounds suited to latencies in seconds, 100 us to ~100 s.
std::vector<double> LatencyBuckets();

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric name with a fixed list of label names; children are created per label-value tuple.
template <typename T>
class Family {
 public:
  // Returns the child for `label_values` (created on first use; stable pointer).
  // REQUIRES: label_values.size() == label_names().size().
  T* WithLabels(const std::vector<std::string>& label_values);
  // Shorthand for a family without labels.
  T* Get() { return WithLabels({}); }
  // Removes a child (for example a job that no longer exists). Pointers to it become invalid.
  void Remove(const std::vector<std::string>& label_values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds);
  void Serialize(MetricType type, std::string* out) const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // histograms only
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
};

// Holds metric families and renders them in the text exposition format.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry, with the standard process_* metrics already registered.
  static Registry& Default();

  // REQUIRES: `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*; label names match [a-zA-Z_][a-zA-Z0-9_]*
  // and do not start with "__"; a histogram's labels do not include "le".
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names,
                                  std::vector<double> bounds);

  // A gauge (or counter) whose value is computed at scrape time by `fn` (queue depth, memory).
  void AddCallback(const std::string& name, const std::string& help, MetricType type,
                   std::function<double()> fn);

  // Every family, sorted by name, in the Prometheus text format.
  std::string Serialize() const;

 private:
  struct Entry;
  Entry& Register(const std::string& name, const std::string& help, MetricType type,
                  const std::vector<std::string>& label_names) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

// Registers process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds and process_start_time_seconds.
void RegisterProcessMetrics(Registry& registry);

// Text-format helpers, exposed for tests.
std::string FormatValue(double v);            // "+Inf", "-Inf", "NaN", or shortest round-trip
std::string EscapeLabelValue(const std::string& v);  // \\, \", \n
std::string EscapeHelp(const std::string& v);        // \\, \n

}  // namespace tandem::metrics
