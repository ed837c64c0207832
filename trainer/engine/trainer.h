// The single-process training loop: data -> network -> optimizer, pass after pass, with an
// evaluation on the held-out set after each pass, progress lines, Prometheus metrics and
// checkpoints.
//
//   TANDEM_ASSIGN_OR_RETURN(TrainerSpec spec, ParseTrainerSpec(job["spec"], {.check_files = true}));
//   TANDEM_ASSIGN_OR_RETURN(TrainResult r, Train(spec, {.job = "fashion-mnist", .log = &std::cout}));
//   std::cout << r.SummaryLine() << "\n";
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/model/trainer_spec.h"

namespace tandem::trainer {

class DataParallel;   // trainer/engine/data_parallel.h
class Device;         // trainer/core/device.h
class ElasticWorld;   // trainer/engine/elastic_world.h
class EventReporter;  // trainer/engine/events.h
class Network;        // trainer/model/network.h
class Publisher;      // trainer/engine/publisher.h
class SparsePath;     // trainer/engine/sparse_path.h

struct TrainOptions {
  std::string job = "local";       // value of the `job` label on metrics
  std::ostream* log = nullptr;     // progress lines; null: quiet
  int threads = -1;                // overrides spec.trainer.threads when >= 0
  int64_t progress_every = 100;    // steps between progress lines
  uint64_t seed = 1;               // parameter initialisation and dropout
  // Checkpoints: a directory (empty: none), saved every `checkpoint_every` steps (0: only at the
  // end of each pass) and at the end; `resume` loads the newest valid one first.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;
  bool resume = false;
  // Stop after this many steps in total (0: run every pass). For tests and resume checks.
  int64_t max_steps = 0;
  // Data-parallel training with the other ranks of `parallel` (each trains on its shard, gradients
  // averaged every step, test metrics combined); null: this process trains alone. Not owned.
  DataParallel* parallel = nullptr;
  // Elastic jobs (spec.elastic): the membership `parallel` follows; at step boundaries the job
  // may grow or shrink (docs/elastic.md). REQUIRES: `parallel` set. Null: fixed size. Not owned.
  ElasticWorld* elastic = nullptr;
  // `@tandem` progress and resumed events for a supervisor; null: none. Not owned.
  EventReporter* events = nullptr;
  // Where the final model is written (empty: nowhere). With `parallel`, only rank 0 writes it.
  std::string output_dir = {};
  // The decoded cache's folder for gzip IDX files (trainer/data/decoded_cache.h): a later process
  // maps the decoded bytes instead of inflating the files again. Empty: no cache.
  std::string decoded_cache_dir = {};
  // Set (by a SIGTERM handler, say): finish the current step, checkpoint, return Cancelled.
  const std::atomic<bool>* stop = nullptr;
  // Embedding tables (and, with spec.sync.dense: pserver, dense parameters) on the parameter
  // server: the network keeps no full table, rows are pulled and pushed per batch. Not owned.
  SparsePath* sparse = nullptr;
  // Publishes the model for serving (spec.publish) when due and at the end; rank 0 only (null:
  // none). Not owned.
  Publisher* publisher = nullptr;
  // The device to train on (the trainer's main opens the CUDA device for a GPU job,
  // api/trainer_device.h); null: a CPU device of `threads` threads. Not owned.
  Device* device = nullptr;
  // Called once the network is built and initialised, before training (tests: set weights).
  std::function<void(Network&)> on_network_created;
  // Copy the dense parameter arena into TrainResult::final_parameters at the end (tests compare
  // it). The trainer binary and the benchmarks turn it off: for a model with a local embedding
  // table the copy is a second table at the very end of the run (371 MB for the CTR benchmark).
  bool keep_final_parameters = true;
  // Pause after this pass (1-based; 0: never; ignored at or past the last pass): checkpoint at the
  // end of it and return with TrainResult::paused_after_pass set. A later run with `resume`
  // continues from there exactly as if it had not paused (the learning-rate schedule spans every
  // pass, the data order is the pass'). ASHA's rungs in `tandem run` sweeps (docs/sweeps.md).
  int64_t stop_after_pass = 0;
};

struct TrainResult {
  double train_loss = 0;       // mean loss over the last pass's training batches
  double test_loss = 0;        // after the last pass (NaN without a test set)
  double test_accuracy = 0;
  // Binary cross-entropy models (rank cost: of left - right score vs the preference): AUC of the
  // test set after the last pass (NaN otherwise), and
  // the best achievable one when the test data knows its true click probabilities (synthetic).
  double test_auc = std::nan("");
  double best_auc = std::nan("");
  // Models with spec.model.decode: exact match and corpus BLEU of the decoded test set after the
  // last pass (NaN otherwise; trainer/engine/decode_evaluator.h).
  double test_exact_match = std::nan("");
  double test_bleu = std::nan("");
  // Sparse path: rows moved (unique rows per step, summed) and ids looked up.
  uint64_t rows_pulled = 0, rows_pushed = 0, ids_seen = 0;
  int64_t steps = 0;
  int64_t examples = 0;        // training examples processed
  double train_seconds = 0;    // time in training steps (data wait included, evaluation not)
  double wall_seconds = 0;     // whole run, loading included
  double examples_per_sec = 0;  // data-parallel: every rank's examples over the slowest's time
  int64_t resumed_step = -1;    // the checkpoint step training resumed from (-1: fresh start)
  // Elastic jobs: membership changes this trainer went through, and whether it left the job (a
  // coordinator took it out: its work is done, the others go on).
  int resizes = 0;
  bool left_job = false;
  int64_t paused_after_pass = 0;  // TrainOptions::stop_after_pass reached: paused there, not done
  int threads = 0;
  int64_t parameters = 0;
  // Copy of the dense parameter arena (tests), when TrainOptions::keep_final_parameters.
  std::vector<float> final_parameters;
  // "test_accuracy=0.9123 test_loss=0.2456 ... wall_s=123.4".
  std::string SummaryLine() const;
};

absl::StatusOr<TrainResult> Train(const TrainerSpec& spec, const TrainOptions& options);

}  // namespace tandem::trainer
