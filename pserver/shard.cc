#include "pserver/shard.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status.h"
#include "google/protobuf/util/message_differencer.h"
#include "pserver/initializer.h"
#include "pserver/placement.h"

namespace tandem::pserver {
namespace {

bool AllFinite(const float* v, size_t n) {
  // Sum-free scan: a NaN or an infinity anywhere fails the test.
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return false;
  return true;
}

const char* KindName(TableConfig::Kind kind) {
  return kind == TableConfig::DENSE ? "dense" : kind == TableConfig::SPARSE ? "sparse" : "unset";
}

}  // namespace

Shard::Shard(const ShardOptions& options)
    : options_(options),
      placement_(options.members.empty()
                     ? Placement::Modulo(options.num_shards)
                     : Placement::Rendezvous(options.placement_epoch, options.members)),
      frozen_(options.joining),
      num_trainers_(options.num_trainers),
      newest_step_(options.num_trainers, 0),
      seen_rank_(options.num_trainers, false),
      async_step_(options.num_trainers, 0),
      async_seqs_(options.num_trainers),
      joined_(options.num_trainers, false),
      async_restored_step_(0) {}  // a fresh shard holds the state of step 0

Shard::~Shard() { Shutdown(); }

void Shard::SetVersionListener(std::function<void(uint64_t)> listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

void Shard::NotifyVersion(uint64_t version) {
  std::function<void(uint64_t)> listener;
  {
    absl::MutexLock lock(&mu_);
    listener = listener_;
  }
  if (listener) listener(version);
}

uint64_t Shard::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}
uint64_t Shard::steps_lost() const {
  absl::MutexLock lock(&mu_);
  return steps_lost_;
}
uint64_t Shard::restored_version() const {
  absl::MutexLock lock(&mu_);
  return restored_version_;
}

void Shard::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
  }
  applied_cv_.SignalAll();
}

// ---- Tables ------------------------------------------------------------------------------------

absl::Status Shard::ValidateConfig(const TableConfig& c) const {
  const std::string where = absl::StrCat("table ", c.id(), " '", c.name(), "'");
  if (c.name().empty() || c.name().size() > 256)
    return absl::InvalidArgumentError(absl::StrCat(where, ": name must have 1..256 bytes"));
  switch (c.kind()) {
    case TableConfig::SPARSE:
      if (c.dim() == 0 || c.dim() > options_.max_dim)
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": dim ", c.dim(), " must be in [1, ", options_.max_dim, "]"));
      break;
    case TableConfig::DENSE:
      if (c.size() == 0 || c.size() > options_.max_dense_size)
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": size ", c.size(), " must be in [1, ", options_.max_dense_size, "]"));
      if (c.block_size() == 0 || c.block_size() > options_.max_block_size)
        return absl::InvalidArgumentError(absl::StrCat(where, ": blockSize ", c.block_size(),
                                                       " must be in [1, ", options_.max_block_size,
                                                       "]"));
      if (NumBlocks(c.size(), c.block_size()) > (uint64_t{1} << 32) - 1)
        return absl::InvalidArgumentError(absl::StrCat(where, ": too many blocks"));
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(where, ": kind must be DENSE or SPARSE"));
  }
  if (absl::Status s = ValidateInitializer(c.init()); !s.ok())
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", s.message()));
  if (auto o = Optimizer::FromConfig(c.optimizer()); !o.ok())
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", o.status().message()));
  return absl::OkStatus();
}

absl::Status Shard::RegisterTable(const RegisterTableRequest& req, RegisterTableResponse* resp) {
  const TableConfig& c = req.table();
  if (absl::Status s = ValidateConfig(c); !s.ok()) return s;
  absl::ReaderMutexLock serve(&serve_mu_);
  if (frozen_)
    return absl::UnavailableError(
        absl::StrCat("shard ", options_.shard, " is resharding; retry the registration"));
  absl::MutexLock lock(&tables_mu_);
  if (auto it = tables_.find(c.id()); it != tables_.end()) {
    if (!google::protobuf::util::MessageDifferencer::Equals(it->second->config, c))
      return absl::AlreadyExistsError(absl::StrCat("table ", c.id(), " is already registered as '",
                                                   it->second->config.name(),
                                                   "' with a different declaration"));
    resp->set_created(false);
    return absl::OkStatus();
  }
  for (const auto& [id, entry] : tables_)
    if (entry->config.name() == c.name())
      return absl::AlreadyExistsError(
          absl::StrCat("table name '", c.name(), "' is already used by table ", id));
  if (tables_.size() >= options_.max_tables)
    return absl::ResourceExhaustedError(
        absl::StrCat("this shard already holds ", tables_.size(), " tables (the limit)"));
  auto entry = std::make_unique<TableEntry>();
  entry->config = c;
  const Optimizer opt = *Optimizer::FromConfig(c.optimizer());
  if (c.kind() == TableConfig::SPARSE)
    entry->sparse = std::make_unique<SparseTable>(c, opt);
  else
    entry->dense = std::make_unique<DenseTable>(c, opt, placement_, options_.shard);
  tables_[c.id()] = std::move(entry);
  resp->set_created(true);
  return absl::OkStatus();
}

absl::StatusOr<Shard::TableEntry*> Shard::FindTable(uint32_t id, TableConfig::Kind kind) const {
  absl::ReaderMutexLock lock(&tables_mu_);
  auto it = tables_.find(id);
  if (it == tables_.end())
    return absl::NotFoundError(
        absl::StrCat("table ", id, " is not registered on shard ", options_.shard));
  if (it->second->config.kind() != kind)
    return absl::InvalidArgumentError(absl::StrCat("table ", id, " '", it->second->config.name(),
                                                   "' is ", KindName(it->second->config.kind()),
                                                   ", not ", KindName(kind)));
  // Entries are never removed, so the pointer outlives the lock.
  return it->second.get();
}

absl::Status Shard::ValidateHeader(const PushHeader& h) const {
  if (h.rank() >= num_trainers_.load())
    return absl::InvalidArgumentError(absl::StrCat("push: rank ", h.rank(), " is not below ",
                                                   num_trainers_.load(), " trainers"));
  return absl::OkStatus();
}

// ---- Pulls -------------------------------------------------------------------------------------

