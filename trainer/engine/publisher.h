// Publishes the model while it trains (spec.publish, docs/serving.md): every `every_steps` steps
// and/or `every_seconds`, and once at the end, rank 0 writes a versioned snapshot that
// tandem-serve loads (common/model_snapshot.h):
//   1. a staging directory <dir>/.tmp-v<N>-<random>;
//   2. dense.ckpt: every parameter the trainer holds ("<layer>.<param>", as in its checkpoints;
//      embedding tables too when they are local);
//   3. with pservers, each shard writes shard-<k>.ckpt into the staging directory on request
//      (PServerClient::PublishAll; in sync mode rank 0 asks between its steps, when no later
//      step can have been applied: the rows are exactly those of the published step);
//   4. MANIFEST.json last (the model definition, version, step, time, each file's CRC-32C), then
//      the rename to v<N>; then all but the newest `keep` versions are removed.
// A failed publish is logged and counted (tandem_trainer_publish_failures_total) and training
// goes on: serving keeps the previous version.
//
//   Publisher publisher({.dir = ckpt + "/published", .every_steps = 500, .keep = 3}, job, seed);
//   options.publisher = &publisher;   // rank 0 only
//
// Not thread-safe: the training thread drives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "trainer/model/network.h"

namespace tandem::metrics {
class Counter;
class Gauge;
class Histogram;
}  // namespace tandem::metrics

namespace tandem::trainer {

class SparsePath;

struct PublishOptions {
  std::string dir;           // the publish root; REQUIRES: not empty
  int64_t every_steps = 0;   // 0: not by steps
  double every_seconds = 0;  // 0: not by time
  int keep = 3;              // REQUIRES: >= 1
  std::string job = "local";  // metrics label and manifest field
};

class Publisher {
 public:
  // `model`: the model definition (ModelDef::ToJson) written into every manifest; `seed`: the
  // job's initialisation seed (recorded).
  Publisher(PublishOptions options, nlohmann::json model, uint64_t seed);

  // Whether `step` (just finished) is due for publication.
  bool Due(int64_t step) const;
  // Publishes `net` (and, with `sparse`, the pservers' tables) as the model of `step`; returns
  // the version. Errors name the file or the shard at fault.
  absl::StatusOr<int64_t> Publish(int64_t step, Network& net, SparsePath* sparse);
  // Due() then Publish(); a failure is logged and counted, never returned.
  void MaybePublish(int64_t step, Network& net, SparsePath* sparse, bool force = false);

  int64_t last_version() const { return last_version_; }
  int64_t last_step() const { return last_step_; }
  const PublishOptions& options() const { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  const PublishOptions options_;
  const nlohmann::json model_;
  const uint64_t seed_;
  Clock::time_point last_time_ = Clock::now();
  int64_t last_step_ = -1;
  int64_t last_version_ = 0;
  metrics::Counter* published_;
  metrics::Counter* failures_;
  metrics::Gauge* version_gauge_;
  metrics::Histogram* seconds_;
};

}  // namespace tandem::trainer
