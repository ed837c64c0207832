// PeerFailureWatchdog: a trainer whose peers failed must leave promptly (exit 75, restart from the
// consistent checkpoint), wherever its training thread happens to be blocked. The collective
// detects a dead, stalled or cut-off neighbour within its peer timeout, but the training thread
// only learns of it at its next collective call; if it is blocked elsewhere (a pull or push to a
// pserver behind the same cut link, retried for the client's reconnect timeout, 120 s by
// default), the rank would outlive its failed ring by minutes. The watchdog polls the ring's
// health and, when it has been failed for `grace` without the process acting on it, calls
// `on_stuck` with the failure (the trainer's main prints it and exits 75: checkpoints are written
// to a temporary file and renamed, so leaving mid-step loses only steps the restart redoes).
//
//   PeerFailureWatchdog dog([&] { return comm.health(); }, absl::Seconds(2),
//                           [](const absl::Status& s) { ...; ::_exit(75); });
//
// Thread-safety: `health` is called from the watchdog's thread and must be thread-safe
// (Communicator::health is); `on_stuck` is called at most once, from that thread.
#pragma once

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tandem::trainer {

class PeerFailureWatchdog {
 public:
  // Starts polling `health` every `poll` (default 100 ms). REQUIRES: health, on_stuck non-null.
  PeerFailureWatchdog(std::function<absl::Status()> health, absl::Duration grace,
                      std::function<void(const absl::Status&)> on_stuck,
                      absl::Duration poll = absl::Milliseconds(100));
  // Stops the thread (waits at most one poll); `on_stuck` is not called afterwards.
  ~PeerFailureWatchdog();
  PeerFailureWatchdog(const PeerFailureWatchdog&) = delete;
  PeerFailureWatchdog& operator=(const PeerFailureWatchdog&) = delete;

 private:
  void Loop();

  const std::function<absl::Status()> health_;
  const absl::Duration grace_, poll_;
  const std::function<void(const absl::Status&)> on_stuck_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Ends the process with `code` (flushing stdio first) once `delay` has passed, unless it has
// ended by then; returns at once. A failed rank arms it before its normal teardown, which closes
// connections to peers and pservers that may be unreachable: the teardown then cannot keep the
// rank (and so the job's restart) waiting on them.
void ExitAfter(absl::Duration delay, int code);

}  // namespace tandem::trainer
