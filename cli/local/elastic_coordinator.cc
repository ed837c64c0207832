#include "cli/local/elastic_coordinator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/status.h"

namespace tandem::local {

ElasticCoordinator::ElasticCoordinator(ElasticCoordinatorOptions options,
                                       std::vector<Endpoint> slots, int initial)
    : options_(std::move(options)),
      slots_(std::move(slots)),
      running_(slots_.size(), false),
      initial_(initial),
      ready_(slots_.size(), false),
      joined_(slots_.size(), 0) {
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
  TANDEM_CHECK(options_.pserver_slots.empty() || options_.pserver_slots.size() == slots_.size());
  api::Membership m{.epoch = 0, .reason = absl::StrCat("start: ", initial_, " workers")};
  for (int i = 0; i < initial_; ++i) {
    m.peers.push_back(slots_[static_cast<size_t>(i)]);
    if (has_pservers())
      m.pservers.push_back({.slot = i, .endpoint = options_.pserver_slots[static_cast<size_t>(i)]});
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
  if (!pending_slots_.empty())
    return absl::UnavailableError(absl::StrCat(
        "a resize is in progress: ", pending_reason_, " waits for its new trainers to be ready"));
  if (workers == ch.from) return ch;
  api::Membership next = membership_;
  ++next.epoch;
  ch.reason = absl::StrCat(why, ": ", ch.from, " -> ", workers, " workers");
  next.reason = ch.reason;
  if (workers < ch.from) {
    for (int r = ch.from - 1; r >= workers; --r) ch.removed.push_back(SlotOf(next.peers[r]));
    next.peers.resize(static_cast<size_t>(workers));
    if (has_pservers()) {
      std::erase_if(next.pservers, [&](const api::PServerShard& s) {
        return std::find(ch.removed.begin(), ch.removed.end(), s.slot) != ch.removed.end();
      });
      next.pserver_epoch = next.epoch;
    }
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
    pending_slots_ = ch.started;
    pending_reason_ = ch.reason;
    pending_layout_epoch_ = next.epoch;  // the new shards start with it (--layout-epoch)
    for (int s : ch.started) {
      running_[static_cast<size_t>(s)] = true;
      ready_[static_cast<size_t>(s)] = false;
    }
    ch.pending = true;
    return ch;
  }
  TANDEM_RETURN_IF_ERROR(Publish(std::move(next)));
  ch.changed = true;
  return ch;
}

std::vector<int> ElasticCoordinator::JoinedAfter(int64_t epoch) const {
  std::vector<int> out;
  for (const Endpoint& e : membership_.peers) {
    const int s = SlotOf(e);
    if (joined_[static_cast<size_t>(s)] > epoch) out.push_back(s);
  }
  return out;
}

void ElasticCoordinator::Abandon(int slot) {
  const int rank = membership_.RankOf(slots_[static_cast<size_t>(slot)]);
  if (rank >= 0) membership_.peers.erase(membership_.peers.begin() + rank);
  running_[static_cast<size_t>(slot)] = false;
}

std::vector<int> ElasticCoordinator::CancelGrow() {
  std::vector<int> out;
  out.swap(pending_slots_);
  for (int s : out) running_[static_cast<size_t>(s)] = false;
  return out;
}

api::Membership ElasticCoordinator::Planned() const {
  api::Membership m = membership_;
  for (int s : pending_slots_) {
    m.peers.push_back(slots_[static_cast<size_t>(s)]);
    if (has_pservers())
      m.pservers.push_back({.slot = s, .endpoint = options_.pserver_slots[static_cast<size_t>(s)]});
  }
  if (has_pservers() && !pending_slots_.empty()) m.pserver_epoch = pending_layout_epoch_;
  return m;
}

absl::StatusOr<bool> ElasticCoordinator::OnReady(int slot) {
  if (std::find(pending_slots_.begin(), pending_slots_.end(), slot) == pending_slots_.end())
    return false;
  ready_[static_cast<size_t>(slot)] = true;
  for (int s : pending_slots_)
    if (!ready_[static_cast<size_t>(s)]) return false;
  // Built on the current membership: an epoch may have passed since the grow began.
  api::Membership next = Planned();
  ++next.epoch;
  next.reason = pending_reason_;
  for (int s : pending_slots_) joined_[static_cast<size_t>(s)] = next.epoch;
  pending_slots_.clear();
  TANDEM_RETURN_IF_ERROR(Publish(std::move(next)));
  return true;
}

absl::StatusOr<ExitDecision> ElasticCoordinator::OnTrainerFailed(int slot, int exit_code,
                                                                 bool restartable) {
  const Endpoint& e = slots_[static_cast<size_t>(slot)];
  const int rank = membership_.RankOf(e);
  if (rank < 0) {
    // Not a member (any more, or not yet): nothing waits for it. A trainer of a pending grow
    // failing calls the grow off; its other new trainers time out waiting and are retired too.
    running_[static_cast<size_t>(slot)] = false;
    if (std::find(pending_slots_.begin(), pending_slots_.end(), slot) != pending_slots_.end())
      pending_slots_.clear();
    return ExitDecision::kRetire;
  }
  if (has_pservers()) return ExitDecision::kFail;  // its shard's rows may be gone (see the header)
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