absl::Status Shard::PullSparse(const PullSparseRequest& req, PullSparseResponse* resp) {
  absl::ReaderMutexLock serve(&serve_mu_);
  TANDEM_RETURN_IF_ERROR(CheckServingLocked(req.placement_epoch(), "pull"));
  TANDEM_ASSIGN_OR_RETURN(TableEntry * t, FindTable(req.table_id(), TableConfig::SPARSE));
  for (uint64_t key : req.keys()) TANDEM_RETURN_IF_ERROR(CheckOwnerLocked(key, t->config, "pull"));
  const uint64_t n64 = static_cast<uint64_t>(req.keys_size()) * t->config.dim();
  if (n64 > options_.max_response_floats)
    return absl::InvalidArgumentError(
        absl::StrCat("pull: ", req.keys_size(), " rows of dim ", t->config.dim(), " exceed the ",
                     options_.max_response_floats, "-float answer limit; split the request"));
  resp->set_version(version());
  const size_t n = static_cast<size_t>(n64);
  resp->mutable_values()->Resize(static_cast<int>(n), 0.0f);
  t->sparse->Pull(absl::MakeConstSpan(req.keys().data(), req.keys_size()),
                  absl::MakeSpan(resp->mutable_values()->mutable_data(), n));
  return absl::OkStatus();
}

absl::Status Shard::PullDense(const PullDenseRequest& req, PullDenseResponse* resp) {
  absl::ReaderMutexLock serve(&serve_mu_);
  TANDEM_RETURN_IF_ERROR(CheckServingLocked(req.placement_epoch(), "pull"));
  TANDEM_ASSIGN_OR_RETURN(TableEntry * t, FindTable(req.table_id(), TableConfig::DENSE));
  size_t total = 0;
  for (uint32_t b : req.block_ids()) {
    if (!t->dense->Owns(b))
      return absl::InvalidArgumentError(absl::StrCat("pull: block ", b, " of table '",
                                                     t->config.name(), "' is not on shard ",
                                                     options_.shard));
    total += t->dense->BlockLength(b);
  }
  if (total > options_.max_response_floats)
    return absl::InvalidArgumentError(absl::StrCat("pull: ", total, " floats exceed the ",
                                                   options_.max_response_floats,
                                                   "-float answer limit; split the request"));
  resp->set_version(version());
  resp->mutable_values()->Resize(static_cast<int>(total), 0.0f);
  float* out = resp->mutable_values()->mutable_data();
  for (uint32_t b : req.block_ids()) {
    const uint32_t len = t->dense->BlockLength(b);
    t->dense->Pull(b, absl::MakeSpan(out, len));
    out += len;
  }
  return absl::OkStatus();
}

// ---- Pushes ------------------------------------------------------------------------------------

void Shard::NoteFirstStepLocked(uint64_t step) {
  if (!awaiting_first_step_) return;
  awaiting_first_step_ = false;
  if (step > version_) {
    steps_lost_ += step - version_;
    version_ = step;
  }
}

Shard::PendingStep& Shard::PendingLocked(uint64_t step) {
  PendingStep& p = pending_[step];
  if (p.seqs.empty()) {
    p.seqs.resize(num_trainers_.load());
    p.arrived.assign(num_trainers_.load(), false);
  }
  return p;
}

bool Shard::TryApplyLocked() {
  bool any = false;
  const float scale = 1.0f / static_cast<float>(num_trainers_.load());
  while (true) {
    auto it = pending_.find(version_);
    if (it == pending_.end()) {
      // No push and no barrier for this step yet: it can only complete if every rank has
      // already moved past it (after a restart).
      bool all_past = true;
      for (uint32_t r = 0; r < num_trainers_.load(); ++r)
        all_past &= seen_rank_[r] && newest_step_[r] > version_;
      if (!all_past) break;
      ++version_;
      any = true;
      continue;
    }
    PendingStep& p = it->second;
    bool ready = true;
    for (uint32_t r = 0; r < num_trainers_.load(); ++r)
      ready &= p.arrived[r] || (seen_rank_[r] && newest_step_[r] > version_);
    if (!ready) break;
    absl::ReaderMutexLock tables_lock(&tables_mu_);
    for (auto& [table_id, pt] : p.tables) {
      auto t = tables_.find(table_id);
      if (t == tables_.end()) continue;  // cannot happen: pushes validated the table
      if (t->second->sparse) {
        t->second->sparse->Apply(pt.keys, pt.grads, scale);
      } else {
        for (size_t i = 0; i < pt.keys.size(); ++i) {
          const uint32_t block = static_cast<uint32_t>(pt.keys[i]);
          t->second->dense->Apply(block,
                                  absl::MakeConstSpan(pt.grads.data() + pt.offsets[i],
                                                      t->second->dense->BlockLength(block)),
                                  scale);
        }
      }
    }
    pending_.erase(it);
    ++version_;
    restored_awaiting_ = false;  // a step completed after the restart: the trainers are here
    any = true;
  }
  return any;
}

absl::Status Shard::Push(const PushHeader& h, uint32_t table_id,
                         const std::function<void(PendingTable&)>& accumulate,
                         const std::function<void()>& apply, PushResponse* resp) {
  uint64_t new_version = 0;
  bool advanced = false;
  resp->Clear();
  {
    absl::MutexLock lock(&mu_);
    const uint64_t before = version_;
    TANDEM_RETURN_IF_ERROR(CheckCutLocked(h.rank(), h.step(), "push"));
    NoteFirstStepLocked(h.step());
    if (h.step() > version_ + options_.max_step_lead)
      return absl::InvalidArgumentError(
          absl::StrCat("push: step ", h.step(), " is more than ", options_.max_step_lead,
                       " steps ahead of shard ", options_.shard, " (at ", version_, ")"));
    if (!seen_rank_[h.rank()] || h.step() > newest_step_[h.rank()])
      newest_step_[h.rank()] = h.step();
    seen_rank_[h.rank()] = true;
    if (options_.sync) {
      if (h.step() < version_) {
        resp->set_ignored(true);
      } else {
        PendingStep& p = PendingLocked(h.step());
        if (!p.seqs[h.rank()].insert(h.seq()).second) {
          resp->set_ignored(true);
        } else {
          accumulate(p.tables[table_id]);
        }
        TryApplyLocked();
      }
    } else {
      if (async_step_[h.rank()] != h.step()) {
        async_step_[h.rank()] = h.step();
        async_seqs_[h.rank()].clear();
      }
      if (!async_seqs_[h.rank()].insert(h.seq()).second) {
        resp->set_ignored(true);
      } else if (version_ > h.based_on_version() &&
                 version_ - h.based_on_version() > options_.staleness) {
        resp->set_dropped_stale(true);
        ++stale_dropped_;
      } else {
        version_ = std::max(version_, h.step() + 1);
      }
    }
    advanced = version_ != before;
    new_version = version_;
    resp->set_version(version_);
    resp->set_steps_lost(steps_lost_);
  }
  // Async updates run outside the step lock: rows and blocks have their own locks.
  if (!options_.sync && !resp->dropped_stale() && !resp->ignored()) apply();
  if (advanced) {
    applied_cv_.SignalAll();
    NotifyVersion(new_version);
  }
  return absl::OkStatus();
}

