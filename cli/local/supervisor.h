// Supervises the processes of one local TrainingJob run: W trainers and W pservers.
//
//   Supervisor sup(processes, options, callbacks);
//   std::thread t([&] { result = sup.Run(); });    // or call Run() on the main thread
//   ... sup.RequestStop();                         // Ctrl-C: SIGTERM all, SIGKILL after grace
//
// Run() starts every pserver, then every trainer; streams every output line to `on_line`;
// restarts a process that fails with a retryable exit code (per the restart policy, with
// exponential backoff) and gives up, stopping everything, on a non-retryable failure or when the
// backoff limit is spent. The run succeeds when every trainer has exited 0; the pservers are
// then stopped with SIGTERM (they checkpoint) and reaped. Exit code 75 (a trainer saw a peer
// fail) is restarted without being charged to the backoff limit when a peer's failure explains
// it (another process failed within `peer_failure_window_seconds`) or when the process had been
// running for `settled_seconds` (it was training when its ring or a pserver went away: a link
// cut, a partition). Otherwise (75 again and again right after each start, with nothing else
// failing) it is charged like any failure, so a job that cannot get going ends instead of
// restarting for ever.
//
// Thread-safety: RequestStop() is async-signal-safe and may be called from any thread or a
// signal handler; everything else belongs to the thread running Run().
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "api/exit_codes.h"
#include "cli/local/child_process.h"

namespace tandem::local {

enum class Role { kTrainer, kPServer };

struct SupervisedProcess {
  ProcessSpec spec;
  Role role = Role::kTrainer;
  int worker = 0;
};

struct RestartPolicy {
  int backoff_limit = 3;          // charged restarts allowed for the whole job
  double backoff_seconds = 1.0;   // first delay; doubles per charged restart, capped at 60 s
  std::vector<int> retryable_exit_codes{std::begin(api::kDefaultRetryableExitCodes),
                                        std::end(api::kDefaultRetryableExitCodes)};
};

// The exit code a trainer uses when a peer died or stalled (EX_TEMPFAIL).
inline constexpr int kExitPeerFailure = 75;

struct SupervisorOptions {
  RestartPolicy restart;
  // When set, Run() stores here, about twice a second and once more before it returns, the CPU
  // seconds (user + system) of every process so far: those reaped and the running ones' own.
  // Readable from any thread (a sweep charging its budget while its trials run).
  std::atomic<double>* live_cpu_seconds = nullptr;
  double stop_grace_seconds = 30;  // SIGTERM -> SIGKILL
  // When an exit 75 is not charged (see above). The window covers a trainer's detection of a
  // dead peer: the ring's peer timeout plus the watchdog's grace, or the pserver client's
  // reconnect timeout.
  double peer_failure_window_seconds = 60;
  double settled_seconds = 30;
};

// What to do about a process that exited (elastic jobs decide; others leave it to the policy).
enum class ExitAction {
  kPolicy,   // the restart policy decides (restart, or fail the job)
  kRetire,   // the worker is gone for good and the job goes on without it: not a failure
  kFail,     // the job cannot go on (an elastic job lost a pserver shard's rows): stop it now
};

struct SupervisorCallbacks {
  // One line of a process' output (without the newline).
  std::function<void(const SupervisedProcess&, const std::string& line)> on_line;
  // A lifecycle event in words ("worker-1/pserver exited with code 137; restarting in 1.0 s").
  std::function<void(const std::string& event)> on_event;
  // Elastic jobs (cli/local/elastic_coordinator.h). Called on the Run() thread:
  // - on_tick: once per loop (about every 100 ms); may call AddProcess.
  // - on_exit: a process exited with `code`; `restartable`: the policy would restart it
  //   (retryable code, budget left). kPolicy lets the policy act. (A trainer's exit 0 is told
  //   too; it is done whatever the answer.)
  // - on_restart: just before a process is started again.
  std::function<void()> on_tick;
  std::function<ExitAction(const SupervisedProcess&, int code, bool restartable)> on_exit;
  std::function<void(const SupervisedProcess&)> on_restart;
};

struct RunResult {
  bool succeeded = false;
  bool interrupted = false;        // stopped by RequestStop()
  int restarts = 0;                // every restart
  int charged_restarts = 0;        // those counted against the backoff limit
  std::string failure;             // why it failed, when it did
  std::map<std::string, int> last_exit_codes;  // by process name
};

class Supervisor {
 public:
  Supervisor(std::vector<SupervisedProcess> processes, SupervisorOptions options,
             SupervisorCallbacks callbacks);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  RunResult Run();
  void RequestStop();
  // Starts one more process (an elastic job growing). Only from the callbacks, on Run()'s thread.
  absl::Status AddProcess(SupervisedProcess process);
  // Stops the running process named `name` (SIGTERM; SIGKILL after the grace period when the run
  // ends) and no longer waits for it nor restarts it. Only from the callbacks.
  void StopProcess(const std::string& name, int signal = 15);
  // User + system CPU seconds of every process reaped so far (after Run: all of them). Only from
  // Run()'s thread or after Run returned.
  double ReapedCpuSeconds() const;
  // ReapedCpuSeconds() plus the running processes' CPU so far. Same threads as above.
  double LiveCpuSeconds() const;

 private:
  struct Slot;
  void StopAll(RunResult* result, bool kill_now);
  void Event(const std::string& e);
  void Drain(Slot& slot);

  // Why an exit 75 of `name` is not charged ("" when it is).
  std::string PeerFailureExcuse(const Slot& slot) const;

  std::vector<std::unique_ptr<Slot>> slots_;
  // The last failure (non-zero exit of a process that was not being stopped) of each process.
  std::map<std::string, std::chrono::steady_clock::time_point> last_failure_;
  SupervisorOptions options_;
  SupervisorCallbacks callbacks_;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<int> stop_requests_{0};
};

}  // namespace tandem::local
