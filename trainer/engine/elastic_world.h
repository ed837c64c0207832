// Elastic data-parallel training (spec.elastic, docs/elastic.md): the trainers of a job follow a
// membership (api/membership.h) that a coordinator changes while they run, without restarting
// the ones that stay.
//
//   ElasticWorld world(options, dp);       // dp: connected to the ring of options.epoch
//   ...after every step:
//   TANDEM_ASSIGN_OR_RETURN(auto next, world.PollAtBoundary());  // same answer on every rank
//   if (next) { TANDEM_ASSIGN_OR_RETURN(bool member, world.Enter(*next)); ... AgreeOnState ... }
//   ...after a step failed because a peer died:
//   TANDEM_ASSIGN_OR_RETURN(api::Membership next, world.AwaitNewMembership());
//
// The protocol, at a step boundary:
// 1. Rank 0 reads the membership source; one 8-byte broadcast tells every rank whether a newer
//    epoch exists, and a second one carries it. Every rank of the old ring thus switches after
//    the same step.
// 2. Each trainer finds its rank in the new membership by its own endpoint. One that is not in
//    it leaves (the trainer returns; its process exits 0). The others close the old ring and
//    connect the new one, whose new members (started by the coordinator with the new
//    membership) are waiting in the rendezvous.
// 3. AgreeOnState: every rank says whether it holds live training state (it has trained or
//    resumed in this process) and at which step. The lowest rank with the highest live step is
//    the source: its position (step, pass, examples of the pass consumed, learning-rate ramp),
//    parameters and optimizer state are broadcast to all. When no rank is live (a job starting
//    or restarted whole), the caller restores the newest checkpoint instead.
// The first join (Join) is exposed to a membership that changes while the trainers start (a pod's
// mounted ConfigMap is refreshed at each kubelet's own sync, so two trainers can read two epochs):
// the ring's handshake carries the epoch, a trainer that meets a peer on a newer epoch waits for
// its own source to show it, and a failed or outrun first join reads the membership again. The
// first ring so forms at the newest epoch once all its members arrive; a trainer not in that
// epoch leaves without training; no trainer trains a step on an older one (docs/elastic.md).
// A peer that dies in the middle of a step fails its ring; the survivors keep the parameters of
// the last completed step (the update is applied only after the all-reduce succeeded) and wait
// for the coordinator's next epoch (AwaitNewMembership), then continue from step 2. A survivor
// that completed the failed step before the failure reached it is ahead by one step: being the
// highest live step, it is the source, and nothing is trained twice.
//
// Thread-safety: the training thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/membership.h"
#include "api/training_job.h"
#include "common/endpoint.h"
#include "common/metrics.h"
#include "trainer/collective/communicator.h"
#include "trainer/collective/peer_list.h"

namespace tandem::trainer {

class DataParallel;  // trainer/engine/data_parallel.h
class Network;
class Optimizer;

// Where the coordinator's membership comes from.
class MembershipSource {
 public:
  virtual ~MembershipSource() = default;
  // The newest membership, nullopt while there is none. Called often (rank 0, after every step):
  // it should be cheap when nothing changed.
  virtual absl::StatusOr<std::optional<api::Membership>> Latest() = 0;
};

// The file of the worker contract's TANDEM_MEMBERSHIP (tandem run's run folder; a pod's mounted
// ConfigMap). Reads it again only when its modification time or size changed.
class FileMembershipSource : public MembershipSource {
 public:
  explicit FileMembershipSource(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<std::optional<api::Membership>> Latest() override;

 private:
  std::string path_;
  int64_t seen_mtime_ns_ = -1, seen_size_ = -1;
  std::optional<api::Membership> cached_;
};

// Where the job stands in its data and learning-rate schedule: what a new member must adopt.
struct ElasticPosition {
  int64_t step = 0;         // steps done
  int64_t pass = 0;         // current pass (0-based)
  int64_t pass_offset = 0;  // examples of the pass's order consumed by every rank together
  // Learning-rate scale (spec.elastic.policy linear): it moves from `lr_from` to `lr_to` over the
  // warmup steps that follow step `ramp_start`.
  double lr_from = 1, lr_to = 1;
  int64_t ramp_start = 0;
};

struct ElasticOptions {
  MembershipSource* source = nullptr;  // not owned; REQUIRES: non-null
  Endpoint self;                       // this trainer's collective endpoint: its identity
  // The epoch whose ring the communicator is connected to; -1: not connected yet (Join).
  int64_t epoch = -1;
  // Connects the ring of `peers` for membership `epoch` (the trainer's main: Communicator::Connect
  // with its options, TcpTransportOptions::epoch = `epoch` so that a peer of another epoch is told
  // apart, and TcpTransportOptions::keep_waiting = `keep_waiting`, null outside a first join).
  std::function<absl::StatusOr<std::unique_ptr<collective::Communicator>>(
      const collective::PeerList& peers, int64_t epoch,
      const std::function<absl::Status()>& keep_waiting)>
      connect;
  api::ElasticSpec policy;
  int reference_workers = 1;          // spec.workers.count: the global batch's and lr's reference
  int max_workers = 1;                // spec.workers.maxCount: larger memberships are refused
  int batch_size = 1;                 // spec.data.batchSize
  // How long survivors wait for the coordinator's next epoch after a peer failed.
  absl::Duration membership_timeout = absl::Seconds(300);
  absl::Duration poll_interval = absl::Milliseconds(50);
  // Set (SIGTERM): waiting for a membership (Join, AwaitNewMembership) ends with Cancelled.
  const std::atomic<bool>* stop = nullptr;
  // tandem_trainer_elastic_{epoch,world_size,resizes_total}, labelled with `job`; null: none.
  metrics::Registry* registry = nullptr;
  std::string job = "local";
  // Testing and diagnostics: called (training thread) when a first join met a peer on epoch
  // `peer_epoch`, newer than the `source_epoch` this trainer's source shows; Join then waits for
  // the source to reach it.
  std::function<void(int64_t source_epoch, int64_t peer_epoch)> on_behind;
};

class ElasticWorld {
 public:
  // REQUIRES: options.source and options.connect set; `dp` outlives this object.
  ElasticWorld(ElasticOptions options, DataParallel& dp);

