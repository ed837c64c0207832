#include "cli/run.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/manifest.h"
#include "api/training_job.h"
#include "cli/local/local_run.h"
#include "cli/local/local_serve.h"
#include "common/socket.h"
#include "cli/local/local_sweep.h"

namespace tandem::cli {
namespace {

std::atomic<local::LocalRun*> g_run{nullptr};
std::atomic<local::LocalSweep*> g_sweep{nullptr};

void OnSignal(int) {
  local::LocalRun* run = g_run.load();
  if (run != nullptr) run->Stop();
  local::LocalSweep* sweep = g_sweep.load();
  if (sweep != nullptr) sweep->Stop();
}

// Runs `body` with SIGINT and SIGTERM stopping the run, restoring the old handlers after.
template <typename Body>
auto WithStopSignals(Body body) {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  auto result = body();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

std::string SelfDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().string();
}

std::string FormatValue(const nlohmann::json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.find_first_of(" \t\"=") != std::string::npos) return nlohmann::json(s).dump();
    return s;
  }
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6g", v.get<double>());
    return buf;
  }
  return v.dump();
}

}  // namespace

std::string SummaryLine(const nlohmann::json& summary) {
  std::vector<std::string> parts;
  for (auto it = summary.begin(); it != summary.end(); ++it) {  // nlohmann sorts keys
    if (it.value().is_object() || it.value().is_array()) continue;
    parts.push_back(absl::StrCat(it.key(), "=", FormatValue(it.value())));
  }
  return absl::StrJoin(parts, " ");
}

int RunSweep(const RunFlags& flags, const api::SectionValidators& validators) {
  const std::string& path = flags.job_path;
  auto loaded = api::LoadSweep(path, validators);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n" << path << ": not run" << std::endl;
    return 1;
  }
  if (!flags.placement.empty()) {
    std::cerr << "tandem run: --placement applies to a TrainingJob, not to a Sweep's trials" << std::endl;
    return 1;
  }
  if (flags.workers > 0) {
    std::cerr << "tandem run: --workers applies to a TrainingJob; a Sweep's trials use the template's "
                 "spec.workers.count" << std::endl;
    return 1;
  }
  local::LocalSweepOptions opts;
  opts.manifest_path = path;
  opts.bin_dir = flags.bin_dir.empty() ? SelfDir() : flags.bin_dir;
  opts.run_dir = flags.run_dir;
  opts.tty = ::isatty(STDOUT_FILENO) == 1;
  opts.stop_grace_seconds = flags.grace_seconds;
  opts.validators = validators;
  local::LocalSweep sweep(*loaded, opts);
  g_sweep.store(&sweep);
  auto result = WithStopSignals([&] { return sweep.Run(stdout); });
  g_sweep.store(nullptr);
  if (!result.ok()) {
    std::cerr << "tandem run: " << result.status().message() << std::endl;
    return 1;
  }
  const local::LocalSweepResult& r = *result;
  const api::Sweep& sw = *loaded;
  std::printf("\n");
  std::vector<api::TrialStatus> ranked = r.status.trials;
  const std::string goal = api::ObjectiveGoal(sw.spec.objective);
  std::stable_sort(ranked.begin(), ranked.end(), [&](const api::TrialStatus& a, const api::TrialStatus& b) {
    if (a.objective.has_value() != b.objective.has_value()) return a.objective.has_value();
    return a.objective && api::IsBetter(goal, *a.objective, *b.objective);
  });
  int64_t passes = 0;
  for (const api::TrialStatus& t : r.status.trials)
    if (!t.intermediate.empty()) passes = std::max(passes, t.intermediate.back().pass);
  if (auto p = r.summary.find("passesPerTrial"); p != r.summary.end() && p->is_number_integer()) passes = p->get<int64_t>();
  for (const std::string& line : local::TrialTable(sw, ranked, passes)) std::printf("%s\n", line.c_str());
  const api::TrialCounts& c = r.status.trial_counts;
  std::printf("tandem run: sweep %s %s: %s; %zu trials (%lld succeeded, %lld stopped early, %lld failed), "
              "%lld passes trained, %.1f s, %.1f CPU s; outputs in %s\n",
              sw.metadata.name.c_str(), r.status.phase == api::kSweepSucceeded ? "succeeded" : "failed",
              r.message.c_str(), r.status.trials.size(), static_cast<long long>(c.succeeded),
              static_cast<long long>(c.stopped), static_cast<long long>(c.failed),
              static_cast<long long>(r.passes_trained), r.wall_s, r.cpu_s, r.run_dir.c_str());
  if (r.status.best_trial) {
    const api::BestTrial& b = *r.status.best_trial;
    std::vector<std::string> params;
    for (const auto& [k, v] : b.parameters.items()) params.push_back(absl::StrCat(k, "=", FormatValue(v)));
    std::printf("best: %s %s=%.4f after pass %lld: %s\n", b.name.c_str(), sw.spec.objective.metric.c_str(),
                b.objective, static_cast<long long>(b.pass), absl::StrJoin(params, " ").c_str());
  }
  std::fflush(stdout);
  return r.status.phase == api::kSweepSucceeded ? 0 : 1;
}

