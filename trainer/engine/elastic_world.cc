#include "trainer/engine/elastic_world.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/logging.h"
#include "common/status.h"
#include "nlohmann/json.hpp"
#include "trainer/collective/exit_codes.h"
#include "trainer/collective/tcp_transport.h"
#include "trainer/engine/data_parallel.h"
#include "trainer/model/network.h"
#include "trainer/optim/optimizer.h"

namespace tandem::trainer {

absl::StatusOr<std::optional<api::Membership>> FileMembershipSource::Latest() {
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) {
    if (errno == ENOENT) return cached_;
    return absl::NotFoundError(absl::StrCat("membership file ", path_, ": ", std::strerror(errno)));
  }
  const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (mtime == seen_mtime_ns_ && st.st_size == seen_size_) return cached_;
  TANDEM_ASSIGN_OR_RETURN(std::optional<api::Membership> m, api::ReadMembershipFile(path_));
  seen_mtime_ns_ = mtime;
  seen_size_ = st.st_size;
  if (m.has_value()) cached_ = std::move(m);
  return cached_;
}

ElasticWorld::ElasticWorld(ElasticOptions options, DataParallel& dp)
    : options_(std::move(options)), dp_(dp) {
  TANDEM_CHECK(options_.source != nullptr);
  TANDEM_CHECK(options_.connect != nullptr);
  if (options_.registry != nullptr) {
    metrics::Registry& r = *options_.registry;
    epoch_gauge_ = r.AddGauge("tandem_trainer_elastic_epoch",
                              "Membership epoch of the ring this trainer is in (-1: not yet).",
                              {"job"})
                       .WithLabels({options_.job});
    world_gauge_ = r.AddGauge("tandem_trainer_elastic_world_size",
                              "Trainers in this elastic job's current membership.", {"job"})
                       .WithLabels({options_.job});
    resizes_ = r.AddCounter("tandem_trainer_elastic_resizes_total",
                            "Membership changes this trainer went through.", {"job"})
                   .WithLabels({options_.job});
    epoch_gauge_->Set(static_cast<double>(options_.epoch));
  }
}

int64_t ElasticWorld::GlobalBatch(int world) const {
  const int workers = options_.policy.policy == api::kElasticLinear ? world
                                                                     : options_.reference_workers;
  return static_cast<int64_t>(options_.batch_size) * workers;
}

absl::Status ElasticWorld::CheckSize(const api::Membership& m) const {
  if (m.world_size() > options_.max_workers)
    return absl::InvalidArgumentError(absl::StrCat(
        "membership epoch ", m.epoch, " has ", m.world_size(),
        " trainers, above spec.workers.maxCount (", options_.max_workers, ")"));
  if (GlobalBatch(m.world_size()) < m.world_size())
    return absl::InvalidArgumentError(absl::StrCat(
        "membership epoch ", m.epoch, ": a global batch of ", GlobalBatch(m.world_size()),
        " examples cannot be split over ", m.world_size(), " trainers"));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<api::Membership>> ElasticWorld::PollAtBoundary() {
  // header[0]: the new epoch (-1: none); header[1]: the length of its rendering.
  int64_t header[2] = {-1, 0};
  std::string body;
  if (dp_.rank() == 0) {
    absl::StatusOr<std::optional<api::Membership>> latest = options_.source->Latest();
    if (!latest.ok()) {
      // A broken file is the coordinator's problem, not a reason to stop training.
      TANDEM_LOG(warn, "elastic: {} (keeping epoch {})", std::string(latest.status().message()), options_.epoch);
    } else if (latest->has_value() && (*latest)->epoch > options_.epoch) {
      if (absl::Status size = CheckSize(**latest); !size.ok()) {
        if ((*latest)->epoch != refused_epoch_)
          TANDEM_LOG(error, "elastic: refusing {}; keeping epoch {}", std::string(size.message()),
                     options_.epoch);
        refused_epoch_ = (*latest)->epoch;
      } else {
        body = api::RenderMembership(**latest);
        header[0] = (*latest)->epoch;
        header[1] = static_cast<int64_t>(body.size());
      }
    }
  }
  TANDEM_RETURN_IF_ERROR(dp_.Broadcast(header, sizeof(header), 0), "elastic: membership poll");
  if (header[0] < 0) return std::optional<api::Membership>();
  body.resize(static_cast<size_t>(header[1]));
  TANDEM_RETURN_IF_ERROR(dp_.Broadcast(body.data(), body.size(), 0), "elastic: membership");
  TANDEM_ASSIGN_OR_RETURN(api::Membership m, api::ParseMembership(body, "from rank 0"));
  return std::optional<api::Membership>(std::move(m));
}

absl::StatusOr<api::Membership> ElasticWorld::AwaitNewMembership() {
  const absl::Time deadline = absl::Now() + options_.membership_timeout;
  std::string last_error;
  while (true) {
    absl::StatusOr<std::optional<api::Membership>> latest = options_.source->Latest();
    if (latest.ok() && latest->has_value() && (*latest)->epoch > options_.epoch) {
      if (absl::Status size = CheckSize(**latest); size.ok()) return **latest;
      else last_error = std::string(size.message());
    } else if (!latest.ok()) {
      last_error = std::string(latest.status().message());
    }
    if (options_.stop != nullptr && options_.stop->load())
      return absl::CancelledError("elastic: stopped while waiting for the next membership");
    if (absl::Now() >= deadline)
      return absl::DeadlineExceededError(absl::StrCat(
          "elastic: no membership newer than epoch ", options_.epoch, " within ",
          absl::FormatDuration(options_.membership_timeout), " after a peer failed",
          last_error.empty() ? "" : absl::StrCat(" (", last_error, ")")));
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(options_.poll_interval));
  }
}

