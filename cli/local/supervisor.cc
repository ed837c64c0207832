#include "cli/local/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::local {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

struct Supervisor::Slot {
  SupervisedProcess proc;
  ChildProcess child;
  bool done = false;                 // exited 0 (trainer) or stopped at the end (pserver)
  bool restart_pending = false;
  bool stopped = false;              // StopProcess: its exit is expected, not a failure
  Clock::time_point restart_at;
  Clock::time_point started_at;      // the last Start()
};

Supervisor::Supervisor(std::vector<SupervisedProcess> processes, SupervisorOptions options,
                       SupervisorCallbacks callbacks)
    : options_(std::move(options)), callbacks_(std::move(callbacks)) {
  for (auto& p : processes) {
    auto slot = std::make_unique<Slot>();
    slot->proc = std::move(p);
    slots_.push_back(std::move(slot));
  }
  // Pservers first: trainers connect to them.
  std::stable_sort(slots_.begin(), slots_.end(), [](const auto& a, const auto& b) {
    return a->proc.role == Role::kPServer && b->proc.role != Role::kPServer;
  });
  if (::pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
}

Supervisor::~Supervisor() {
  if (stop_pipe_[0] >= 0) ::close(stop_pipe_[0]);
  if (stop_pipe_[1] >= 0) ::close(stop_pipe_[1]);
}

void Supervisor::RequestStop() {
  stop_requests_.fetch_add(1);
  if (stop_pipe_[1] >= 0) {
    char c = 's';
    (void)!::write(stop_pipe_[1], &c, 1);
  }
}

double Supervisor::LiveCpuSeconds() const {
  double sum = 0;
  for (const auto& s : slots_) sum += s->child.LiveCpuSeconds();
  return sum;
}

double Supervisor::ReapedCpuSeconds() const {
  double sum = 0;
  for (const auto& s : slots_) sum += s->child.cpu_seconds();
  return sum;
}

void Supervisor::Event(const std::string& e) {
  if (callbacks_.on_event) callbacks_.on_event(e);
}

void Supervisor::Drain(Slot& slot) {
  std::vector<std::string> lines;
  slot.child.ReadOutput(&lines);
  if (callbacks_.on_line) {
    for (const auto& l : lines) callbacks_.on_line(slot.proc, l);
  }
}

void Supervisor::StopAll(RunResult* result, bool kill_now) {
  for (auto& s : slots_) {
    s->restart_pending = false;
    if (s->child.running()) s->child.Signal(kill_now ? SIGKILL : SIGTERM);
  }
  const Clock::time_point start = Clock::now();
  bool killed = kill_now;
  for (;;) {
    bool any = false;
    for (auto& s : slots_) {
      Drain(*s);
      int code;
      if (s->child.Poll(&code)) {
        Drain(*s);
        result->last_exit_codes[s->proc.spec.name] = code;
      }
      any |= s->child.running();
    }
    if (!any) return;
    if (!killed && (SecondsSince(start) > options_.stop_grace_seconds ||
                    stop_requests_.load() > 1)) {
      Event(absl::StrFormat("processes still running after %.0f s; sending SIGKILL",
                            SecondsSince(start)));
      for (auto& s : slots_) s->child.Signal(SIGKILL);
      killed = true;
    }
    ::usleep(20000);
  }
}

std::string Supervisor::PeerFailureExcuse(const Slot& slot) const {
  const std::string& name = slot.proc.spec.name;
  for (const auto& [other, when] : last_failure_) {
    if (other == name) continue;
    const double ago = SecondsSince(when);
    if (ago <= options_.peer_failure_window_seconds) {
      return absl::StrFormat("%s failed %.1f s before", other, ago);
    }
  }
  const double ran = SecondsSince(slot.started_at);
  if (ran >= options_.settled_seconds) {
    return absl::StrFormat("a peer failed after %.0f s of running", ran);
  }
  return "";
}

absl::Status Supervisor::AddProcess(SupervisedProcess process) {
  auto slot = std::make_unique<Slot>();
  slot->proc = std::move(process);
  absl::Status st = slot->child.Start(slot->proc.spec);
  if (!st.ok()) return st;
  slot->started_at = Clock::now();
  Event(absl::StrCat("started ", slot->proc.spec.name, " (pid ", slot->child.pid(), ")"));
  slots_.push_back(std::move(slot));
  return absl::OkStatus();
}

void Supervisor::StopProcess(const std::string& name, int signal) {
  for (auto& s : slots_) {
    if (s->proc.spec.name != name || s->done) continue;
    s->done = true;
    s->stopped = true;
    s->restart_pending = false;
    if (s->child.running()) s->child.Signal(signal);
    Event(absl::StrCat("stopping ", name));
  }
}

RunResult Supervisor::Run() {
  RunResult result;
  for (auto& s : slots_) {
    absl::Status st = s->child.Start(s->proc.spec);
    if (!st.ok()) {
      result.failure = std::string(st.message());
      StopAll(&result, /*kill_now=*/true);
      return result;
    }
    s->started_at = Clock::now();
    Event(absl::StrCat("started ", s->proc.spec.name, " (pid ", s->child.pid(), ")"));
  }

  Clock::time_point next_cpu_sample = Clock::now();
  for (;;) {
    // Wait for output, a stop request, or 100 ms (to poll exits and due restarts).
    std::vector<pollfd> fds;
    std::vector<Slot*> owners;
    if (stop_pipe_[0] >= 0) {
      fds.push_back({stop_pipe_[0], POLLIN, 0});
      owners.push_back(nullptr);
    }
    for (auto& s : slots_) {
      if (s->child.output_fd() >= 0) {
        fds.push_back({s->child.output_fd(), POLLIN, 0});
        owners.push_back(s.get());
      }
    }
    ::poll(fds.data(), fds.size(), 100);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (owners[i] != nullptr && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        Drain(*owners[i]);
      }
    }

    if (stop_requests_.load() > 0) {
      char buf[16];
      while (::read(stop_pipe_[0], buf, sizeof(buf)) > 0) {
      }
      Event("stop requested: sending SIGTERM to every process (they checkpoint and exit)");
      result.interrupted = true;
      result.failure = "interrupted";
      StopAll(&result, /*kill_now=*/false);
      return result;
    }

    if (callbacks_.on_tick) callbacks_.on_tick();
    if (options_.live_cpu_seconds != nullptr && Clock::now() >= next_cpu_sample) {
      options_.live_cpu_seconds->store(LiveCpuSeconds());
      next_cpu_sample = Clock::now() + std::chrono::milliseconds(500);
    }

    // Exits.
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot* s = slots_[i].get();
      int code;
      if (!s->child.Poll(&code)) continue;
      Drain(*s);
      result.last_exit_codes[s->proc.spec.name] = code;
      const std::string& name = s->proc.spec.name;
      if (s->stopped) {
        Event(absl::StrCat(name, " stopped (exit code ", code, ")"));
        continue;
      }
      if (code == 0 && s->proc.role == Role::kTrainer) {
        if (callbacks_.on_exit) callbacks_.on_exit(s->proc, 0, false);
        s->done = true;
        Event(absl::StrCat(name, " finished"));
        continue;
      }
      const auto& retryable = options_.restart.retryable_exit_codes;
      bool can_retry = std::find(retryable.begin(), retryable.end(), code) != retryable.end();
      std::string excuse;
      if (code == kExitPeerFailure) excuse = PeerFailureExcuse(*s);
      if (code != 0) last_failure_[name] = Clock::now();
      bool charged = excuse.empty();
      if (code == 0) {  // a pserver exited while trainers still need it
        can_retry = true;
      }
      // A pserver's exit goes to on_exit even with code 0: no trainer is done with it yet.
      if (callbacks_.on_exit && (code != 0 || s->proc.role != Role::kTrainer)) {
        const bool restartable =
            can_retry && (!charged || result.charged_restarts < options_.restart.backoff_limit);
        const ExitAction action = callbacks_.on_exit(s->proc, code, restartable);
        if (action == ExitAction::kRetire) {
          s->done = true;  // gone for good: the job no longer waits for it
          continue;
        }
        if (action == ExitAction::kFail) {
          result.failure = absl::StrCat(name, " exited with code ", code,
                                        ": the job cannot go on without it");
          Event(result.failure + "; stopping the job");
          StopAll(&result, /*kill_now=*/false);
          return result;
        }
      }
      if (!can_retry) {
        result.failure = absl::StrCat(name, " failed with exit code ", code,
                                      " (not in restartPolicy.retryableExitCodes)");
        Event(result.failure + "; stopping the job");
        StopAll(&result, /*kill_now=*/false);
        return result;
      }
      if (charged && result.charged_restarts >= options_.restart.backoff_limit) {
        result.failure = absl::StrCat(name, " failed with exit code ", code,
                                      " and the restart budget (restartPolicy.backoffLimit = ",
                                      options_.restart.backoff_limit, ") is spent");
        Event(result.failure + "; stopping the job");
        StopAll(&result, /*kill_now=*/false);
        return result;
      }
      double delay = options_.restart.backoff_seconds;
      if (charged) {
        delay *= std::pow(2.0, result.charged_restarts);
        ++result.charged_restarts;
      }
      delay = std::min(delay, 60.0);
      ++result.restarts;
      s->restart_pending = true;
      s->restart_at = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(delay * 1000));
      Event(absl::StrFormat("%s exited with code %d; restarting in %.1f s (%s)", name, code, delay,
                            charged ? absl::StrCat("restart ", result.charged_restarts, " of ",
                                                   options_.restart.backoff_limit,
                                                   code == kExitPeerFailure
                                                       ? absl::StrFormat(
                                                             "; charged: it exited 75 %.1f s after "
                                                             "its start and no other process failed",
                                                             SecondsSince(s->started_at))
                                                       : std::string())
                                    : absl::StrCat(excuse, "; not charged")));
    }

    // Due restarts.
    for (auto& s : slots_) {
      if (!s->restart_pending || Clock::now() < s->restart_at) continue;
      s->restart_pending = false;
      if (callbacks_.on_restart) callbacks_.on_restart(s->proc);
      absl::Status st = s->child.Start(s->proc.spec);
      if (!st.ok()) {
        result.failure = std::string(st.message());
        Event(result.failure + "; stopping the job");
        StopAll(&result, /*kill_now=*/false);
        return result;
      }
      s->started_at = Clock::now();
      Event(absl::StrCat("restarted ", s->proc.spec.name, " (pid ", s->child.pid(), ")"));
    }

    // Done when every trainer finished.
    bool all_done = true, any_trainer = false, any_pserver = false;
    for (auto& s : slots_) {
      any_pserver |= s->proc.role == Role::kPServer;
      if (s->proc.role != Role::kTrainer) continue;
      any_trainer = true;
      all_done &= s->done;
    }
    if (any_trainer && all_done) {
      Event(any_pserver ? "every trainer finished; stopping the pservers" : "every trainer finished");
      StopAll(&result, /*kill_now=*/false);
      result.succeeded = true;
      return result;
    }
  }
}

}  // namespace tandem::local
