// A published model loaded for inference (docs/serving.md): the snapshot's manifest checked
// (common/model_snapshot.h), its model definition built with the trainer's own layers
// (BuildModelGraph, Network: no second implementation of any layer), the dense parameters read
// from dense.ckpt and the embedding tables held once, read-only, shared by every worker:
// a local table from dense.ckpt, or the rows the pservers wrote (shard-<k>.ckpt), where a row
// never trained takes its initial value exactly as the pserver would create it.
//
//   TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<const ServedModel> m,
//                           ServedModel::Load(dir, {.workers = 4}));
//   ServedModel::Worker& w = m->worker(i);        // one per serving thread
//   TANDEM_ASSIGN_OR_RETURN(std::vector<float> out, w.Run(examples));
//
// Each worker owns a Network (forward-only use, ForwardInference) on its own CPU device; the
// dense parameters are held once, by worker 0's Network, and viewed by the others;
// the caller guarantees one thread per worker at a time. The model itself is immutable once
// loaded: hot reload builds a new ServedModel and swaps pointers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "serve/request.h"
#include "trainer/core/device.h"
#include "trainer/model/network.h"

namespace tandem::serve {

struct LoadOptions {
  int workers = 1;           // Networks to build (one per serving thread); REQUIRES: >= 1
  int threads_per_worker = 1;  // compute threads of each worker's device
};

// An embedding table for serving: a row per key, read-only.
class RowTable {
 public:
  virtual ~RowTable() = default;
  virtual int64_t dim() const = 0;
  // Writes the row of `key` (already reduced modulo the vocabulary) to out[0, dim).
  virtual void Row(uint64_t key, float* out) const = 0;
};

class ServedModel {
 public:
  class Worker {
   public:
    // Runs `examples` (validated against signature()) as one batch. Returns, per example,
    // signature().output_size floats (probabilities for classification and binary costs).
    absl::Status Run(const std::vector<const Example*>& examples, std::vector<float>* out);

   private:
    friend class ServedModel;
    const ServedModel* model_ = nullptr;
    std::unique_ptr<trainer::Device> device_;
    std::unique_ptr<trainer::Network> net_;
    // Scratch, reused between batches.
    absl::flat_hash_map<uint64_t, int32_t> slots_;
    std::vector<uint64_t> keys_;
  };

  static absl::StatusOr<std::shared_ptr<ServedModel>> Load(const std::string& version_dir,
                                                           const LoadOptions& options);

  int64_t version() const { return version_; }
  int64_t step() const { return step_; }
  double published_unix_time() const { return unix_time_; }
  const std::string& dir() const { return dir_; }
  const Signature& signature() const { return signature_; }
  const nlohmann::json& manifest() const { return manifest_; }
  int num_workers() const { return static_cast<int>(workers_.size()); }
  Worker& worker(int i) const { return *workers_[i]; }

 private:
  // A sparse parameter served from a shared table; its ids come from model input `input`.
  struct SparseParam {
    int param = -1;  // index into Network::params()
    int input = -1;  // model input index of its ids blob
    int64_t vocab = 0;
    const RowTable* table = nullptr;
  };
  absl::Status Build(const LoadOptions& options);

  std::string dir_;
  nlohmann::json manifest_;
  int64_t version_ = 0, step_ = 0;
  double unix_time_ = 0;
  Signature signature_;
  std::string post_;  // "softmax", "sigmoid" or "" (the cost layer's link function)
  int64_t classes_ = 1;  // the output's last dimension (softmax groups)
  std::vector<std::unique_ptr<RowTable>> tables_;
  std::vector<SparseParam> sparse_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace tandem::serve