// The first join. The membership a trainer reads may be older than a peer's (each pod's mounted
// file is refreshed at its own kubelet sync): the ring's handshake carries the epoch, so a
// trainer behind hears the newer epoch from a peer (NewerEpochError) and waits for its source to
// show it, while one ahead refuses the older peer and keeps waiting for its own. A rendezvous that
// fails or times out for any other reason (a peer that left it for another epoch) is retried at
// whatever epoch the source shows then.
absl::StatusOr<bool> ElasticWorld::Join(const std::function<void()>& ready) {
  if (dp_.connected()) return true;
  if (ready) ready();
  const absl::Time deadline = absl::Now() + options_.membership_timeout;
  int64_t heard = -1;  // the newest epoch a peer was heard in
  int64_t named = -1;  // the newest epoch that named this trainer
  std::string last_error;
  while (true) {
    absl::StatusOr<std::optional<api::Membership>> latest = options_.source->Latest();
    if (!latest.ok()) {
      last_error = std::string(latest.status().message());
    } else if (latest->has_value() && (*latest)->epoch >= heard) {
      const api::Membership m = **latest;
      if (m.RankOf(options_.self) < 0) {
        if (named >= 0) {
          leave_reason_ = absl::StrCat("not in membership epoch ", m.epoch, " (", m.reason,
                                       "), published while this trainer started in epoch ", named);
          TANDEM_LOG(info, "elastic: {}: leaving the job before its first step", leave_reason_);
          return false;
        }
      } else {
        if (named < 0)
          TANDEM_LOG(info, "elastic: joining the ring of membership epoch {} as rank {} of {}",
                     m.epoch, m.RankOf(options_.self), m.world_size());
        else if (m.epoch != named)
          TANDEM_LOG(info, "elastic: membership changed during start-up: epoch {} -> {}, joining at {}",
                     named, m.epoch, m.epoch);
        named = m.epoch;
        const int64_t joining = m.epoch;
        // While this rendezvous waits, the source moving on ends it: the ring of `joining` may
        // never form (a peer that read the newer epoch first is waiting in that one).
        const auto keep_waiting = [this, joining]() -> absl::Status {
          if (options_.stop != nullptr && options_.stop->load())
            return absl::CancelledError("elastic: stopped before joining the job");
          absl::StatusOr<std::optional<api::Membership>> now = options_.source->Latest();
          if (now.ok() && now->has_value() && (*now)->epoch > joining)
            return absl::AbortedError(absl::StrCat("membership epoch ", (*now)->epoch,
                                                   " was published during the rendezvous"));
          return absl::OkStatus();
        };
        options_.epoch = -1;
        absl::StatusOr<bool> joined = EnterAndSettle(m, keep_waiting, /*resize=*/false);
        if (joined.ok()) return *joined;
        options_.epoch = -1;  // not in any ring yet
        if (epoch_gauge_ != nullptr) epoch_gauge_->Set(-1);
        last_error = std::string(joined.status().message());
        if (std::optional<int64_t> newer = collective::NewerEpochOf(joined.status())) {
          if (*newer > heard) {
            heard = *newer;
            if (heard > m.epoch) {
              TANDEM_LOG(info, "elastic: a peer is in membership epoch {} while this trainer's "
                         "membership says epoch {}: waiting for it to show epoch {} ({})",
                         heard, m.epoch, heard, last_error);
              if (options_.on_behind) options_.on_behind(m.epoch, heard);
            }
          }
        } else if (absl::IsCancelled(joined.status())) {
          return joined.status();
        } else if (!collective::IsPeerFailure(joined.status()) &&
                   !absl::IsAborted(joined.status())) {
          return joined.status();  // a membership refused, a ring of another job
        } else {
          TANDEM_LOG(warn, "elastic: joining the ring of membership epoch {} failed ({}); reading "
                     "the membership again", m.epoch, last_error);
        }
      }
    }
    if (options_.stop != nullptr && options_.stop->load())
      return absl::CancelledError("elastic: stopped before joining the job");
    if (absl::Now() >= deadline)
      return absl::DeadlineExceededError(absl::StrCat(
          "elastic: ", options_.self.ToString(),
          named < 0 ? " was not made a member of the job within "
                    : " could not join the ring of its membership within ",
          absl::FormatDuration(options_.membership_timeout),
          last_error.empty() ? "" : absl::StrCat(" (", last_error, ")")));
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(options_.poll_interval));
  }
}

