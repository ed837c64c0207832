#include "trainer/engine/peer_failure_watchdog.h"

#include <unistd.h>

#include <cstdio>
#include <optional>

#include "common/check.h"

namespace tandem::trainer {

PeerFailureWatchdog::PeerFailureWatchdog(std::function<absl::Status()> health,
                                         absl::Duration grace,
                                         std::function<void(const absl::Status&)> on_stuck,
                                         absl::Duration poll)
    : health_(std::move(health)), grace_(grace), poll_(poll), on_stuck_(std::move(on_stuck)) {
  TANDEM_CHECK(health_ != nullptr && on_stuck_ != nullptr);
  thread_ = std::thread([this] { Loop(); });
}

PeerFailureWatchdog::~PeerFailureWatchdog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void PeerFailureWatchdog::Loop() {
  std::optional<absl::Time> failed_since;
  absl::MutexLock lock(&mu_);
  for (;;) {
    mu_.AwaitWithTimeout(absl::Condition(&stop_), poll_);
    if (stop_) return;
    mu_.Unlock();
    const absl::Status s = health_();
    const absl::Time now = absl::Now();
    mu_.Lock();
    if (stop_) return;
    if (s.ok()) continue;
    if (!failed_since) failed_since = now;
    if (now - *failed_since < grace_) continue;
    mu_.Unlock();
    on_stuck_(s);
    mu_.Lock();
    return;
  }
}

void ExitAfter(absl::Duration delay, int code) {
  std::thread([delay, code] {
    absl::SleepFor(delay);
    std::fflush(nullptr);
    ::_exit(code);
  }).detach();
}

}  // namespace tandem::trainer