absl::Status Shard::PushSparse(const PushSparseRequest& req, PushResponse* resp) {
  absl::ReaderMutexLock serve(&serve_mu_);  // the trainer count changes only under it
  TANDEM_RETURN_IF_ERROR(ValidateHeader(req.header()));
  TANDEM_RETURN_IF_ERROR(CheckServingLocked(req.header().placement_epoch(), "push"));
  TANDEM_ASSIGN_OR_RETURN(TableEntry * t, FindTable(req.table_id(), TableConfig::SPARSE));
  const uint32_t dim = t->config.dim();
  if (static_cast<uint64_t>(req.grads_size()) != static_cast<uint64_t>(req.keys_size()) * dim)
    return absl::InvalidArgumentError(absl::StrCat(
        "push: table '", t->config.name(), "' has dim ", dim, ": ", req.keys_size(), " keys need ",
        static_cast<uint64_t>(req.keys_size()) * dim, " gradients, got ", req.grads_size()));
  for (uint64_t key : req.keys()) TANDEM_RETURN_IF_ERROR(CheckOwnerLocked(key, t->config, "push"));
  if (!AllFinite(req.grads().data(), req.grads_size()))
    return absl::InvalidArgumentError(
        absl::StrCat("push: table '", t->config.name(), "': gradients must be finite"));
  const auto keys = absl::MakeConstSpan(req.keys().data(), req.keys_size());
  const auto grads = absl::MakeConstSpan(req.grads().data(), req.grads_size());
  return Push(
      req.header(), req.table_id(),
      [&](PendingTable& pt) {
        for (size_t i = 0; i < keys.size(); ++i) {
          auto [it, inserted] =
              pt.index.try_emplace(keys[i], static_cast<uint32_t>(pt.keys.size()));
          const float* g = grads.data() + i * dim;
          if (inserted) {
            pt.keys.push_back(keys[i]);
            pt.grads.insert(pt.grads.end(), g, g + dim);
          } else {
            float* acc = pt.grads.data() + static_cast<size_t>(it->second) * dim;
            for (uint32_t j = 0; j < dim; ++j) acc[j] += g[j];
          }
        }
      },
      [&] { t->sparse->Apply(keys, grads, 1.0f); }, resp);
}

absl::Status Shard::PushDense(const PushDenseRequest& req, PushResponse* resp) {
  absl::ReaderMutexLock serve(&serve_mu_);  // the trainer count changes only under it
  TANDEM_RETURN_IF_ERROR(ValidateHeader(req.header()));
  TANDEM_RETURN_IF_ERROR(CheckServingLocked(req.header().placement_epoch(), "push"));
  TANDEM_ASSIGN_OR_RETURN(TableEntry * t, FindTable(req.table_id(), TableConfig::DENSE));
  uint64_t total = 0;
  absl::flat_hash_set<uint32_t> seen;
  for (uint32_t b : req.block_ids()) {
    if (!t->dense->Owns(b))
      return absl::InvalidArgumentError(absl::StrCat("push: block ", b, " of table '",
                                                     t->config.name(), "' is not on shard ",
                                                     options_.shard));
    if (!seen.insert(b).second)
      return absl::InvalidArgumentError(absl::StrCat("push: block ", b, " repeated"));
    total += t->dense->BlockLength(b);
  }
  if (total != static_cast<uint64_t>(req.grads_size()))
    return absl::InvalidArgumentError(absl::StrCat("push: table '", t->config.name(),
                                                   "': ", req.block_ids_size(), " blocks need ",
                                                   total, " gradients, got ", req.grads_size()));
  if (!AllFinite(req.grads().data(), req.grads_size()))
    return absl::InvalidArgumentError(
        absl::StrCat("push: table '", t->config.name(), "': gradients must be finite"));
  const float* grads = req.grads().data();
  return Push(
      req.header(), req.table_id(),
      [&](PendingTable& pt) {
        size_t offset = 0;
        for (uint32_t b : req.block_ids()) {
          const uint32_t len = t->dense->BlockLength(b);
          auto [it, inserted] = pt.index.try_emplace(b, static_cast<uint32_t>(pt.keys.size()));
          if (inserted) {
            pt.keys.push_back(b);
            pt.offsets.push_back(static_cast<uint32_t>(pt.grads.size()));
            pt.grads.insert(pt.grads.end(), grads + offset, grads + offset + len);
          } else {
            float* acc = pt.grads.data() + pt.offsets[it->second];
            for (uint32_t j = 0; j < len; ++j) acc[j] += grads[offset + j];
          }
          offset += len;
        }
      },
      [&] {
        size_t offset = 0;
        for (uint32_t b : req.block_ids()) {
          const uint32_t len = t->dense->BlockLength(b);
          t->dense->Apply(b, absl::MakeConstSpan(grads + offset, len), 1.0f);
          offset += len;
        }
      },
      resp);
}

// ---- Barrier -----------------------------------------------------------------------------------

