#include "operator/kube/leader_election.h"

#include <cmath>

#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "operator/kube/api_error.h"

namespace tandem::kube {

LeaderElector::LeaderElector(KubeApi* api, LeaderElectionConfig config)
    : api_(api), config_(std::move(config)) {}

LeaderElector::~LeaderElector() { Stop(); }

void LeaderElector::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
  cv_.SignalAll();
}

std::string LeaderElector::ObservedLeader() const {
  absl::MutexLock lock(&mu_);
  return observed_holder_;
}

bool LeaderElector::Wait(double seconds) {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + absl::Seconds(seconds);
  while (!stop_.load() && !cv_.WaitWithDeadline(&mu_, deadline)) {
  }
  return !stop_;
}

bool LeaderElector::TryAcquireOrRenew() {
  std::string now = NowMicroTime();
  int duration = static_cast<int>(std::ceil(config_.lease_duration_s));
  auto current = api_->Get(kLeases, config_.ns, config_.name);
  if (kube::IsNotFound(current.status())) {
    nlohmann::json lease = {
        {"metadata", {{"name", config_.name}, {"namespace", config_.ns}}},
        {"spec",
         {{"holderIdentity", config_.identity},
          {"leaseDurationSeconds", duration},
          {"acquireTime", now},
          {"renewTime", now},
          {"leaseTransitions", 0}}}};
    auto created = api_->Create(kLeases, config_.ns, lease);
    if (!created.ok()) return false;
    absl::MutexLock lock(&mu_);
    observed_holder_ = config_.identity;
    observed_renew_time_ = now;
    observed_at_ = std::chrono::steady_clock::now();
    return true;
  }
  if (!current.ok()) {
    TANDEM_LOG(warn, "leader election: get lease {}/{}: {}", config_.ns, config_.name,
               current.status().ToString());
    return false;
  }
  nlohmann::json lease = std::move(*current);
  nlohmann::json& spec = lease["spec"];
  if (!spec.is_object()) spec = nlohmann::json::object();
  std::string holder = spec.value("holderIdentity", "");
  std::string renew = spec.value("renewTime", "");
  int held_for = spec.value("leaseDurationSeconds", duration);
  auto observed_now = std::chrono::steady_clock::now();
  {
    absl::MutexLock lock(&mu_);
    if (holder != observed_holder_ || renew != observed_renew_time_) {
      if (holder != observed_holder_ && config_.on_new_leader && !holder.empty()) {
        config_.on_new_leader(holder);
      }
      observed_holder_ = holder;
      observed_renew_time_ = renew;
      observed_at_ = observed_now;
    }
    bool expired = observed_now - observed_at_ > std::chrono::duration<double>(held_for);
    if (!holder.empty() && holder != config_.identity && !expired) return false;
  }
  if (holder != config_.identity) {
    spec["acquireTime"] = now;
    spec["leaseTransitions"] = spec.value("leaseTransitions", 0) + (holder.empty() ? 0 : 1);
  }
  spec["holderIdentity"] = config_.identity;
  spec["leaseDurationSeconds"] = duration;
  spec["renewTime"] = now;
  auto updated = api_->Update(kLeases, lease);  // conditional on the resourceVersion we read
  if (!updated.ok()) {
    if (!IsConflict(updated.status())) {
      TANDEM_LOG(warn, "leader election: update lease: {}", updated.status().ToString());
    }
    return false;
  }
  absl::MutexLock lock(&mu_);
  observed_holder_ = config_.identity;
  observed_renew_time_ = now;
  observed_at_ = std::chrono::steady_clock::now();
  return true;
}

void LeaderElector::Release() {
  auto current = api_->Get(kLeases, config_.ns, config_.name);
  if (!current.ok()) return;
  nlohmann::json lease = std::move(*current);
  if (lease["spec"].value("holderIdentity", "") != config_.identity) return;
  lease["spec"]["holderIdentity"] = "";
  lease["spec"]["leaseDurationSeconds"] = 1;
  lease["spec"]["renewTime"] = NowMicroTime();
  auto s = api_->Update(kLeases, lease);
  if (!s.ok()) TANDEM_LOG(warn, "leader election: release lease: {}", s.status().ToString());
}

absl::Status LeaderElector::Run() {
  // Campaign.
  while (!stop_) {
    if (TryAcquireOrRenew()) break;
    if (!Wait(config_.retry_period_s)) return absl::OkStatus();
  }
  if (stop_) return absl::OkStatus();
  leading_ = true;
  TANDEM_LOG(info, "leader election: {} now leads via lease {}/{}", config_.identity, config_.ns,
             config_.name);
  if (config_.on_started_leading) config_.on_started_leading();
  // Renew until stopped or until renewals fail for longer than renew_deadline.
  auto last_renew = std::chrono::steady_clock::now();
  bool lost = false;
  while (Wait(config_.retry_period_s)) {
    if (TryAcquireOrRenew()) {
      last_renew = std::chrono::steady_clock::now();
      continue;
    }
    if (std::chrono::steady_clock::now() - last_renew >
        std::chrono::duration<double>(config_.renew_deadline_s)) {
      lost = true;
      break;
    }
  }
  leading_ = false;
  if (!lost && config_.release_on_stop) Release();
  if (config_.on_stopped_leading) config_.on_stopped_leading();
  if (lost) {
    TANDEM_LOG(error, "leader election: {} lost lease {}/{}", config_.identity, config_.ns,
               config_.name);
    return absl::AbortedError(absl::StrCat("lost leadership of lease ", config_.ns, "/", config_.name));
  }
  return absl::OkStatus();
}

}  // namespace tandem::kube
