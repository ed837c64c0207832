// `tandem run --serve PORT`: tandem-serve beside a local job, following the models the job
// publishes (spec.publish) into its run folder, as the operator's Deployment does for a job with
// spec.serving. Its output goes to <run dir>/logs/serve.log; it is stopped (SIGTERM) when the
// job ends, and dies with `tandem run` however that ends (cli/local/child_process.h).
#pragma once

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "api/training_job.h"
#include "cli/local/child_process.h"

namespace tandem::local {

struct LocalServeOptions {
  std::string bin_dir;  // where tandem-serve is
  std::string run_dir;  // the job's run folder
  int port = 8080;
};

// The publish directory of a local job in `run_dir` (its trainers' checkpoint folders' sibling).
std::string LocalPublishDirectory(const std::string& run_dir, const api::PublishSpec& publish);

// tandem-serve's command line for `job` (spec.serving's batching settings when present).
std::vector<std::string> LocalServeArgv(const api::TrainingJob& job, const LocalServeOptions& options);

class LocalServe {
 public:
  ~LocalServe();  // Stop()s
  // REQUIRES: job.spec.publish. Starts tandem-serve and its log pump.
  absl::Status Start(const api::TrainingJob& job, const LocalServeOptions& options);
  // SIGTERM, then waits for it (SIGKILL after 10 s).
  void Stop();

 private:
  ChildProcess child_;
  std::FILE* log_ = nullptr;
  std::thread pump_;  // copies the output into the log until EOF; only it reads the pipe
};

}  // namespace tandem::local
