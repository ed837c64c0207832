// A Dataset is a fixed, validated, in-memory collection of examples that can copy example i into
// a Batch. Files are parsed and checked completely when the dataset is loaded, so a damaged file
// fails the job before the first step, with the file (and line) at fault, never mid-training.
//
//   TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<const Dataset> train,
//                           LoadDataset(config.train, {.skip_malformed = config.skip_malformed,
//                                                      .name = "train"}));
//   BatchReader reader(train, {...});   // batch_reader.h: sharding, shuffling, prefetch
//
// Datasets are immutable after loading and safe to share between threads and readers (N ranks
// run as N threads in tests share one).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/data/batch.h"
#include "trainer/data/data_config.h"

namespace tandem::trainer::data {

class Dataset {
 public:
  virtual ~Dataset() = default;

  // Number of examples.
  virtual int64_t size() const = 0;
  virtual const BatchLayout& layout() const = 0;
  // Copies example `i` into `batch` at position batch->size and increments batch->size.
  // REQUIRES: 0 <= i < size(); batch allocated for layout(); batch->size < batch->capacity.
  virtual void Append(int64_t i, Batch* batch) const = 0;
  // Tokens in example `i` (sequence datasets: what bucketing by length sorts on; 1 otherwise).
  virtual int64_t ExampleTokens(int64_t i) const { return 1; }
  // Human-readable origin ("idx /path/images.gz + /path/labels.gz, 60000 examples").
  virtual std::string Describe() const = 0;

  // Load statistics.
  int64_t bytes_read() const { return bytes_read_; }
  int64_t malformed_skipped() const { return malformed_skipped_; }

 protected:
  int64_t bytes_read_ = 0;
  int64_t malformed_skipped_ = 0;
};

struct LoadOptions {
  // Skip (and count) malformed records instead of failing (libsvm and token files).
  bool skip_malformed = false;
  // Value of the `source` label on the tandem_trainer_data_* metrics ("train", "test").
  std::string name = "train";
  // IDX files: the decoded cache's folder (trainer/data/decoded_cache.h); empty: no cache.
  std::string decoded_cache_dir;
  // Called with each of the cache's notes (an entry refused or not written); null: dropped.
  std::function<void(const std::string&)> note;
};

// Loads and validates the source. Errors name the file (and line, for text formats); a malformed
// file is InvalidArgument or DataLoss, a missing one NotFound.
absl::StatusOr<std::shared_ptr<const Dataset>> LoadDataset(const SourceConfig& source,
                                                           const LoadOptions& options = {});

}  // namespace tandem::trainer::data