absl::Status Shard::StepBarrier(const StepBarrierRequest& req, absl::Time deadline,
                                StepBarrierResponse* resp) {
  if (req.rank() >= num_trainers_.load())
    return absl::InvalidArgumentError(absl::StrCat("barrier: rank ", req.rank(), " is not below ",
                                                   num_trainers_.load(), " trainers"));
  uint64_t new_version = 0;
  bool advanced = false;
  absl::Status result = absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("shard is shutting down");
    if (frozen_)
      return absl::UnavailableError(
          absl::StrCat("shard ", options_.shard, " is resharding; retry the barrier"));
    if (req.rank() >= num_trainers_.load())  // again: a reshard may have changed it
      return absl::InvalidArgumentError(absl::StrCat("barrier: rank ", req.rank(),
                                                     " is not below ", num_trainers_.load(),
                                                     " trainers"));
    if (options_.sync) {
      const uint64_t before = version_;
      TANDEM_RETURN_IF_ERROR(CheckCutLocked(req.rank(), req.step(), "barrier"));
      const uint64_t generation = generation_;
      NoteFirstStepLocked(req.step());
      if (req.step() > version_ + options_.max_step_lead)
        return absl::InvalidArgumentError(
            absl::StrCat("barrier: step ", req.step(), " is more than ", options_.max_step_lead,
                         " steps ahead of shard ", options_.shard, " (at ", version_, ")"));
      if (!seen_rank_[req.rank()] || req.step() > newest_step_[req.rank()])
        newest_step_[req.rank()] = req.step();
      seen_rank_[req.rank()] = true;
      if (req.step() >= version_) {
        PendingStep& p = PendingLocked(req.step());
        const size_t have = p.seqs[req.rank()].size();
        if (have < req.num_pushes()) {
          result = absl::FailedPreconditionError(absl::StrCat(
              "barrier: shard ", options_.shard, " has ", have, " of the ", req.num_pushes(),
              " pushes of rank ", req.rank(), " for step ", req.step(), " (it restarted?)"));
        } else {
          p.arrived[req.rank()] = true;
          TryApplyLocked();
        }
      }
      advanced = version_ != before;
      new_version = version_;
      if (advanced) applied_cv_.SignalAll();
      if (result.ok()) {
        const auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return version_ > req.step() || shutdown_ || generation_ != generation;
        };
        while (!done()) {
          if (applied_cv_.WaitWithDeadline(&mu_, deadline) && absl::Now() >= deadline) break;
        }
        if (version_ <= req.step() && generation_ != generation)
          result = absl::AbortedError(absl::StrCat(
              "barrier: step ", req.step(), " on shard ", options_.shard,
              " was aborted (a trainer restarted or the shard was rolled back): every trainer "
              "resumes from the last consistent checkpoint"));
        else if (version_ <= req.step())
          result = shutdown_ ? absl::UnavailableError("shard is shutting down")
                             : absl::DeadlineExceededError(absl::StrCat(
                                   "barrier: step ", req.step(), " not complete on shard ",
                                   options_.shard, " (waiting for other trainers)"));
      }
    }
    resp->set_version(version_);
    resp->set_steps_lost(steps_lost_);
  }
  if (advanced) NotifyVersion(new_version);
  return result;
}

// ---- Status and checkpoints --------------------------------------------------------------------

void Shard::FillStatus(StatusResponse* resp) const {
  resp->set_shard(options_.shard);
  {
    absl::ReaderMutexLock serve(&serve_mu_);
    resp->set_num_shards(placement_.size());
    resp->set_rendezvous(placement_.rendezvous());
    resp->set_placement_epoch(placement_.epoch());
    for (uint32_t id : placement_.ids()) resp->add_members(id);
    resp->set_resharding(frozen_);
  }
  resp->set_sync_mode(options_.sync);
  resp->set_num_trainers(num_trainers_.load());
  {
    absl::MutexLock lock(&mu_);
    resp->set_version(version_);
    resp->set_steps_lost(steps_lost_);
    resp->set_restored_version(restored_version_);
    resp->set_stale_dropped(stale_dropped_);
  }
  absl::ReaderMutexLock lock(&tables_mu_);
  for (const auto& [id, t] : tables_) {
    TableStatus* s = resp->add_tables();
    s->set_id(id);
    s->set_name(t->config.name());
    s->set_kind(t->config.kind());
    if (t->sparse) {
      s->set_rows(t->sparse->rows());
      s->set_floats(t->sparse->rows() * t->config.dim());
    } else {
      s->set_rows(t->dense->owned_blocks());
      s->set_floats(t->dense->owned_floats());
    }
  }
}

ShardState Shard::Snapshot() const {
  // Holding the step lock keeps sync steps from being applied while tables are copied.
  absl::MutexLock lock(&mu_);
  return SnapshotLocked();
}

ShardState Shard::SnapshotLocked() const {
  ShardState state;
  state.shard = options_.shard;
  state.num_shards = options_.num_shards;
  state.cut_mode = cut_mode_;
  state.version = version_;
  state.steps_lost = steps_lost_;
  absl::ReaderMutexLock tables_lock(&tables_mu_);
  for (const auto& [id, t] : tables_) {
    ShardState::Table table;
    table.config = t->config;
    table.data = t->sparse ? t->sparse->Snapshot() : t->dense->Snapshot();
    state.tables.push_back(std::move(table));
  }
  return state;
}

absl::StatusOr<std::map<uint32_t, std::unique_ptr<Shard::TableEntry>>> Shard::BuildTables(
    const std::vector<ShardState::Table>& tables, bool initial) const {
  std::map<uint32_t, std::unique_ptr<TableEntry>> out;
  for (const ShardState::Table& st : tables) {
    TANDEM_RETURN_IF_ERROR(ValidateConfig(st.config), "checkpoint");
    auto entry = std::make_unique<TableEntry>();
    entry->config = st.config;
    const Optimizer opt = *Optimizer::FromConfig(st.config.optimizer());
    if (st.config.kind() == TableConfig::SPARSE) {
      entry->sparse = std::make_unique<SparseTable>(st.config, opt);
      if (!initial) TANDEM_RETURN_IF_ERROR(entry->sparse->Restore(st.data), "checkpoint");
    } else {
      entry->dense =
          std::make_unique<DenseTable>(st.config, opt, PlacementUnlocked(), options_.shard);
      if (!initial) TANDEM_RETURN_IF_ERROR(entry->dense->Restore(st.data), "checkpoint");
    }
    if (!out.emplace(st.config.id(), std::move(entry)).second)
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint declares table ", st.config.id(), " twice"));
  }
  return out;
}

void Shard::ReplaceTablesLocked(std::map<uint32_t, std::unique_ptr<TableEntry>> tables) {
  absl::MutexLock lock(&tables_mu_);
  for (auto& [id, entry] : tables_) retired_tables_.push_back(std::move(entry));
  tables_ = std::move(tables);
}

