#include "trainer/data/data_metrics.h"

#include <map>

#include "absl/synchronization/mutex.h"

namespace tandem::trainer::data {

const DataMetrics& DataMetrics::For(const std::string& source) {
  static absl::Mutex mu;
  static std::map<std::string, DataMetrics>* cache = new std::map<std::string, DataMetrics>();
  absl::MutexLock lock(&mu);
  auto it = cache->find(source);
  if (it != cache->end()) return it->second;
  auto& r = metrics::Registry::Default();
  DataMetrics m{
      r.AddCounter("tandem_trainer_data_examples_read_total",
                   "Examples delivered to the trainer in batches.", {"source"})
          .WithLabels({source}),
      r.AddCounter("tandem_trainer_data_bytes_read_total",
                   "Bytes read from data files, as stored on disk.", {"source"})
          .WithLabels({source}),
      r.AddCounter("tandem_trainer_data_malformed_records_total",
                   "Malformed records skipped (spec.data.skipMalformed).", {"source"})
          .WithLabels({source}),
      r.AddGauge("tandem_trainer_data_prefetch_queue_depth",
                 "Batches prepared by the prefetch thread and waiting for the trainer.",
                 {"source"})
          .WithLabels({source}),
      r.AddCounter("tandem_trainer_data_input_wait_seconds_total",
                   "Time the trainer waited for its next batch.", {"source"})
          .WithLabels({source}),
  };
  return cache->emplace(source, m).first->second;
}

}  // namespace tandem::trainer::data
