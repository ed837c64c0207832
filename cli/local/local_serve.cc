#include "cli/local/local_serve.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tandem::local {

std::string LocalPublishDirectory(const std::string& run_dir, const api::PublishSpec& publish) {
  return api::PublishDirectory(absl::StrCat(run_dir, "/checkpoints/trainer-0"), publish);
}

std::vector<std::string> LocalServeArgv(const api::TrainingJob& job, const LocalServeOptions& o) {
  std::vector<std::string> argv = {
      o.bin_dir.empty() ? "tandem-serve" : absl::StrCat(o.bin_dir, "/tandem-serve"),
      "--model-dir", LocalPublishDirectory(o.run_dir, *job.spec.publish),
      "--host", "127.0.0.1",
      "--port", std::to_string(o.port),
      "--grpc-port", "-1",
      "--poll-interval-ms", "200"};
  if (job.spec.serving.has_value()) {
    const api::ServingSpec& s = *job.spec.serving;
    for (const auto& [flag, value] :
         {std::pair{"--workers", std::max<int64_t>(1, s.server.threads)},
          std::pair{"--max-batch-size", s.max_batch_size},
          std::pair{"--max-queue-delay-us", s.max_queue_delay_micros}}) {
      argv.push_back(flag);
      argv.push_back(std::to_string(value));
    }
  }
  return argv;
}

LocalServe::~LocalServe() { Stop(); }

absl::Status LocalServe::Start(const api::TrainingJob& job, const LocalServeOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.run_dir + "/logs", ec);
  const std::string log_path = o.run_dir + "/logs/serve.log";
  log_ = std::fopen(log_path.c_str(), "a");
  if (log_ == nullptr) return absl::InternalError(absl::StrCat("cannot open ", log_path));
  ProcessSpec spec{.name = "serve", .argv = LocalServeArgv(job, o)};
  if (absl::Status st = child_.Start(spec); !st.ok()) return st;
  pump_ = std::thread([this] {
    std::vector<std::string> lines;
    bool open = true;
    while (open) {
      lines.clear();
      open = child_.ReadOutput(&lines);
      for (const std::string& l : lines) std::fprintf(log_, "%s\n", l.c_str());
      if (!lines.empty()) std::fflush(log_);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  return absl::OkStatus();
}

void LocalServe::Stop() {
  if (child_.running()) {
    child_.Signal(SIGTERM);
    int code = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!child_.Poll(&code)) {
      if (std::chrono::steady_clock::now() > deadline) child_.Signal(SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (pump_.joinable()) pump_.join();  // ends at the pipe's EOF
  if (log_ != nullptr) std::fclose(log_);
  log_ = nullptr;
}

}  // namespace tandem::local