absl::Status Shard::Restore(const ShardState& state) {
  if (state.shard != options_.shard || state.num_shards != options_.num_shards)
    return absl::InvalidArgumentError(absl::StrCat("checkpoint belongs to shard ", state.shard,
                                                   " of ", state.num_shards, ", this is shard ",
                                                   options_.shard, " of ", options_.num_shards));
  TANDEM_ASSIGN_OR_RETURN(auto tables, BuildTables(state.tables, /*initial=*/false));
  absl::MutexLock lock(&mu_);
  ReplaceTablesLocked(std::move(tables));
  version_ = state.version;
  restored_version_ = state.version;
  steps_lost_ = state.steps_lost;
  cut_mode_ = state.cut_mode;
  // Trainers driving consistent checkpoints hold their own state of some step: they roll this
  // shard back (RestoreToStep) instead of it fast-forwarding to theirs.
  restored_awaiting_ = options_.sync && state.cut_mode;
  restart_loss_noted_ = false;
  async_restored_step_.reset();
  awaiting_first_step_ = !restored_awaiting_;
  pending_.clear();
  return absl::OkStatus();
}

// ---- Consistent cut ----------------------------------------------------------------------------

bool Shard::cut_mode() const {
  absl::MutexLock lock(&mu_);
  return cut_mode_;
}

absl::Status Shard::CheckCutLocked(uint32_t rank, uint64_t step, const char* what) {
  if (!options_.sync) return absl::OkStatus();
  if (rejoin_pending_)
    return absl::AbortedError(absl::StrCat(
        "shard ", options_.shard, ": a trainer restarted, so the ", what, " of rank ", rank,
        " for step ", step, " is refused until every trainer resumes from the last consistent "
        "checkpoint"));
  if ((cut_mode_ || restored_awaiting_) && step > version_) {
    if (restored_awaiting_ && !restart_loss_noted_) {
      steps_lost_ += step - version_;
      restart_loss_noted_ = true;
    }
    return absl::AbortedError(absl::StrCat(
        "shard ", options_.shard, " is at step ", version_,
        restored_awaiting_ ? " (restored from its checkpoint after a restart)" : "", " but rank ",
        rank, " sent a ", what, " for step ", step,
        ": every trainer resumes from the last consistent checkpoint"));
  }
  return absl::OkStatus();
}

absl::Status Shard::Join(const JoinRequest& req, JoinResponse* resp) {
  if (req.rank() >= num_trainers_.load())
    return absl::InvalidArgumentError(absl::StrCat("join: rank ", req.rank(), " is not below ",
                                                   num_trainers_.load(), " trainers"));
  bool aborted = false;
  {
    absl::MutexLock lock(&mu_);
    if (req.rank() >= num_trainers_.load())  // again: a reshard may have changed it
      return absl::InvalidArgumentError(absl::StrCat("join: rank ", req.rank(), " is not below ",
                                                     num_trainers_.load(), " trainers"));
    cut_mode_ = true;
    awaiting_first_step_ = false;
    if (joined_[req.rank()]) {
      if (options_.sync) {
        // The rank's old process is gone: the step in flight can never complete. Release the
        // other ranks' barriers (they exit and resume with everyone) and wait for a restore.
        rejoin_pending_ = true;
        ++generation_;
        pending_.clear();
        aborted = true;
      } else {
        async_restored_step_.reset();
      }
    }
    joined_[req.rank()] = true;
    resp->set_version(version_);
    resp->set_aborted(aborted);
  }
  if (aborted) {
    TANDEM_LOG(warn, "shard {}: trainer rank {} restarted; the step in flight is aborted",
               options_.shard, req.rank());
    applied_cv_.SignalAll();
  }
  return absl::OkStatus();
}

absl::StatusOr<ShardState> Shard::SnapshotAtStep(uint64_t step) {
  absl::MutexLock lock(&mu_);
  cut_mode_ = true;
  awaiting_first_step_ = false;
  if (options_.sync) {
    if (rejoin_pending_ || step > version_)
      return absl::AbortedError(absl::StrCat(
          "checkpoint of step ", step, ": shard ", options_.shard, " is at step ", version_,
          rejoin_pending_ ? " and a trainer restarted" : " (it restarted or was rolled back)",
          "; every trainer resumes from the last consistent checkpoint"));
    if (step < version_)
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint of step ", step, ": shard ", options_.shard,
                       " already applied step ", version_ - 1));
  }
  return SnapshotLocked();
}

absl::Status Shard::RestoreToStep(
    const RestoreRequest& req, const std::function<absl::StatusOr<ShardState>(uint64_t)>& load,
    RestoreResponse* resp) {
  const uint64_t step = req.step();
  {
    absl::MutexLock lock(&mu_);
    cut_mode_ = true;
    awaiting_first_step_ = false;
    const uint64_t from = version_;
    resp->set_from_version(from);
    const bool there = options_.sync ? version_ == step : async_restored_step_ == step;
    if (there) {
      // Already the state of `step`: pushes of the new run (another trainer restored first) are
      // kept; anything left by the aborted run is dropped.
      if (rejoin_pending_ || restored_awaiting_) {
        pending_.clear();
        ++generation_;
      }
      rejoin_pending_ = restored_awaiting_ = false;
      async_restored_step_ = step;
      resp->set_version(version_);
      resp->set_rolled_back(false);
      resp->set_steps_lost(steps_lost_);
      return absl::OkStatus();
    }
    ShardState state;
    if (step == 0) {
      absl::ReaderMutexLock tables_lock(&tables_mu_);
      for (const auto& [id, t] : tables_) state.tables.push_back({t->config, {}});
    } else {
      TANDEM_ASSIGN_OR_RETURN(state, load(step));
      if (state.shard != options_.shard || state.num_shards != options_.num_shards)
        return absl::DataLossError(absl::StrCat("shard ", options_.shard,
                                                ": the checkpoint of step ", step,
                                                " belongs to shard ", state.shard, " of ",
                                                state.num_shards));
      if (options_.sync && state.version != step)
        return absl::DataLossError(absl::StrCat("shard ", options_.shard,
                                                ": the checkpoint file of step ", step,
                                                " holds version ", state.version));
    }
    auto tables = BuildTables(state.tables, /*initial=*/step == 0);
    if (!tables.ok())
      return Annotate(tables.status(),
                      absl::StrCat("shard ", options_.shard, ": restoring step ", step));
    ReplaceTablesLocked(std::move(*tables));
    version_ = step == 0 ? 0 : state.version;
    if (from > version_) steps_lost_ += from - version_;
    ++generation_;
    pending_.clear();
    rejoin_pending_ = restored_awaiting_ = false;
    restart_loss_noted_ = false;
    std::fill(seen_rank_.begin(), seen_rank_.end(), false);
    std::fill(newest_step_.begin(), newest_step_.end(), 0);
    std::fill(async_step_.begin(), async_step_.end(), 0);
    for (auto& seqs : async_seqs_) seqs.clear();
    async_restored_step_ = step;
    resp->set_version(version_);
    resp->set_rolled_back(true);
    resp->set_steps_lost(steps_lost_);
  }
  applied_cv_.SignalAll();
  TANDEM_LOG(info, "shard {}: rolled back from step {} to step {} (asked by rank {})",
             options_.shard, resp->from_version(), step, req.rank());
  return absl::OkStatus();
}

