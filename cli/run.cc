#include "cli/run.h"

#include <signal.h>
#include <unistd.h>

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

namespace tandem::cli {
namespace {

std::atomic<local::LocalRun*> g_run{nullptr};

void OnSignal(int) {
  local::LocalRun* run = g_run.load();
  if (run != nullptr) run->Stop();
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

int RunJob(const RunFlags& flags, const api::SectionValidators& validators) {
  const std::string& path = flags.job_path;
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

  local::LocalRun run(lj, opts);
  g_run.store(&run);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  auto result = run.Run(stdout);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  g_run.store(nullptr);
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
