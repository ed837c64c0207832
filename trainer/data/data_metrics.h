// The tandem_trainer_data_* metrics, labelled by `source` ("train", "test").
//   tandem_trainer_data_examples_read_total        examples delivered in batches
//   tandem_trainer_data_bytes_read_total           bytes read from data files (as stored on disk)
//   tandem_trainer_data_malformed_records_total    records skipped as malformed (skipMalformed)
//   tandem_trainer_data_prefetch_queue_depth       batches ready and waiting for the consumer
//   tandem_trainer_data_input_wait_seconds_total   time the consumer waited for a batch
#pragma once

#include <string>

#include "common/metrics.h"

namespace tandem::trainer::data {

struct DataMetrics {
  metrics::Counter* examples_read;
  metrics::Counter* bytes_read;
  metrics::Counter* malformed_skipped;
  metrics::Gauge* queue_depth;
  metrics::Counter* wait_seconds;

  // The children for `source` in the default registry (stable pointers). Thread-safe.
  static const DataMetrics& For(const std::string& source);
};

}  // namespace tandem::trainer::data
