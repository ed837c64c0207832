#include "cli/local/elastic_coordinator.h"

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"

namespace tandem::local {

ElasticCoordinator::ElasticCoordinator(ElasticCoordinatorOptions options,
                                       std::vector<Endpoint> slots, int initial)
    : options_(std::move(options)),
      slots_(std::move(slots)),
      running_(slots_.size(), false),
      initial_(initial) {
  TANDEM_CHECK(initial_ >= 1 && initial_ <= static_cast<int>(slots_.size()));
}

int ElasticCoordinator::SlotOf(const Endpoint& e) const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].host == e.host && slots_[i].port == e.port) return static_cast<int>(i);
  return -1;
}

void ElasticCoordinator::MarkStopped(int slot) { running_[static_cast<size_t>(slot)] = false; }
void ElasticCoordinator::MarkRunning(int slot) { running_[static_cast<size_t>(slot)] = true; }

absl::Status ElasticCoordinator::Publish(api::Membership next) {
  TANDEM_RETURN_IF_ERROR(api::WriteMembershipFile(options_.membership_path, next));
  membership_ = std::move(next);
  return absl::OkStatus();
}

absl::Status ElasticCoordinator::Start() {
  api::Membership m{.epoch = 0, .reason = absl::StrCat("start: ", initial_, " workers")};
  for (int i = 0; i < initial_; ++i) {
    m.peers.push_back(slots_[static_cast<size_t>(i)]);
    running_[static_cast<size_t>(i)] = true;
  }
  return Publish(std::move(m));
}

absl::StatusOr<ElasticChange> ElasticCoordinator::Resize(int workers, const std::string& why) {
  ElasticChange ch;
  ch.from = membership_.world_size();
  ch.to = workers;
  if (workers < options_.min_workers || workers > options_.max_workers)
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot resize to ", workers, " workers: spec.workers.minCount is ",
        options_.min_workers, " and spec.workers.maxCount ", options_.max_workers));
  if (workers == ch.from) return ch;
  api::Membership next = membership_;
  ++next.epoch;
  ch.reason = absl::StrCat(why, ": ", ch.from, " -> ", workers, " workers");
  next.reason = ch.reason;
  if (workers < ch.from) {
    for (int r = ch.from - 1; r >= workers; --r) ch.removed.push_back(SlotOf(next.peers[r]));
    next.peers.resize(static_cast<size_t>(workers));
  } else {
    for (size_t s = 0; s < slots_.size() && next.world_size() < workers; ++s) {
      if (running_[s] || next.RankOf(slots_[s]) >= 0) continue;
      next.peers.push_back(slots_[s]);
      ch.started.push_back(static_cast<int>(s));
    }
    if (next.world_size() < workers)
      return absl::UnavailableError(absl::StrCat(
          "cannot grow to ", workers, " workers: only ", next.world_size(),
          " worker slots are free (trainers that are leaving still hold theirs; retry shortly)"));
  }
  TANDEM_RETURN_IF_ERROR(Publish(std::move(next)));
  for (int s : ch.started) running_[static_cast<size_t>(s)] = true;
  ch.changed = true;
  return ch;
}

absl::StatusOr<ExitDecision> ElasticCoordinator::OnTrainerFailed(int slot, int exit_code,
                                                                 bool restartable) {
  const Endpoint& e = slots_[static_cast<size_t>(slot)];
  const int rank = membership_.RankOf(e);
  if (rank < 0) {
    // Not a member (any more): nothing waits for it.
    running_[static_cast<size_t>(slot)] = false;
    return ExitDecision::kRetire;
  }
  if (restartable) {
    if (exit_code == 75) return ExitDecision::kRestart;  // its peer's failure moves the epoch
    api::Membership next = membership_;
    ++next.epoch;
    next.reason = absl::StrCat("worker-", slot, " exited with code ", exit_code, ": restarted");
    TANDEM_RETURN_IF_ERROR(Publish(std::move(next)));
    return ExitDecision::kRestart;
  }
  if (membership_.world_size() - 1 < options_.min_workers) return ExitDecision::kFail;
  api::Membership next = membership_;
  ++next.epoch;
  next.peers.erase(next.peers.begin() + rank);
  next.reason = absl::StrCat("worker-", slot, " exited with code ", exit_code,
                             " and will not come back: ", membership_.world_size(), " -> ",
                             next.world_size(), " workers");
  TANDEM_RETURN_IF_ERROR(Publish(std::move(next)));
  running_[static_cast<size_t>(slot)] = false;
  return ExitDecision::kRetire;
}

}  // namespace tandem::local