absl::StatusOr<bool> ElasticWorld::Enter(const api::Membership& m) {
  TANDEM_RETURN_IF_ERROR(CheckSize(m));
  if (m.RankOf(options_.self) < 0) {
    leave_reason_ = absl::StrCat("not in membership epoch ", m.epoch, " (", m.reason, ")");
    return false;
  }
  return EnterAndSettle(m, nullptr, /*resize=*/options_.epoch >= 0);
}

absl::StatusOr<bool> ElasticWorld::Connect(const api::Membership& m,
                                           const std::function<absl::Status()>& keep_waiting,
                                           bool resize) {
  TANDEM_RETURN_IF_ERROR(CheckSize(m));
  const int rank = m.RankOf(options_.self);
  if (rank < 0) return false;
  TANDEM_ASSIGN_OR_RETURN(collective::PeerList peers,
                          collective::MakePeerList(m.peers, rank, m.world_size()));
  TANDEM_RETURN_IF_ERROR(
      dp_.Reconnect([&] { return options_.connect(peers, m.epoch, keep_waiting); }),
      "elastic: joining the ring of membership epoch ", m.epoch);
  if (resizes_ != nullptr && resize) resizes_->Inc();
  options_.epoch = m.epoch;
  reason_ = m.reason;
  membership_ = m;
  if (epoch_gauge_ != nullptr) epoch_gauge_->Set(static_cast<double>(m.epoch));
  if (world_gauge_ != nullptr) world_gauge_->Set(m.world_size());
  return true;
}

absl::StatusOr<bool> ElasticWorld::EnterAndSettle(const api::Membership& m,
                                                  const std::function<absl::Status()>& keep_waiting,
                                                  bool resize) {
  TANDEM_ASSIGN_OR_RETURN(const bool member, Connect(m, keep_waiting, resize));
  if (!member) return false;
  // A rendezvous can succeed on a rank whose neighbour then abandoned its own (it went on to
  // another epoch), leaving a dead link. Every link carries data in an all-gather, and no rank
  // completes the second one unless every rank completed the first: so either every rank
  // settles in this ring or none does (each then retries, in Join), never some.
  for (int round = 0; round < 2; ++round) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> epochs, dp_.AllGather(options_.epoch));
    for (size_t r = 0; r < epochs.size(); ++r)
      if (epochs[r] != options_.epoch)
        return absl::FailedPreconditionError(absl::StrCat(
            "elastic: rank ", r, " entered membership epoch ", epochs[r], ", this rank ",
            options_.epoch));
  }
  return true;
}

