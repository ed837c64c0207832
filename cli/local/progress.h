// Progress of a local run, from the trainers' event lines.
//
// A trainer reports machine-readable events on its output as lines of the form
//   @tandem {"event":"progress","pass":1,"passes":3,"step":420,"stepsPerPass":938,
//            "loss":0.41,"accuracy":0.86,"examplesPerSec":1830}
//   @tandem {"event":"resumed","step":500,"lostSteps":37}
//   @tandem {"event":"summary","test_accuracy":0.91,...}
// (one JSON object per line; unknown events and fields are ignored, so both sides can grow).
// ProgressTracker merges the workers' events; ProgressDisplay renders them as a live bar on a
// terminal, or as a plain line every few seconds otherwise.
#pragma once

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include "nlohmann/json.hpp"

namespace tandem::local {

inline constexpr char kEventPrefix[] = "@tandem ";

// Parses an event line; nullopt when `line` is not one (or is malformed).
std::optional<nlohmann::json> ParseEventLine(const std::string& line);

struct WorkerProgress {
  int pass = 0, passes = 0;
  int64_t step = 0, steps_per_pass = 0;
  double loss = 0, accuracy = 0, examples_per_sec = 0;
  bool seen = false;
};

class ProgressTracker {
 public:
  // Feeds one event from worker `worker`.
  void OnEvent(int worker, const nlohmann::json& event);
  // Worker `worker` left the job (elastic): its position no longer holds the others back.
  void Forget(int worker) { workers_.erase(worker); }

  // Aggregate view: the slowest worker's position, mean loss/accuracy, summed throughput.
  WorkerProgress Aggregate() const;
  int64_t lost_steps() const { return lost_steps_; }
  int resumes() const { return resumes_; }
  // The summary event of worker 0 (or the first one seen), if any.
  const nlohmann::json& summary() const { return summary_; }

 private:
  std::map<int, WorkerProgress> workers_;
  int64_t lost_steps_ = 0;
  int resumes_ = 0;
  nlohmann::json summary_;
};

class ProgressDisplay {
 public:
  // `tty`: draw a live bar on `out` (redrawn in place); else print a plain line every
  // `plain_interval_s` seconds.
  ProgressDisplay(std::FILE* out, bool tty, double plain_interval_s = 10);

  // Redraws (tty) or prints when due (plain). Call often; it rate-limits itself.
  void Update(const WorkerProgress& p, bool force = false);
  // Prints a log line (a process' output or an event) without breaking the bar.
  void Log(const std::string& line);
  // Clears the bar (before the final summary).
  void Finish();

  // The one-line rendering, exposed for tests. `elapsed_s` feeds the ETA.
  static std::string Render(const WorkerProgress& p, double elapsed_s, int width, bool bar);

 private:
  std::FILE* out_;
  bool tty_;
  double plain_interval_s_;
  bool bar_visible_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  WorkerProgress last_;
};

}  // namespace tandem::local
