// `tandem run sweep.yaml`: a Sweep on this machine. Trials are local jobs (LocalRun, each its own
// trainers and pservers through the worker contract), at most `parallelism` at once and no more
// than this machine's cores hold; the search is the operator's (sweep::PlanSweep with the same
// samplers and early stopping), fed by the trainers' per-pass `eval` events.
//
// Run folder (runs/<sweep>-<timestamp>/ by default):
//   sweep.yaml               the manifest as given
//   trials/<trial>.yaml      each trial's TrainingJob (the template with its parameters)
//   trials/<trial>/          each trial's run folder (logs/, metrics.jsonl, summary.json, ...)
//   trials/<trial>/console.log   what `tandem run` would have printed for it
//   sweep-summary.json       every trial (parameters, phase, values per pass), the best, the
//                            sweep's wall and CPU time
#pragma once

#include <atomic>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "api/section_validator.h"
#include "api/sweep.h"
#include "nlohmann/json.hpp"

namespace tandem::local {

struct LocalSweepOptions {
  std::string manifest_path;   // copied into the run folder
  std::string bin_dir;         // where tandem-trainer and tandem-pserver are
  std::string run_dir;         // empty: runs/<sweep>-<timestamp>
  bool tty = false;            // a live table of trials (redrawn in place); else plain lines
  double stop_grace_seconds = 30;
  int cores = 0;               // 0: this machine's (std::thread::hardware_concurrency)
  double poll_seconds = 0.2;   // how often trial events are read and the plan is made
  api::SectionValidators validators;  // every trial's TrainingJob is validated with them
};

struct LocalSweepResult {
  api::SweepStatus status;     // trials, counts, best, phase
  std::string run_dir;
  std::string message;         // why it ended
  double wall_s = 0;
  double cpu_s = 0;            // user + system CPU of every trial process
  int64_t passes_trained = 0;  // passes every trial finished, summed (the budget used)
  int concurrency = 0;         // trials run at once
  int trainer_threads = 0;     // compute threads of each trial's trainer
  nlohmann::json summary;      // what sweep-summary.json holds
};

// How many trials run at once and with how many trainer threads each: at most `parallelism`
// trials, each of `workers` trainers with `threads` threads (0: shared out), within `cores`.
struct TrialSlots {
  int concurrency = 1;
  int trainer_threads = 1;
};
TrialSlots PlanTrialSlots(int64_t parallelism, int64_t workers, int64_t threads, int cores);

// Folds the objective values a trial reported, (pass, value) in order, into its status: each
// raises `*passes_seen` (the passes it trained, which the sweep's passesTrained counts); they are
// recorded into `t` (sweep::RecordValue) unless early stopping has stopped the trial
// (`stopped_early`). Values after that decision are passes trained while the stop reached the
// trial: recorded, they would count it at rungs it was never promoted to (docs/sweeps.md).
// Returns the values that changed `t`.
std::vector<std::pair<int64_t, double>> FoldTrialValues(const std::vector<std::pair<int64_t, double>>& values,
                                                        bool stopped_early, api::TrialStatus* t,
                                                        int64_t* passes_seen);

class LocalSweep {
 public:
  LocalSweep(api::Sweep sweep, LocalSweepOptions options);
  // Runs the sweep to its end (or Stop()). Prints the table or lines and the summary to `out`.
  absl::StatusOr<LocalSweepResult> Run(std::FILE* out);
  // Async-signal-safe: stops every running trial (they checkpoint) and starts no more.
  void Stop() { stop_.store(true); }

 private:
  api::Sweep sweep_;
  LocalSweepOptions options_;
  std::atomic<bool> stop_{false};
};

// The lines of the trials table (header first): trial, phase, pass, objective, parameters.
std::vector<std::string> TrialTable(const api::Sweep& sweep, const std::vector<api::TrialStatus>& trials,
                                    int64_t passes);

}  // namespace tandem::local