absl::StatusOr<bool> ElasticWorld::AgreeOnState(bool live, ElasticPosition* position,
                                                Network& net, Optimizer& optimizer) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> steps, dp_.AllGather(live ? position->step : -1));
  const auto highest = std::max_element(steps.begin(), steps.end());
  if (*highest < 0) return false;
  const int source = static_cast<int>(highest - steps.begin());
  int64_t packed[7] = {position->step, position->pass, position->pass_offset, 0, 0,
                       position->ramp_start, 0};
  std::memcpy(&packed[3], &position->lr_from, sizeof(double));
  std::memcpy(&packed[4], &position->lr_to, sizeof(double));
  TANDEM_RETURN_IF_ERROR(dp_.Broadcast(packed, sizeof(packed), source),
                         "elastic: rank ", source, "'s position");
  position->step = packed[0];
  position->pass = packed[1];
  position->pass_offset = packed[2];
  std::memcpy(&position->lr_from, &packed[3], sizeof(double));
  std::memcpy(&position->lr_to, &packed[4], sizeof(double));
  position->ramp_start = packed[5];
  TANDEM_RETURN_IF_ERROR(dp_.SyncState(net, optimizer, source));
  return true;
}

double ElasticWorld::LearningRateScale(const ElasticPosition& p, int64_t step) const {
  const int64_t warmup = options_.policy.warmup_steps;
  if (warmup <= 0 || step >= p.ramp_start + warmup) return p.lr_to;
  const double t = static_cast<double>(std::max<int64_t>(0, step - p.ramp_start)) /
                   static_cast<double>(warmup);
  return p.lr_from + (p.lr_to - p.lr_from) * t;
}

void ElasticWorld::RescaleLearningRate(int world, ElasticPosition* p) const {
  const double target = options_.policy.policy == api::kElasticLinear
                            ? static_cast<double>(world) / options_.reference_workers
                            : 1.0;
  p->lr_from = LearningRateScale(*p, p->step);
  p->lr_to = target;
  p->ramp_start = p->step;
}

namespace {

std::string PositionsFile(const std::string& dir) { return dir + "/elastic-positions.json"; }

nlohmann::json ReadPositions(const std::string& dir) {
  std::ifstream in(PositionsFile(dir));
  if (!in) return nlohmann::json::array();
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  return j.is_array() ? j : nlohmann::json::array();
}

}  // namespace

absl::Status SaveElasticPosition(const std::string& dir, const ElasticPosition& p, int keep) {
  nlohmann::json all = ReadPositions(dir);
  nlohmann::json kept = nlohmann::json::array();
  for (const nlohmann::json& e : all)
    if (e.is_object() && e.value("step", int64_t{-1}) != p.step) kept.push_back(e);
  kept.push_back({{"step", p.step}, {"pass", p.pass}, {"passOffset", p.pass_offset},
                  {"lrFrom", p.lr_from}, {"lrTo", p.lr_to}, {"rampStart", p.ramp_start}});
  while (static_cast<int>(kept.size()) > keep) kept.erase(kept.begin());
  const std::string path = PositionsFile(dir), temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << kept.dump() << '\n';
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", temp));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0)
    return absl::InternalError(absl::StrCat("cannot rename ", temp, " to ", path));
  return absl::OkStatus();
}

std::optional<ElasticPosition> LoadElasticPosition(const std::string& dir, int64_t step) {
  for (const nlohmann::json& e : ReadPositions(dir)) {
    if (!e.is_object() || e.value("step", int64_t{-1}) != step) continue;
    ElasticPosition p;
    p.step = step;
    p.pass = e.value("pass", int64_t{0});
    p.pass_offset = e.value("passOffset", int64_t{0});
    p.lr_from = e.value("lrFrom", 1.0);
    p.lr_to = e.value("lrTo", 1.0);
    p.ramp_start = e.value("rampStart", int64_t{0});
    return p;
  }
  return std::nullopt;
}

}  // namespace tandem::trainer
