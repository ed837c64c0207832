// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: the holder renews
// spec.renewTime every retry period; a candidate takes the Lease over once it has seen no renewal
// for leaseDurationSeconds (measured on its own clock, from when it last saw the record change);
// a leader that cannot renew within renew_deadline stops leading. Writes are conditional on the
// Lease's resourceVersion, so two candidates never both win.
//
//   kube::LeaderElector elector(&client, {.ns = "tandem-system", .name = "tandem-operator",
//       .identity = hostname, .on_started_leading = [&] { controller.Start(); },
//       .on_stopped_leading = [&] { controller.Stop(); }});
//   elector.Run();   // blocks until Stop() or leadership is lost
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "operator/kube/kube_api.h"

namespace tandem::kube {

struct LeaderElectionConfig {
  std::string ns = "default";
  std::string name{};      // the Lease's name
  std::string identity{};  // this candidate (pod name)
  double lease_duration_s = 15;
  double renew_deadline_s = 10;  // REQUIRES: < lease_duration_s
  double retry_period_s = 2;
  // On Stop(), hand the Lease back (holder cleared) so a successor need not wait for expiry.
  bool release_on_stop = true;
  std::function<void()> on_started_leading{};
  std::function<void()> on_stopped_leading{};  // called once if we led and then stopped or lost
  std::function<void(const std::string&)> on_new_leader{};
};

class LeaderElector {
 public:
  LeaderElector(KubeApi* api, LeaderElectionConfig config);
  ~LeaderElector();

  // Campaigns, then renews while leading. Returns when Stop() is called or leadership is lost
  // (OkStatus after Stop, Aborted after losing it).
  absl::Status Run();
  void Stop();
  bool IsLeader() const { return leading_.load(); }
  std::string ObservedLeader() const;

  // One acquire-or-renew attempt (exposed for tests). True when we hold the Lease afterwards.
  bool TryAcquireOrRenew();

 private:
  bool Wait(double seconds);  // false when stopped
  void Release();

  KubeApi* api_;
  const LeaderElectionConfig config_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> leading_{false};
  // Last observed record and when we observed it change (our clock).
  std::string observed_holder_ ABSL_GUARDED_BY(mu_);
  std::string observed_renew_time_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point observed_at_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::kube
