// `tandem run JOB.yaml`: validates the manifest with the api/ code the operator uses, then runs
// the job on this machine (cli/local/local_run.h) and prints the summary line.
#pragma once

#include <string>

#include "api/section_validator.h"
#include "nlohmann/json.hpp"

namespace tandem::cli {

struct RunFlags {
  std::string job_path;
  std::string run_dir;        // empty: runs/<job>-<timestamp>
  std::string bin_dir;        // empty: the folder of the running `tandem` binary
  double grace_seconds = 30;  // SIGTERM -> SIGKILL on stop
  bool verbose = false;       // stream every process line even on a terminal
  int workers = 0;            // > 0: override spec.workers.count
  int serve_port = -1;        // >= 0: tandem-serve beside the job on this port (0: a free one)
  std::string placement;      // a placement file (cli/local/placement.h); empty: all here
};

// Returns the process exit code: 0 on success, 1 when the job failed or the manifest is invalid.
// Installs SIGINT/SIGTERM handlers for the duration of the run. A manifest holding a Sweep runs
// the sweep (RunSweep).
int RunJob(const RunFlags& flags, const api::SectionValidators& validators);

// `tandem run sweep.yaml`: the Sweep's trials as local jobs (cli/local/local_sweep.h), then the
// trials ranked by objective and the best. 0 when the sweep succeeded.
int RunSweep(const RunFlags& flags, const api::SectionValidators& validators);

// `tandem resize RUN_DIR|JOB N`: asks a running elastic job (spec.elastic) to go to N workers.
// JOB names the newest run folder runs/JOB-* of an elastic job. Prints the run's answer; returns
// 0 when it accepted, 1 otherwise (the message says why: bounds, not elastic, not running).
int ResizeJob(const std::string& target, int workers, double timeout_s);

// The final `key=value` summary line (sorted keys; strings with spaces are quoted).
std::string SummaryLine(const nlohmann::json& summary);

}  // namespace tandem::cli