// ---- Resharding ---------------------------------------------------------------------------------

Placement Shard::placement() const {
  absl::ReaderMutexLock serve(&serve_mu_);
  return placement_;
}

absl::Status Shard::CheckServingLocked(uint64_t epoch, const char* what) const {
  if (frozen_)
    return absl::UnavailableError(absl::StrCat("shard ", options_.shard,
                                               " is resharding; retry the ", what));
  if (left_)
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": shard ", options_.shard, " left the layout at membership epoch ",
        placement_.epoch(), "; reload the membership"));
  if (placement_.rendezvous() && epoch != placement_.epoch())
    return absl::FailedPreconditionError(absl::StrCat(
        what, " routed by membership epoch ", epoch, ", but shard ", options_.shard, " serves ",
        placement_.ToString(), "; reload the membership"));
  return absl::OkStatus();
}

absl::Status Shard::CheckOwnerLocked(uint64_t key, const TableConfig& config,
                                     const char* what) const {
  const uint32_t owner = placement_.OwnerOf(key, TableSalt(config.name()));
  if (owner == options_.shard) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": key ", key, " of table '", config.name(),
                                                 "' belongs to shard ", owner, ", not ",
                                                 options_.shard));
}

absl::Status Shard::BeginReshard(const ReshardBeginRequest& req, ReshardBeginResponse* resp) {
  std::vector<uint32_t> ids;
  std::map<uint32_t, std::string> endpoints;
  for (const ShardEndpoint& m : req.members()) {
    if (!endpoints.emplace(m.id(), m.endpoint()).second)
      return absl::InvalidArgumentError(
          absl::StrCat("reshard to epoch ", req.epoch(), ": shard ", m.id(), " listed twice"));
    ids.push_back(m.id());
  }
  if (ids.empty())
    return absl::InvalidArgumentError(
        absl::StrCat("reshard to epoch ", req.epoch(), ": the new layout has no shards"));
  absl::MutexLock serve(&serve_mu_);
  absl::MutexLock lock(&mu_);
  absl::MutexLock reshard_lock(&reshard_mu_);
  resp->set_version(version_);
  if (!placement_.rendezvous())
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", options_.shard, " uses the fixed (modulo) placement: only the shards of an "
        "elastic job reshard"));
  if (reshard_) {
    if (reshard_->next.epoch() == req.epoch()) return absl::OkStatus();  // a retried call
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", options_.shard, " is already resharding to epoch ",
                     reshard_->next.epoch(), "; abort it first"));
  }
  const bool joining = options_.joining && frozen_ && placement_.epoch() == req.epoch();
  if (!joining && req.epoch() <= placement_.epoch())
    return absl::FailedPreconditionError(absl::StrCat("reshard to epoch ", req.epoch(), ": shard ",
                                                      options_.shard, " already serves ",
                                                      placement_.ToString()));
  if (left_)
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", options_.shard, " left the job at epoch ", placement_.epoch()));
  if (options_.sync && !pending_.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "reshard to epoch ", req.epoch(), ": shard ", options_.shard, " holds pushes of step ",
        pending_.begin()->first, " not yet applied; the trainers must pause at a step boundary"));
  ReshardState state;
  state.next = Placement::Rendezvous(req.epoch(), ids);
  state.num_trainers = req.num_trainers();
  state.endpoints = std::move(endpoints);
  for (uint32_t id : req.previous())
    if (id != options_.shard) state.senders.push_back(id);
  reshard_ = std::move(state);
  frozen_ = true;
  TANDEM_LOG(info, "shard {}: resharding from {} to {}", options_.shard, placement_.ToString(),
             reshard_->next.ToString());
  return absl::OkStatus();
}

absl::StatusOr<OutgoingReshard> Shard::PrepareOutgoing(uint64_t epoch) {
  absl::ReaderMutexLock serve(&serve_mu_);
  OutgoingReshard out;
  Placement next;
  {
    absl::MutexLock lock(&mu_);
    out.version = version_;
    absl::MutexLock reshard_lock(&reshard_mu_);
    if (!reshard_ || reshard_->next.epoch() != epoch)
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", options_.shard, " is not resharding to epoch ", epoch));
    next = reshard_->next;
    out.endpoints = reshard_->endpoints;
  }
  // Frozen: nothing changes the tables until the commit (pulls and pushes are refused).
  for (uint32_t id : next.ids())
    if (id != options_.shard) out.by_shard[id];  // every new shard gets every declaration
  absl::ReaderMutexLock tables_lock(&tables_mu_);
  for (const auto& [id, t] : tables_) {
    const uint64_t salt = TableSalt(t->config.name());
    std::map<uint32_t, ReshardTable*> pieces;
    for (auto& [dest, tables] : out.by_shard) {
      tables.emplace_back();
      *tables.back().mutable_config() = t->config;
      pieces[dest] = &tables.back();
    }
    if (placement_.rendezvous() && !placement_.Contains(options_.shard)) continue;
    const TableSnapshot snap = t->sparse ? t->sparse->Snapshot() : t->dense->Snapshot();
    size_t offset = 0;
    for (size_t i = 0; i < snap.keys.size(); ++i) {
      const size_t width = t->sparse ? t->sparse->stride()
                                     : size_t{t->dense->BlockLength(static_cast<uint32_t>(
                                           snap.keys[i]))} * t->dense->stride();
      const uint32_t owner = next.OwnerOf(snap.keys[i], salt);
      if (owner == options_.shard) {
        ++(t->sparse ? out.rows_kept : out.blocks_kept);
      } else {
        ReshardTable* piece = pieces.at(owner);
        piece->add_keys(snap.keys[i]);
        piece->add_counts(snap.counts[i]);
        piece->mutable_values()->Add(snap.values.begin() + offset,
                                     snap.values.begin() + offset + width);
        ++(t->sparse ? out.rows_sent : out.blocks_sent);
        out.bytes_sent += width * sizeof(float) + 16;
      }
      offset += width;
    }
  }
  return out;
}

