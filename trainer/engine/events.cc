#include "trainer/engine/events.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::trainer {
namespace {

constexpr char kJournalFile[] = "last-step";

}  // namespace

EventReporter::EventReporter(std::ostream* out, std::chrono::milliseconds interval)
    : out_(out), interval_(interval), last_(std::chrono::steady_clock::now()) {}

void EventReporter::Emit(const nlohmann::json& event) {
  if (out_ == nullptr) return;
  // One write per line, so that lines from other threads never split an event.
  const std::string line =
      absl::StrCat(kEventLinePrefix,
                   event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "\n");
  *out_ << line << std::flush;
}

void EventReporter::OnStep(const StepStats& s) {
  loss_sum_ += s.loss_sum;
  seconds_ += s.seconds;
  data_seconds_ += s.data_seconds;
  allreduce_seconds_ += s.allreduce_seconds;
  pserver_seconds_ += s.pserver_seconds;
  ++steps_;
  examples_ += s.examples;
  correct_ += s.correct;
  scored_ += s.scored;
  const auto now = std::chrono::steady_clock::now();
  // steps_per_pass 0: a stream with no step limit, no end of pass to report at.
  if (now - last_ < interval_ && (s.steps_per_pass <= 0 || s.step_in_pass < s.steps_per_pass))
    return;
  auto finite = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  Emit({{"event", "progress"},
        {"pass", s.pass + 1},
        {"passes", s.passes},
        {"step", s.step_in_pass},
        {"stepsPerPass", s.steps_per_pass},
        {"loss", finite(examples_ > 0 ? loss_sum_ / examples_ : 0.0)},
        {"accuracy", finite(scored_ > 0 ? static_cast<double>(correct_) / scored_ : 0.0)},
        {"examplesPerSec", finite(seconds_ > 0 ? examples_ / seconds_ : 0.0)},
        // Mean seconds per step over the interval, and its parts (compute is the rest).
        {"stepSeconds", finite(seconds_ / steps_)},
        {"dataSeconds", finite(data_seconds_ / steps_)},
        {"allreduceSeconds", finite(allreduce_seconds_ / steps_)},
        {"pserverSeconds", finite(pserver_seconds_ / steps_)}});
  last_ = now;
  loss_sum_ = seconds_ = 0;
  data_seconds_ = allreduce_seconds_ = pserver_seconds_ = 0;
  steps_ = examples_ = correct_ = scored_ = 0;
}

std::optional<int64_t> StepJournal::Read(const std::string& dir) {
  if (dir.empty()) return std::nullopt;
  const std::string path = absl::StrCat(dir, "/", kJournalFile);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  int64_t step = -1;
  const ssize_t n = ::pread(fd, &step, sizeof(step), 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof(step)) || step < 0) return std::nullopt;
  return step;
}

absl::StatusOr<StepJournal> StepJournal::Open(const std::string& dir) {
  StepJournal j;
  if (dir.empty()) return j;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("checkpoint dir ", dir, ": ", ec.message()));
  const std::string path = absl::StrCat(dir, "/", kJournalFile);
  j.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (j.fd_ < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  return j;
}

StepJournal& StepJournal::operator=(StepJournal&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

StepJournal::~StepJournal() {
  if (fd_ >= 0) ::close(fd_);
}

void StepJournal::Record(int64_t step) {
  if (fd_ < 0) return;
  // Best effort: a failed write only makes the next restart's lost-step count less exact.
  [[maybe_unused]] ssize_t n = ::pwrite(fd_, &step, sizeof(step), 0);
}

}  // namespace tandem::trainer
