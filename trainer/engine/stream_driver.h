// What the training loop needs around a StreamReader (trainer/data/stream_reader.h) to train on
// a followed directory with exactly-once updates (docs/streaming.md):
//   - batches: NextBatch() waits up to pollSeconds for a full batch, then hands out what there
//     is (possibly nothing), so a slow stream still trains promptly;
//   - the read position after each batch, which the loop stores in the trainer checkpoint of the
//     step that trained it (CheckpointMetadata), and restores with that checkpoint (Restore);
//   - the ledger (stream.ledger): one line per trained record, `step<TAB>file<TAB>index<TAB>qid`,
//     written before the step's update, cut back to the resumed step on a restart, so that it
//     lists exactly the records whose updates are committed;
//   - the rolling (progressive) evaluation: every record is scored by the forward pass that
//     trains it, before its update (the model has not seen it): AUC and log loss over the newest
//     windowRecords records of every rank;
//   - the stop rules (maxSteps, maxHours counted over restarts) and the tandem_trainer_stream_*
//     metrics.
// Not thread-safe: the training thread drives it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "trainer/data/batch.h"
#include "trainer/data/data_config.h"
#include "trainer/data/stream_reader.h"

namespace tandem::metrics {
class Counter;
class Gauge;
}  // namespace tandem::metrics

namespace tandem::trainer {

struct StreamDriverOptions {
  std::string job = "local";   // the `job` label of the metrics
  int rank = 0;
  int world_size = 1;
  int batch_size = 64;
  bool skip_malformed = false;
  std::string checkpoint_dir;  // where the ledger lives (empty: no ledger even when asked)
};

class StreamDriver {
 public:
  // REQUIRES: source.stream is set.
  StreamDriver(const data::SourceConfig& source, const StreamDriverOptions& options);
  ~StreamDriver();

  const data::StreamConfig& config() const { return config_; }
  const data::BatchLayout& layout() const { return reader_.layout(); }

  // Continues from a checkpoint's metadata (`meta`, nullopt: a fresh start) of step `step`: the
  // read position, the training time so far, and the ledger cut back to `step`. A checkpoint
  // without a stream position (written before the job became a stream) is an error naming it.
  absl::Status Restore(const std::optional<nlohmann::json>& meta, int64_t step);
  // The next batch (valid until the next call): waits up to pollSeconds for a full one, less
  // when `stop` is set or the stream finished. Its size may be anything from 0 to batchSize.
  absl::StatusOr<const data::Batch*> NextBatch(const std::atomic<bool>* stop);
  bool finished() const { return reader_.finished(); }
  // The state to store with a checkpoint: the position after the last committed batch.
  nlohmann::json CheckpointMetadata() const;
  // The last batch handed out is applied (its step's update is done): later checkpoints start
  // after it.
  void Commit() { committed_ = reader_.position(); }
  // Before the update of `step` from the last batch: its ledger lines.
  absl::Status BeforeUpdate(int64_t step);
  // After the forward pass on the last batch: its scores (logits, one per record) enter the
  // rolling window.
  void Score(std::span<const float> logits);

  // Every rank's window combined: `state` is this rank's (AppendEvalState), summed over ranks.
  void AppendEvalState(std::vector<double>* state) const;
  struct Eval {
    double auc = 0, loss = 0;
    int64_t records = 0;  // in all windows together
    bool has_auc = false;
  };
  Eval Evaluate(std::span<const double> summed_state);
  bool EvalDue(int64_t step) const {
    return config_.eval_window > 0 && step % config_.eval_interval_steps == 0;
  }

  // maxSteps reached at `step`, or maxHours of training (over restarts) spent.
  bool StepLimitReached(int64_t step) const {
    return config_.max_steps > 0 && step >= config_.max_steps;
  }
  bool TimeLimitReached() const;
  double TrainingSeconds() const;

  // Refreshes the lag gauges (lists the directory); returns them.
  absl::StatusOr<data::StreamReader::Lag> UpdateLag();
  const data::StreamPosition& position() const { return reader_.position(); }

 private:
  void UpdateCounters();

  data::StreamConfig config_;
  StreamDriverOptions options_;
  data::StreamReader reader_;
  data::Batch batch_;
  std::vector<data::StreamRecordRef> refs_;
  data::StreamPosition committed_;
  int ledger_fd_ = -1;
  std::string ledger_path_;
  // The rolling window: (logit, label), a ring of eval_window entries.
  std::vector<float> window_logits_, window_labels_;
  int64_t window_next_ = 0, window_size_ = 0;
  double seconds_before_ = 0;  // training time of earlier processes (from the checkpoint)
  double start_ = 0;
  // Counted so far (the counters get the differences).
  int64_t counted_records_ = 0, counted_bytes_ = 0, counted_files_ = 0, counted_lost_ = 0;
  int64_t counted_malformed_ = 0;
  struct Metrics;
  std::unique_ptr<Metrics> m_;
};

}  // namespace tandem::trainer
