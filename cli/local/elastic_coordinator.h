// The coordinator of an elastic job under `tandem run` (spec.elastic, docs/elastic.md): it owns
// the job's membership file (api/membership.h, TANDEM_MEMBERSHIP of every trainer) and decides
// each change of it; the trainers follow at their next step boundary without restarting.
//
//   ElasticCoordinator c({.membership_path = run_dir + "/membership.json", .min_workers = 1,
//                         .max_workers = 4}, slots, /*initial=*/2);
//   TANDEM_RETURN_IF_ERROR(c.Start());                   // epoch 0: slots 0 and 1
//   TANDEM_ASSIGN_OR_RETURN(ElasticChange ch, c.Resize(4, "tandem resize"));
//   for (int slot : ch.started) supervisor.AddProcess(TrainerFor(slot, c.Planned()));
//   ... a started trainer's `ready` event:  c.OnReady(slot)   // true: the new epoch is out
//
// Decisions (pure, over the current membership):
// - Resize(n): shrinking drops the members of the highest ranks (rank 0 stays, so the job keeps
//   the trainer it reports through) at once; growing appends the lowest-numbered slots not
//   running, in two phases: their trainers start first (with the planned membership in their
//   contract), load their data and say they are ready (OnReady); the grown membership is
//   published when the last one is, so the survivors pause only for the ring rebuild.
// - A trainer that exits with a failure: restartable (its code is retryable and the restart
//   budget lasts) -> restarted, with a new epoch of the same members so that the survivors,
//   waiting in place, rebuild the ring with it; otherwise, while the job keeps at least
//   minCount members -> retired and the job shrinks; otherwise -> the restart policy fails the
//   job. With pservers every failure of a member fails the job (kFail): its shard's rows cannot
//   be recovered (shards are not replicated and elastic shards do not checkpoint), and carrying
//   on without them would silently train a model with rows lost.
// - With pservers the membership carries the layout: a grow's new shards are started (with the
//   planned layout, `joining`) with its trainers; the trainers reshard at the boundary where
//   they switch (trainer/engine/trainer.cc), and the shards of removed slots are stopped by the
//   caller once that reshard is reported. Exit 75 (a trainer that saw a peer fail and could not recover in place) is restarted
//   into the current epoch: the failure is its peer's, whose decision moves the epoch.
// Every change raises the epoch and is written atomically before any new process starts.
//
// Not thread-safe: the supervisor's thread drives it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/membership.h"
#include "common/endpoint.h"

namespace tandem::local {

struct ElasticCoordinatorOptions {
  std::string membership_path;  // the file every trainer reads (TANDEM_MEMBERSHIP)
  int min_workers = 1;          // spec.workers.minCount
  int max_workers = 1;          // spec.workers.maxCount; REQUIRES: == slots.size()
  // A job with tables on the pservers: the pserver endpoint of every worker slot (one shard
  // co-located with each trainer), carried in the membership as its pserver layout. Empty: none.
  std::vector<Endpoint> pserver_slots;
};

// What one decision changed.
struct ElasticChange {
  bool changed = false;         // a new epoch was written
  bool pending = false;         // growing: published once the started trainers are ready
  int from = 0, to = 0;         // members before and after
  std::vector<int> started;     // slots to start now (growing)
  std::vector<int> removed;     // slots taken out (they leave by themselves at the boundary)
  std::string reason;
};

enum class ExitDecision { kRestart, kRetire, kFail };

class ElasticCoordinator {
 public:
  // `slots`: the collective endpoint of every worker slot the job may ever use (maxCount).
  ElasticCoordinator(ElasticCoordinatorOptions options, std::vector<Endpoint> slots, int initial);

  // Writes epoch 0 (slots 0..initial-1).
  absl::Status Start();
  // Changes the size to `workers`. Errors (outside [minCount, maxCount], not enough free slots)
  // name the bound; the same size is no change.
  absl::StatusOr<ElasticChange> Resize(int workers, const std::string& why);
  // A trainer of `slot` exited with a failure; `restartable` as the restart policy sees it.
  // kRestart and kRetire write the new epoch before returning.
  absl::StatusOr<ExitDecision> OnTrainerFailed(int slot, int exit_code, bool restartable);
  // The trainer of `slot` loaded its data and waits to be a member. Returns true when that
  // completed a pending grow (the new epoch is written).
  absl::StatusOr<bool> OnReady(int slot);
  // The membership with a pending grow's slots (what new trainers are started with).
  api::Membership Planned() const;
  bool has_pservers() const { return !options_.pserver_slots.empty(); }
  bool growing() const { return !pending_slots_.empty(); }
  // Calls a pending grow off (the job finished before its new trainers were ready): returns the
  // slots whose trainers must be stopped.
  std::vector<int> CancelGrow();
  // The members that joined after epoch `epoch` (a trainer that finished at `epoch` never met
  // them: they wait for a ring that will not form).
  std::vector<int> JoinedAfter(int64_t epoch) const;
  // Takes `slot` out of the membership without a new epoch for the trainers (the job is over).
  void Abandon(int slot);

  // The slot's process is not running any more (it left at a boundary, or was retired).
  void MarkStopped(int slot);
  void MarkRunning(int slot);

  const api::Membership& membership() const { return membership_; }
  int SlotOf(const Endpoint& e) const;
  bool IsMember(int slot) const { return membership_.RankOf(slots_[static_cast<size_t>(slot)]) >= 0; }
  const std::vector<Endpoint>& slots() const { return slots_; }

 private:
  absl::Status Publish(api::Membership next);

  ElasticCoordinatorOptions options_;
  std::vector<Endpoint> slots_;
  std::vector<bool> running_;
  int initial_;
  api::Membership membership_;
  std::vector<int> pending_slots_;  // a grow waiting for its trainers, in rank order
  std::vector<bool> ready_;         // by slot
  std::vector<int64_t> joined_;     // by slot: the epoch that made it a member
  std::string pending_reason_;
  int64_t pending_layout_epoch_ = 0;  // a pending grow's pserver layout epoch
};

}  // namespace tandem::local
