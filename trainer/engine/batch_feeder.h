// Copies a data::Batch into a Network's input blobs, following each model input's source, and
// checks once that the data's layout matches what the model expects (shapes, sequence length,
// fields). Reuses the blobs' memory: no allocation per step once the largest batch was seen.
#pragma once

#include "absl/status/status.h"
#include "trainer/data/batch.h"
#include "trainer/model/network.h"

namespace tandem::trainer {

class BatchFeeder {
 public:
  // Checks the model's inputs against the dataset layout. `what`: "train" or "test", for errors.
  static absl::Status CheckLayout(const ModelGraph& graph, const data::BatchLayout& layout,
                                  const std::string& what);
  // Fills the inputs of `net` with `batch` (calls SetBatchSize). InvalidArgument for a class
  // label outside what the cost layer accepts.
  absl::Status Feed(const data::Batch& batch, Network& net);

 private:
  int64_t label_limit_ = -1;  // exclusive upper bound for labels (-1: not yet computed)
};

}  // namespace tandem::trainer