int ResizeJob(const std::string& target, int workers, double timeout_s) {
  namespace fs = std::filesystem;
  std::string run_dir = target;
  std::error_code ec;
  if (!fs::is_directory(target, ec)) {
    // A job name: the newest runs/<job>-<time> folder of an elastic run.
    std::string newest;
    for (const auto& e : fs::directory_iterator("runs", ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(target + "-", 0) == 0 && fs::exists(e.path() / local::kMembershipFile) &&
          name > newest)
        newest = name;
    }
    if (newest.empty()) {
      std::cerr << "tandem resize: " << target
                << " is neither a run folder nor the name of an elastic job with a folder in runs/"
                << std::endl;
      return 1;
    }
    run_dir = (fs::path("runs") / newest).string();
  }
  auto answer = local::RequestResize(run_dir, workers, timeout_s);
  if (!answer.ok()) {
    std::cerr << "tandem resize: " << answer.status().message() << std::endl;
    return 1;
  }
  std::printf("tandem resize: %s: %s; the trainers switch at their next step boundary\n",
              run_dir.c_str(), answer->c_str());
  return 0;
}

int RunJob(const RunFlags& flags, const api::SectionValidators& validators) {
  const std::string& path = flags.job_path;
  if (auto kind = api::ManifestKind(path); kind.ok() && *kind == api::kSweepKind) return RunSweep(flags, validators);
  auto loaded = api::LoadTrainingJob(path, validators);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n" << path << ": not run" << std::endl;
    return 1;
  }
  const api::TrainingJob& job = *loaded;

  const local::LocalJob lj = local::LocalJobFor(job, path, flags.workers);

  local::LocalRunOptions opts;
  opts.bin_dir = flags.bin_dir.empty() ? SelfDir() : flags.bin_dir;
  opts.run_dir = flags.run_dir;
  opts.tty = ::isatty(STDOUT_FILENO) == 1;
  opts.verbose = flags.verbose;
  opts.stop_grace_seconds = flags.grace_seconds;
  if (!flags.placement.empty()) {
    auto placement = local::LoadPlacement(flags.placement, lj.workers);
    if (!placement.ok()) {
      std::cerr << "tandem run: --placement: " << placement.status().message() << "\n"
                << path << ": not run" << std::endl;
      return 1;
    }
    opts.placement = *std::move(placement);
  }

  // --serve: tandem-serve beside the job, on the folder the job publishes into.
  local::LocalServe serve;
  if (flags.serve_port >= 0) {
    if (!job.spec.publish.has_value()) {
      std::cerr << "tandem run: --serve needs spec.publish in " << path
                << " (the served models are the ones the job publishes)" << std::endl;
      return 1;
    }
    if (opts.run_dir.empty()) opts.run_dir = local::DefaultRunDir(lj.name);
    int port = flags.serve_port;
    if (port == 0) {
      auto free_port = net::PickFreeLoopbackPorts(1);
      if (!free_port.ok()) {
        std::cerr << "tandem run: --serve: " << free_port.status().message() << std::endl;
        return 1;
      }
      port = (*free_port)[0];
    }
    const local::LocalServeOptions so{.bin_dir = opts.bin_dir, .run_dir = opts.run_dir, .port = port};
    if (absl::Status st = serve.Start(job, so); !st.ok()) {
      std::cerr << "tandem run: --serve: " << st.message() << std::endl;
      return 1;
    }
    std::printf("tandem run: serving the published models of %s on http://127.0.0.1:%d/v1/predict "
                "(log %s/logs/serve.log)\n",
                lj.name.c_str(), port, opts.run_dir.c_str());
    std::fflush(stdout);
  }
  local::LocalRun run(lj, opts);
  g_run.store(&run);
  auto result = WithStopSignals([&] { return run.Run(stdout); });
  g_run.store(nullptr);
  serve.Stop();
  if (!result.ok()) {
    std::cerr << "tandem run: " << result.status().message() << std::endl;
    return 1;
  }
  const auto& r = *result;
  if (r.run.succeeded) {
    std::printf("tandem run: job %s succeeded in %.1f s (%d restart%s, %lld steps lost); outputs in %s\n",
                lj.name.c_str(), r.wall_s, r.run.restarts, r.run.restarts == 1 ? "" : "s",
                static_cast<long long>(r.lost_steps), r.run_dir.c_str());
  } else {
    std::printf("tandem run: job %s %s: %s; logs in %s/logs\n", lj.name.c_str(),
                r.run.interrupted ? "stopped" : "failed", r.run.failure.c_str(), r.run_dir.c_str());
  }
  std::printf("%s\n", SummaryLine(r.summary).c_str());
  std::fflush(stdout);
  return r.run.succeeded ? 0 : 1;
}

}  // namespace tandem::cli