  int64_t epoch() const { return options_.epoch; }
  const std::string& reason() const { return reason_; }
  // The membership last entered (Enter, Join).
  const api::Membership& membership() const { return membership_; }

  // A trainer that starts without a ring (its main connects nothing): calls `ready` (it has
  // loaded its data and built its model), waits until the membership names it, then connects
  // that membership's ring. A coordinator publishes a grown membership only once its new
  // trainers are ready, so the survivors' pause is the ring rebuild, not a process start.
  // A membership that changes meanwhile (another epoch read by a peer, a rendezvous that fails
  // or times out, the source moving on during the rendezvous) is read again and joined at its
  // newest epoch; the two all-gathers of Enter then check every link, so every member returns in
  // the same ring or retries. Returns true once connected (at once when already connected);
  // false, connecting nothing, when a membership that had named this trainer was followed by one
  // that does not (it must leave, as at a step boundary: leave_reason() says why). Errors: DeadlineExceeded after options.membership_timeout, Cancelled on stop, or a
  // membership this job refuses (CheckSize) or a ring of another job.
  absl::StatusOr<bool> Join(const std::function<void()>& ready);
  // Why Join returned false.
  const std::string& leave_reason() const { return leave_reason_; }

  // Every rank, after a step: the newer membership the coordinator published, or nullopt. Every
  // rank gets the same answer (rank 0 reads the source and broadcasts it).
  absl::StatusOr<std::optional<api::Membership>> PollAtBoundary();
  // After a peer failure: this rank alone reads the source until an epoch newer than the current
  // one appears (options.membership_timeout: DeadlineExceeded).
  absl::StatusOr<api::Membership> AwaitNewMembership();
  // Closes the old ring and connects the one of `m`. Returns false, connecting nothing, when
  // this trainer is not in `m` (it must leave the job; leave_reason() says why). Every member of
  // the new ring (survivors here, new members in Join) then checks every link with two
  // all-gathers of the epoch.
  absl::StatusOr<bool> Enter(const api::Membership& m);

  // Every rank of the (new) ring: agrees on the training state. Returns true when some rank was
  // live, after which `*position`, `net` and `optimizer` hold the source rank's; false when none
  // was (the caller restores a checkpoint). `live`: this rank has trained or resumed.
  absl::StatusOr<bool> AgreeOnState(bool live, ElasticPosition* position, Network& net,
                                    Optimizer& optimizer);

  // The global batch at `world` workers under the policy: data.batchSize x workers.count
  // (constantGlobalBatch) or x world (linear).
  int64_t GlobalBatch(int world) const;
  // The learning-rate scale after a resize to `world` at `step` (linear: workers / reference,
  // ramped; constantGlobalBatch: 1): updates `*position`'s ramp.
  void RescaleLearningRate(int world, ElasticPosition* position) const;
  // The scale at `step`.
  double LearningRateScale(const ElasticPosition& position, int64_t step) const;

 private:
  absl::Status CheckSize(const api::Membership& m) const;
  // Enter, with `keep_waiting` for the rendezvous; `resize`: count it as a membership change.
  absl::StatusOr<bool> Connect(const api::Membership& m,
                               const std::function<absl::Status()>& keep_waiting, bool resize);
  // Connect to `m`, then check every link as Enter says; false when `m` does not name this
  // trainer.
  absl::StatusOr<bool> EnterAndSettle(const api::Membership& m,
                                      const std::function<absl::Status()>& keep_waiting,
                                      bool resize);

  ElasticOptions options_;
  DataParallel& dp_;
  std::string reason_;
  api::Membership membership_;
  int64_t refused_epoch_ = -1;  // logged once
  std::string leave_reason_;
  metrics::Gauge* epoch_gauge_ = nullptr;
  metrics::Gauge* world_gauge_ = nullptr;
  metrics::Counter* resizes_ = nullptr;
};

// The positions of an elastic job's checkpoints, a small file beside them
// (<checkpoint_dir>/elastic-positions.json, the newest `keep` steps): resuming a checkpoint at
// another world size continues from the same example of the same pass.
absl::Status SaveElasticPosition(const std::string& checkpoint_dir, const ElasticPosition& p,
                                 int keep = 16);
// The position saved with the checkpoint of `step`; nullopt when there is none.
std::optional<ElasticPosition> LoadElasticPosition(const std::string& checkpoint_dir, int64_t step);

}  // namespace tandem::trainer
