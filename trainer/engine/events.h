// The machine-readable events a trainer prints for its supervisor (`tandem run`, see
// docs/local-run.md): lines `@tandem {json}` among its log lines, one JSON object with an `event`
// field each:
//   progress  pass (1-based), passes, step (within the pass), stepsPerPass, loss, accuracy,
//             examplesPerSec (this trainer's, over the interval since the last progress event)
//   resumed   step (the checkpoint step training resumed from), lostSteps (steps done before the
//             restart that are trained again)
//   eval      pass (1-based), passes, test_loss, test_accuracy, test_auc (null unless binary or
//             ranking): the test set after every pass (all ranks together); a Sweep's objective
//   stream    step, records, position, lagBytes, lagSeconds, windowRecords, onlineAuc, onlineLoss:
//             a stream's rolling evaluation and lag (docs/streaming.md; every rank)
//   summary   test_accuracy, test_loss, examples_per_sec (all ranks together), wall_s, ...
//
//   EventReporter events(&std::cout);
//   events.OnStep({...});                  // every step; prints progress about once a second
//   events.Emit({{"event", "summary"}, ...});
//
// StepJournal remembers the last step a trainer finished, in a file beside its checkpoints, so
// that the next process of the same trainer knows how many steps a crash cost (kill -9 included:
// the write is a pwrite of 8 bytes, which the page cache keeps when the process dies).
// Not thread-safe: the training thread uses both.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::trainer {

inline constexpr char kEventLinePrefix[] = "@tandem ";

struct StepStats {
  int64_t pass = 0;            // 0-based
  int64_t passes = 0;
  int64_t step_in_pass = 0;    // steps done in this pass, 1-based after the first step
  int64_t steps_per_pass = 0;
  double loss_sum = 0;         // loss * examples of this step
  int64_t examples = 0;
  int64_t correct = 0, scored = 0;
  double seconds = 0;          // time of the step
  // Parts of `seconds` the trainer spent waiting rather than computing: for the next batch, for
  // the all-reduce to finish after backward, for pserver pulls and pushes. The rest is compute.
  double data_seconds = 0, allreduce_seconds = 0, pserver_seconds = 0;
};

class EventReporter {
 public:
  // `out` receives the lines (flushed one by one). A progress event is due `interval` after the
  // previous one, and at the end of every pass.
  explicit EventReporter(std::ostream* out,
                         std::chrono::milliseconds interval = std::chrono::seconds(1));

  // Prints `event` as one `@tandem {json}` line.
  void Emit(const nlohmann::json& event);
  // Accumulates one step; prints a progress event when due.
  void OnStep(const StepStats& s);

 private:
  std::ostream* out_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_;
  double loss_sum_ = 0, seconds_ = 0;
  double data_seconds_ = 0, allreduce_seconds_ = 0, pserver_seconds_ = 0;
  int64_t steps_ = 0, examples_ = 0, correct_ = 0, scored_ = 0;
};

class StepJournal {
 public:
  // The step recorded in `dir`, if any (a missing or unreadable file: nullopt).
  static std::optional<int64_t> Read(const std::string& dir);
  // Opens (creating) the journal in `dir`. An empty `dir` gives a journal that records nothing.
  static absl::StatusOr<StepJournal> Open(const std::string& dir);
  StepJournal() = default;
  StepJournal(StepJournal&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  StepJournal& operator=(StepJournal&& o) noexcept;
  ~StepJournal();

  void Record(int64_t step);

 private:
  int fd_ = -1;
};

}  // namespace tandem::trainer