absl::Status Shard::ReceiveReshard(const ReshardData& data) {
  absl::MutexLock reshard_lock(&reshard_mu_);
  if (!reshard_ || reshard_->next.epoch() != data.epoch())
    return absl::UnavailableError(absl::StrCat("shard ", options_.shard,
                                               " has not begun the reshard to epoch ",
                                               data.epoch(), "; retry"));
  ReshardState& r = *reshard_;
  if (std::find(r.senders.begin(), r.senders.end(), data.from()) == r.senders.end())
    return absl::InvalidArgumentError(
        absl::StrCat("reshard to epoch ", data.epoch(), ": shard ", data.from(),
                     " is not a shard of the old layout"));
  // The data came over the wire: check it fits its declarations and belongs here.
  for (const ReshardTable& t : data.tables()) {
    TANDEM_RETURN_IF_ERROR(ValidateConfig(t.config()), "reshard data from shard ", data.from());
    const Optimizer opt = *Optimizer::FromConfig(t.config().optimizer());
    const uint64_t salt = TableSalt(t.config().name());
    const uint64_t stride = 1 + opt.StateSlots();
    uint64_t need = 0;
    for (uint64_t key : t.keys()) {
      if (r.next.OwnerOf(key, salt) != options_.shard)
        return absl::InvalidArgumentError(
            absl::StrCat("reshard data from shard ", data.from(), ": key ", key, " of table '",
                         t.config().name(), "' belongs to shard ", r.next.OwnerOf(key, salt)));
      if (t.config().kind() == TableConfig::SPARSE) {
        need += t.config().dim() * stride;
      } else {
        const uint64_t blocks = NumBlocks(t.config().size(), t.config().block_size());
        if (key >= blocks)
          return absl::InvalidArgumentError(absl::StrCat("reshard data from shard ", data.from(),
                                                         ": block ", key, " of table '",
                                                         t.config().name(), "' out of range"));
        const uint64_t first = key * t.config().block_size();
        need += std::min<uint64_t>(t.config().block_size(), t.config().size() - first) * stride;
      }
    }
    if (need != static_cast<uint64_t>(t.values_size()) || t.counts_size() != t.keys_size())
      return absl::InvalidArgumentError(absl::StrCat(
          "reshard data from shard ", data.from(), ": table '", t.config().name(), "' has ",
          t.keys_size(), " keys, ", t.counts_size(), " counts and ", t.values_size(),
          " values; expected ", need, " values"));
  }
  Staged& staged = r.received[data.from()];
  staged.chunks.try_emplace(data.seq(), data);  // a repeated chunk is ignored
  if (data.last()) staged.last_seq = data.seq();
  return absl::OkStatus();
}

