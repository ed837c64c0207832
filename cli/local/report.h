// report.html for a local run: one self-contained page (no network: the data, the script that
// draws the charts as inline SVG, and the styles are all in the file) with the run's key panels:
// loss, accuracy, examples/s per worker, the step-time split per rank (compute, data, all-reduce,
// pserver), and restarts. It is drawn from the run folder's metrics.jsonl (the trainers' progress
// events and the supervisor's events, see local_run.h) and summary.json.
//
//   tandem::local::WriteRunReport("runs/mnist-20261202-140000");  // writes .../report.html
#pragma once

#include <string>

#include "absl/status/status.h"

namespace tandem::local {

// The page for the events in `metrics_jsonl` (one JSON object per line; lines that are not JSON
// objects are skipped) and `summary` (a JSON object's text, or empty). Pure: no file access.
std::string RenderRunReport(const std::string& metrics_jsonl, const std::string& summary,
                            const std::string& title);

// Reads `run_dir`/metrics.jsonl and summary.json and writes `run_dir`/report.html.
// Errors name the file that could not be read or written.
absl::Status WriteRunReport(const std::string& run_dir);

}  // namespace tandem::local
