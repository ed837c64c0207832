#include "cli/local/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"

namespace tandem::local {

std::optional<nlohmann::json> ParseEventLine(const std::string& line) {
  if (line.rfind(kEventPrefix, 0) != 0) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(line.substr(sizeof(kEventPrefix) - 1), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("event") || !j["event"].is_string()) {
    return std::nullopt;
  }
  return j;
}

namespace {

template <typename T>
T Get(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return fallback;
  return it->get<T>();
}

std::string Duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--";
  int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return absl::StrFormat("%dh%02dm", t / 3600, (t % 3600) / 60);
  if (t >= 60) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%ds", t);
}

int TerminalWidth(std::FILE* f) {
  winsize w{};
  if (::ioctl(::fileno(f), TIOCGWINSZ, &w) == 0 && w.ws_col > 20) return w.ws_col;
  return 100;
}

}  // namespace

void ProgressTracker::OnEvent(int worker, const nlohmann::json& event) {
  const std::string type = event.value("event", "");
  if (type == "progress") {
    WorkerProgress& w = workers_[worker];
    w.seen = true;
    w.pass = Get<int>(event, "pass", w.pass);
    w.passes = Get<int>(event, "passes", w.passes);
    w.step = Get<int64_t>(event, "step", w.step);
    w.steps_per_pass = Get<int64_t>(event, "stepsPerPass", w.steps_per_pass);
    w.loss = Get<double>(event, "loss", w.loss);
    w.accuracy = Get<double>(event, "accuracy", w.accuracy);
    w.examples_per_sec = Get<double>(event, "examplesPerSec", w.examples_per_sec);
  } else if (type == "resumed") {
    ++resumes_;
    lost_steps_ += Get<int64_t>(event, "lostSteps", 0);
  } else if (type == "summary") {
    if (summary_.is_null() || worker == 0) summary_ = event;
  }
}

WorkerProgress ProgressTracker::Aggregate() const {
  WorkerProgress a;
  int n = 0;
  bool first = true;
  for (const auto& [id, w] : workers_) {
    if (!w.seen) continue;
    ++n;
    a.seen = true;
    // Position: the slowest worker (a synchronous job moves at its pace).
    int64_t pos = static_cast<int64_t>(w.pass) * std::max<int64_t>(w.steps_per_pass, 1) + w.step;
    int64_t apos = static_cast<int64_t>(a.pass) * std::max<int64_t>(a.steps_per_pass, 1) + a.step;
    if (first || pos < apos) {
      a.pass = w.pass;
      a.step = w.step;
      a.steps_per_pass = w.steps_per_pass;
    }
    a.passes = std::max(a.passes, w.passes);
    a.loss += w.loss;
    a.accuracy += w.accuracy;
    a.examples_per_sec += w.examples_per_sec;
    first = false;
  }
  if (n > 0) {
    a.loss /= n;
    a.accuracy /= n;
  }
  return a;
}

ProgressDisplay::ProgressDisplay(std::FILE* out, bool tty, double plain_interval_s)
    : out_(out),
      tty_(tty),
      plain_interval_s_(plain_interval_s),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::hours(1)) {}

std::string ProgressDisplay::Render(const WorkerProgress& p, double elapsed_s, int width,
                                    bool bar) {
  if (!p.seen) return absl::StrFormat("starting... %s", Duration(elapsed_s));
  if (p.steps_per_pass <= 0) {  // a stream without maxSteps: no end to measure against
    return absl::StrFormat("stream step %d loss %.4f acc %.2f%% %.0f ex/s %s", p.step, p.loss,
                           100 * p.accuracy, p.examples_per_sec, Duration(elapsed_s));
  }
  const double total = static_cast<double>(std::max(p.passes, 1)) *
                       static_cast<double>(std::max<int64_t>(p.steps_per_pass, 1));
  // `pass` is 1-based in events; position counts completed passes plus steps in this one.
  const double done = static_cast<double>(std::max(p.pass - 1, 0)) *
                          static_cast<double>(std::max<int64_t>(p.steps_per_pass, 1)) +
                      static_cast<double>(p.step);
  const double frac = std::clamp(done / total, 0.0, 1.0);
  const double eta = frac > 0 ? elapsed_s * (1 - frac) / frac : NAN;
  std::string stats = absl::StrFormat(
      "pass %d/%d step %d/%d loss %.4f acc %.2f%% %.0f ex/s ETA %s", p.pass, p.passes, p.step,
      p.steps_per_pass, p.loss, 100 * p.accuracy, p.examples_per_sec, Duration(eta));
  if (!bar) return absl::StrFormat("progress %3.0f%% %s", 100 * frac, stats);
  int bar_width = std::clamp(width - static_cast<int>(stats.size()) - 9, 10, 40);
  int filled = static_cast<int>(frac * bar_width + 0.5);
  return absl::StrFormat("[%s%s] %3.0f%% %s", std::string(filled, '#'),
                         std::string(bar_width - filled, '.'), 100 * frac, stats);
}

void ProgressDisplay::Update(const WorkerProgress& p, bool force) {
  last_ = p;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  if (tty_) {
    if (!force && since < 0.2) return;
    int width = TerminalWidth(out_);
    std::string line = Render(p, elapsed, width, true);
    if (static_cast<int>(line.size()) >= width) line.resize(width - 1);
    std::fprintf(out_, "\r\033[K%s", line.c_str());
    bar_visible_ = true;
  } else {
    if (!force && since < plain_interval_s_) return;
    std::fprintf(out_, "%s\n", Render(p, elapsed, 0, false).c_str());
  }
  std::fflush(out_);
  last_draw_ = now;
}

void ProgressDisplay::Log(const std::string& line) {
  if (tty_ && bar_visible_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", line.c_str());
  if (tty_ && bar_visible_) {
    Update(last_, /*force=*/true);
  } else {
    std::fflush(out_);
  }
}

void ProgressDisplay::Finish() {
  if (tty_ && bar_visible_) std::fprintf(out_, "\r\033[K");
  bar_visible_ = false;
  std::fflush(out_);
}

}  // namespace tandem::local