absl::Status Shard::CommitReshard(const ReshardCommitRequest& req, ReshardCommitResponse* resp) {
  absl::MutexLock serve(&serve_mu_);
  absl::MutexLock lock(&mu_);
  absl::MutexLock reshard_lock(&reshard_mu_);
  if (!reshard_) {
    if (placement_.rendezvous() && placement_.epoch() == req.epoch() && !frozen_) {
      resp->set_left(left_);
      return absl::OkStatus();  // a retried commit
    }
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", options_.shard, " is not resharding to epoch ", req.epoch()));
  }
  ReshardState& r = *reshard_;
  if (r.next.epoch() != req.epoch())
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", options_.shard, " is resharding to epoch ", r.next.epoch(), ", not ",
        req.epoch()));
  const bool member = r.next.Contains(options_.shard);
  // Every old shard must have sent all its chunks: otherwise rows would be missing here.
  if (member) {
    for (uint32_t from : r.senders) {
      auto it = r.received.find(from);
      if (it == r.received.end() || it->second.last_seq < 0 ||
          it->second.chunks.size() != static_cast<size_t>(it->second.last_seq) + 1)
        return absl::FailedPreconditionError(absl::StrCat(
            "commit of epoch ", req.epoch(), ": shard ", options_.shard,
            " has not received everything from shard ", from, " (",
            it == r.received.end() ? 0 : it->second.chunks.size(), " chunks",
            it != r.received.end() && it->second.last_seq >= 0 ? "" : ", not the last", ")"));
    }
  }
  // The new tables: what this shard keeps plus what it received, built aside so that a bad
  // snapshot leaves everything as it was.
  std::map<uint32_t, TableConfig> configs;
  {
    absl::ReaderMutexLock tables_lock(&tables_mu_);
    for (const auto& [id, t] : tables_) configs[id] = t->config;
  }
  std::map<uint32_t, TableSnapshot> merged;
  uint64_t received_version = 0;
  for (const auto& [from, staged] : r.received) {
    for (const auto& [seq, data] : staged.chunks) {
      received_version = std::max(received_version, data.version());
      for (const ReshardTable& t : data.tables()) {
        auto [it, inserted] = configs.try_emplace(t.config().id(), t.config());
        if (!inserted &&
            !google::protobuf::util::MessageDifferencer::Equals(it->second, t.config()))
          return absl::InvalidArgumentError(absl::StrCat(
              "reshard data from shard ", from, ": table ", t.config().id(),
              " is declared differently than on shard ", options_.shard));
        TableSnapshot& m = merged[t.config().id()];
        m.keys.insert(m.keys.end(), t.keys().begin(), t.keys().end());
        m.values.insert(m.values.end(), t.values().begin(), t.values().end());
        m.counts.insert(m.counts.end(), t.counts().begin(), t.counts().end());
        if (t.config().kind() == TableConfig::SPARSE)
          resp->set_rows_received(resp->rows_received() + t.keys_size());
        else
          resp->set_blocks_received(resp->blocks_received() + t.keys_size());
      }
    }
  }
  // Built aside (dense tables, new tables) or checked (sparse rows to insert in place) before
  // anything changes, so that a bad snapshot leaves everything as it was.
  std::map<uint32_t, std::unique_ptr<TableEntry>> built;
  std::vector<std::pair<SparseTable*, uint32_t>> in_place;  // existing sparse tables, by id
  const std::string where = absl::StrCat("commit of epoch ", req.epoch(), " on shard ",
                                         options_.shard, ": ");
  for (const auto& [id, config] : configs) {
    const uint64_t salt = TableSalt(config.name());
    TableSnapshot& m = merged[id];
    TableEntry* existing = nullptr;
    {
      absl::ReaderMutexLock tables_lock(&tables_mu_);
      if (auto it = tables_.find(id); it != tables_.end()) existing = it->second.get();
    }
    const Optimizer opt = *Optimizer::FromConfig(config.optimizer());
    if (config.kind() == TableConfig::SPARSE) {
      if (existing && member) {
        TANDEM_RETURN_IF_ERROR(existing->sparse->CheckInsert(m), where);
        in_place.emplace_back(existing->sparse.get(), id);
        continue;
      }
      auto entry = std::make_unique<TableEntry>();
      entry->config = config;
      entry->sparse = std::make_unique<SparseTable>(config, opt);
      if (member) TANDEM_RETURN_IF_ERROR(entry->sparse->Insert(m), where);
      built[id] = std::move(entry);
      continue;
    }
    // Dense: the kept blocks plus the received ones, in a table of the new layout.
    if (existing && member) {
      const DenseTable& d = *existing->dense;
      const TableSnapshot own = d.Snapshot();
      size_t offset = 0;
      for (size_t i = 0; i < own.keys.size(); ++i) {
        const size_t width =
            size_t{d.BlockLength(static_cast<uint32_t>(own.keys[i]))} * d.stride();
        if (r.next.OwnerOf(own.keys[i], salt) == options_.shard) {
          m.keys.push_back(own.keys[i]);
          m.counts.push_back(own.counts[i]);
          m.values.insert(m.values.end(), own.values.begin() + offset,
                          own.values.begin() + offset + width);
        }
        offset += width;
      }
    }
    auto entry = std::make_unique<TableEntry>();
    entry->config = config;
    entry->dense = std::make_unique<DenseTable>(config, opt, r.next, options_.shard);
    if (member) {
      // DenseTable::Restore wants exactly the owned blocks by ascending id: sort them, and a
      // block missing or twice is an error (nothing is installed).
      const size_t stride = entry->dense->stride();
      std::vector<size_t> order(m.keys.size()), offsets(m.keys.size());
      size_t offset = 0;
      for (size_t i = 0; i < m.keys.size(); ++i) {
        order[i] = i;
        offsets[i] = offset;
        offset += size_t{entry->dense->BlockLength(static_cast<uint32_t>(m.keys[i]))} * stride;
      }
      std::sort(order.begin(), order.end(),
                [&](size_t a, size_t b) { return m.keys[a] < m.keys[b]; });
      TableSnapshot sorted;
      for (size_t i : order) {
        const size_t width =
            size_t{entry->dense->BlockLength(static_cast<uint32_t>(m.keys[i]))} * stride;
        sorted.keys.push_back(m.keys[i]);
        sorted.counts.push_back(m.counts[i]);
        sorted.values.insert(sorted.values.end(), m.values.begin() + offsets[i],
                             m.values.begin() + offsets[i] + width);
      }
      TANDEM_RETURN_IF_ERROR(entry->dense->Restore(sorted), where);
    }
    built[id] = std::move(entry);
  }
  // From here on nothing fails. No data call is in flight (serve_mu_ is held exclusively).
  for (auto [table, id] : in_place) {
    const uint64_t salt = TableSalt(configs[id].name());
    const Placement& next = r.next;
    const uint32_t self = options_.shard;
    table->EraseIf([&](uint64_t key) { return next.OwnerOf(key, salt) != self; });
    (void)table->Insert(merged[id]);  // checked above
  }
  {
    absl::MutexLock tables_lock(&tables_mu_);
    for (auto& [id, entry] : built) {
      auto it = tables_.find(id);
      if (it == tables_.end()) {
        tables_[id] = std::move(entry);
      } else {
        it->second->sparse = std::move(entry->sparse);
        it->second->dense = std::move(entry->dense);
      }
    }
  }
  TANDEM_LOG(info, "shard {}: now serving {} ({} rows and {} blocks received{})", options_.shard,
             r.next.ToString(), resp->rows_received(), resp->blocks_received(),
             member ? "" : "; left the job");
  placement_ = r.next;
  left_ = !member;
  resp->set_left(left_);
  if (received_version > version_) {
    version_ = received_version;  // a joining shard takes the others' step
  }
  awaiting_first_step_ = false;
  if (r.num_trainers > 0 && r.num_trainers != num_trainers_.load()) {
    // The trainers resized with the shards (co-located workers). Nothing is pending (begin
    // required a step boundary); the per-rank bookkeeping starts over for the new ranks.
    const uint32_t w = r.num_trainers;
    num_trainers_ = w;
    newest_step_.assign(w, 0);
    seen_rank_.assign(w, false);
    async_step_.assign(w, 0);
    async_seqs_.assign(w, {});
    joined_.assign(w, false);
  }
  frozen_ = false;
  reshard_.reset();
  return absl::OkStatus();
}

absl::Status Shard::AbortReshard(const ReshardAbortRequest& req, bool* aborted) {
  absl::MutexLock serve(&serve_mu_);
  absl::MutexLock lock(&mu_);
  absl::MutexLock reshard_lock(&reshard_mu_);
  if (aborted) *aborted = false;
  if (!reshard_ || reshard_->next.epoch() != req.epoch()) return absl::OkStatus();
  if (aborted) *aborted = true;
  reshard_.reset();
  frozen_ = options_.joining && placement_.epoch() == req.epoch();  // a joiner stays frozen
  TANDEM_LOG(warn, "shard {}: reshard to epoch {} aborted; serving {} again", options_.shard,
             req.epoch(), placement_.ToString());
  return absl::OkStatus();
}

}  // namespace tandem::pserver
