#include "pserver/client/pserver_client.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <iterator>
#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/status.h"
#include "grpcpp/grpcpp.h"
#include "pserver/metrics.h"
#include "pserver/placement.h"
#include "pserver/tls_credentials.h"

namespace tandem::pserver {
namespace {

absl::Status FromGrpc(const grpc::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(context, ": ", s.error_message()));
}

bool Transient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::CANCELLED;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

// ---- SparseBatch -------------------------------------------------------------------------------

void SparseBatch::ReduceGradients(absl::Span<const float> per_id,
                                  absl::Span<float> per_unique) const {
  std::fill(per_unique.begin(), per_unique.end(), 0.0f);
  for (size_t i = 0; i < slots_.size(); ++i) {
    float* dst = per_unique.data() + static_cast<size_t>(slots_[i]) * dim_;
    const float* src = per_id.data() + i * dim_;
    for (uint32_t j = 0; j < dim_; ++j) dst[j] += src[j];
  }
}

// ---- Connection --------------------------------------------------------------------------------

PServerClient::PServerClient(const PServerClientOptions& options)
    : options_(options),
      auth_(options.token.empty() ? "" : absl::StrCat("Bearer ", options.token)),
      placement_(options.shard_ids.empty()
                     ? Placement::Modulo(static_cast<uint32_t>(options.endpoints.size()))
                     : Placement::Rendezvous(options.placement_epoch, options.shard_ids)) {}

absl::StatusOr<std::unique_ptr<PServerClient>> PServerClient::Connect(
    const PServerClientOptions& options) {
  if (options.endpoints.empty())
    return absl::InvalidArgumentError("pserver client: no pserver endpoints given");
  if (options.token.empty() && !options.tls.enabled())
    return absl::InvalidArgumentError(
        "pserver client: neither a job token nor TLS files given (TANDEM_JOB_TOKEN, TANDEM_TLS_*)");
  if (options.tls.enabled())
    TANDEM_RETURN_IF_ERROR(CheckTlsFiles(options.tls), "pserver client");
  if (!options.shard_ids.empty() && options.shard_ids.size() != options.endpoints.size())
    return absl::InvalidArgumentError(absl::StrCat(
        "pserver client: ", options.shard_ids.size(), " shard ids for ",
        options.endpoints.size(), " endpoints"));
  if (options.max_request_bytes < 4096)
    return absl::InvalidArgumentError("pserver client: max_request_bytes must be >= 4096");
  std::unique_ptr<PServerClient> c(new PServerClient(options));
  const size_t n = options.endpoints.size();
  {
    absl::MutexLock lock(&c->stubs_mu_);
    for (const std::string& endpoint : options.endpoints) {
      auto channel = c->NewChannel(endpoint);
      c->stubs_.push_back(ParameterServer::NewStub(channel));
      c->channels_.push_back(std::move(channel));
    }
  }
  {
    absl::MutexLock lock(&c->push_mu_);
    c->push_seq_.assign(n, 0);
    c->retained_.resize(n);
  }
  c->rows_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  c->steps_lost_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  for (size_t i = 0; i < n; ++i) c->rows_[i] = c->steps_lost_[i] = 0;
  PServerMetrics::Get();
  c->bg_thread_ = std::thread([raw = c.get()] { raw->BackgroundLoop(); });
  return c;
}

std::shared_ptr<grpc::Channel> PServerClient::NewChannel(const std::string& endpoint) {
  grpc::ChannelArguments args;
  const int limit =
      static_cast<int>(std::min<size_t>(options_.max_request_bytes * 2 + (1 << 20), INT32_MAX));
  args.SetMaxReceiveMessageSize(limit);
  args.SetMaxSendMessageSize(limit);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Keepalive pings while calls are open: a shard behind a partition (packets dropped, no reset)
  // fails its calls with UNAVAILABLE within about rpc_timeout, so a step barrier (whose attempts
  // time out as when other trainers are merely slow) does not wait out barrier_timeout. The
  // pservers accept pings this often (pserver/server.cc).
  const int keepalive_ms =
      static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(options_.rpc_timeout) / 2, 500, 3600000));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_ms);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // a barrier wait carries no data
  // A distinct argument keeps gRPC's global subchannel pool from handing a replacement channel
  // the old (backed-off) connection.
  args.SetInt("tandem.channel_generation", static_cast<int>(++channel_generation_));
  if (options_.tls.enabled()) args.SetSslTargetNameOverride(tls::kTlsPeerName);
  return grpc::CreateCustomChannel(
      endpoint,
      options_.tls.enabled() ? MutualTlsChannelCredentials(options_.tls, options_.tls_reload_interval)
                             : grpc::InsecureChannelCredentials(),
      args);
}

std::shared_ptr<ParameterServer::Stub> PServerClient::Stub(uint32_t shard) const {
  absl::MutexLock lock(&stubs_mu_);
  return stubs_[shard];
}

void PServerClient::Reconnect(uint32_t shard) {
  absl::MutexLock lock(&stubs_mu_);
  channels_[shard] = NewChannel(options_.endpoints[shard]);
  stubs_[shard] = ParameterServer::NewStub(channels_[shard]);
}

PServerClient::~PServerClient() {
  {
    absl::MutexLock lock(&bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.SignalAll();
  if (bg_thread_.joinable()) bg_thread_.join();
}

void PServerClient::BackgroundLoop() {
  while (true) {
    std::packaged_task<absl::Status()> task;
    {
      absl::MutexLock lock(&bg_mu_);
      while (!bg_stop_ && bg_tasks_.empty()) bg_cv_.Wait(&bg_mu_);
      if (bg_tasks_.empty()) return;
      task = std::move(bg_tasks_.front());
      bg_tasks_.pop_front();
    }
    task();
  }
}

std::unique_ptr<grpc::ClientContext> PServerClient::NewContext(absl::Duration timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!auth_.empty()) ctx->AddMetadata("authorization", auth_);
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

absl::Status PServerClient::Retry(uint32_t shard, grpc::Status status,
                                  const std::function<grpc::Status(grpc::ClientContext*)>& call,
                                  absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + options_.reconnect_timeout;
  absl::Duration backoff = options_.initial_backoff;
  int reregistrations = 0;
  const std::string who =
      absl::StrCat("pserver shard ", shard, " (", options_.endpoints[shard], ")");
  while (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::NOT_FOUND && reregistrations < 3) {
      // The shard restarted without this table (no checkpoint yet): declare it again.
      ++reregistrations;
      TANDEM_RETURN_IF_ERROR(ReRegister(shard));
    } else if (Transient(status.error_code())) {
      if (absl::Now() + backoff > give_up)
        return absl::UnavailableError(absl::StrCat(who, " unavailable for ",
                                                   absl::FormatDuration(options_.reconnect_timeout),
                                                   ": ", status.error_message()));
      PServerMetrics::Get().client_retries->Inc();
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, options_.max_backoff);
      // gRPC's channel may sit in its own reconnect backoff long after a restarted shard
      // listens again; our loop already backs off, so after a few attempts it uses a fresh one.
      if (backoff >= absl::Milliseconds(400)) Reconnect(shard);
    } else {
      return FromGrpc(status, who);
    }
    auto ctx = NewContext(timeout);
    status = call(ctx.get());
  }
  return absl::OkStatus();
}

absl::Status PServerClient::ReRegister(uint32_t shard) {
  std::vector<TableConfig> configs;
  {
    absl::MutexLock lock(&tables_mu_);
    for (const auto& [id, t] : tables_) configs.push_back(t->config);
  }
  TANDEM_LOG(info, "re-declaring {} tables on pserver shard {}", configs.size(), shard);
  for (const TableConfig& config : configs) {
    RegisterTableRequest req;
    *req.mutable_table() = config;
    RegisterTableResponse resp;
    auto call = [&](grpc::ClientContext* ctx) {
      return Stub(shard)->RegisterTable(ctx, req, &resp);
    };
    auto ctx = NewContext(options_.rpc_timeout);
    TANDEM_RETURN_IF_ERROR(Retry(shard, call(ctx.get()), call, options_.rpc_timeout));
  }
  return absl::OkStatus();
}

template <typename Req, typename Resp, typename AsyncCall>
absl::Status PServerClient::FanOut(
    absl::Span<const uint32_t> shards, absl::Span<const Req> requests, absl::Span<Resp> responses,
    AsyncCall async_call, absl::Duration timeout,
    const std::function<absl::Status(size_t, grpc::Status)>& on_failure) {
  const size_t n = shards.size();
  if (n == 0) return absl::OkStatus();
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts(n);
  std::vector<grpc::Status> statuses(n);
  std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>>> readers(n);
  for (size_t i = 0; i < n; ++i) {
    contexts[i] = NewContext(timeout);
    readers[i] = async_call(Stub(shards[i]).get(), contexts[i].get(), requests[i], &cq);
    readers[i]->Finish(&responses[i], &statuses[i], reinterpret_cast<void*>(i));
  }
  for (size_t done = 0; done < n; ++done) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) break;
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  absl::Status result = absl::OkStatus();
  for (size_t i = 0; i < n; ++i) {
    if (statuses[i].ok()) continue;
    absl::Status s = on_failure(i, statuses[i]);
    if (result.ok()) result = s;
  }
  return result;
}

void PServerClient::NoteRows(uint32_t shard, uint64_t rows) {
  rows_[shard].fetch_add(rows, std::memory_order_relaxed);
  uint64_t lo = std::numeric_limits<uint64_t>::max(), hi = 0;
  for (size_t i = 0; i < num_shards(); ++i) {
    const uint64_t r = rows_[i].load(std::memory_order_relaxed);
    lo = std::min(lo, r);
    hi = std::max(hi, r);
  }
  if (lo > 0) PServerMetrics::Get().shard_balance->Set(static_cast<double>(hi) / lo);
}

void PServerClient::NoteStepsLost(uint32_t shard, uint64_t lost) {
  uint64_t prev = steps_lost_[shard].load();
  while (lost > prev && !steps_lost_[shard].compare_exchange_weak(prev, lost)) {
  }
  if (lost > prev)
    TANDEM_LOG(warn, "pserver shard {} restarted and lost {} steps of updates", shard, lost);
  PServerMetrics::Get().client_steps_lost->Set(static_cast<double>(steps_lost()));
}

uint64_t PServerClient::steps_lost() const {
  uint64_t m = 0;
  for (size_t i = 0; i < num_shards(); ++i) m = std::max(m, steps_lost_[i].load());
  return m;
}

std::vector<uint64_t> PServerClient::steps_lost_per_shard() const {
  std::vector<uint64_t> v;
  for (size_t i = 0; i < num_shards(); ++i) v.push_back(steps_lost_[i].load());
  return v;
}

std::vector<uint64_t> PServerClient::rows_per_shard() const {
  std::vector<uint64_t> v;
  for (size_t i = 0; i < num_shards(); ++i) v.push_back(rows_[i].load());
  return v;
}

double PServerClient::shard_balance() const {
  const auto v = rows_per_shard();
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return *lo == 0 ? 0.0 : static_cast<double>(*hi) / *lo;
}

// ---- Tables ------------------------------------------------------------------------------------

absl::StatusOr<const PServerClient::TableInfo*> PServerClient::Table(uint32_t id) const {
  absl::MutexLock lock(&tables_mu_);
  auto it = tables_.find(id);
  if (it == tables_.end())
    return absl::FailedPreconditionError(
        absl::StrCat("pserver client: table ", id, " was not registered by this client"));
  return it->second.get();  // entries are never removed
}

absl::Status PServerClient::CheckLayout() {
  const uint32_t n = num_shards();
  // Once per client: every shard must agree with this client on layout and mode, or placement
  // and the step protocol would silently disagree.
  if (!layout_checked_.load()) {
    for (uint32_t shard = 0; shard < n; ++shard) {
      TANDEM_ASSIGN_OR_RETURN(StatusResponse st, ShardStatus(shard));
      const uint32_t id = placement_.ids()[shard];
      if (st.shard() != id || st.num_shards() != n || st.sync_mode() != options_.sync ||
          options_.rank >= st.num_trainers() || st.rendezvous() != placement_.rendezvous() ||
          st.placement_epoch() != placement_.epoch())
        return absl::FailedPreconditionError(absl::StrCat(
            "pserver at ", options_.endpoints[shard], " is shard ", st.shard(), " of ",
            st.num_shards(), " (", st.sync_mode() ? "sync" : "async", ", ", st.num_trainers(),
            " trainers, layout epoch ", st.placement_epoch(), "), but this client expects shard ",
            id, " of ", n, " (", options_.sync ? "sync" : "async", ", rank ", options_.rank,
            ", layout epoch ", placement_.epoch(), ")"));
    }
    layout_checked_ = true;
  }
  return absl::OkStatus();
}

absl::Status PServerClient::RegisterTable(const TableConfig& declared) {
  TableConfig config = declared;
  const uint32_t n = num_shards();
  if (config.kind() == TableConfig::DENSE && config.block_size() == 0)
    config.set_block_size(DefaultBlockSize(
        config.size(), options_.block_size_shards > 0 ? options_.block_size_shards : n));
  auto info = std::make_unique<TableInfo>();
  info->config = config;
  info->salt = TableSalt(config.name());
  info->dense_versions.assign(n, 0);
  if (config.kind() == TableConfig::DENSE && config.block_size() > 0) {
    info->blocks_by_shard.resize(n);
    const uint64_t blocks = NumBlocks(config.size(), config.block_size());
    if (blocks > std::numeric_limits<uint32_t>::max())
      return absl::InvalidArgumentError(
          absl::StrCat("table '", config.name(), "': too many blocks"));
    for (uint64_t b = 0; b < blocks; ++b)
      info->blocks_by_shard[placement_.IndexOf(b, info->salt)].push_back(
          static_cast<uint32_t>(b));
  }
  TANDEM_RETURN_IF_ERROR(CheckLayout());
  RegisterTableRequest req;
  *req.mutable_table() = config;
  for (uint32_t shard = 0; shard < n; ++shard) {
    RegisterTableResponse resp;
    auto call = [&](grpc::ClientContext* ctx) {
      return Stub(shard)->RegisterTable(ctx, req, &resp);
    };
    auto ctx = NewContext(options_.rpc_timeout);
    TANDEM_RETURN_IF_ERROR(Retry(shard, call(ctx.get()), call, options_.rpc_timeout),
                           "registering table '", config.name(), "'");
  }
  absl::MutexLock lock(&tables_mu_);
  auto& slot = tables_[config.id()];
  if (!slot) slot = std::move(info);
  return absl::OkStatus();
}

// ---- Sparse ------------------------------------------------------------------------------------

absl::Status PServerClient::PullSparse(uint32_t table_id, absl::Span<const uint64_t> ids,
                                       SparseBatch* b) {
  const auto start = std::chrono::steady_clock::now();
  TANDEM_ASSIGN_OR_RETURN(const TableInfo* t, Table(table_id));
  if (t->config.kind() != TableConfig::SPARSE)
    return absl::InvalidArgumentError(absl::StrCat("table ", table_id, " is not sparse"));
  const uint32_t n = num_shards();
  const uint32_t dim = t->config.dim();
  b->table_id_ = table_id;
  b->dim_ = dim;
  // De-duplicate: unique_ in first-seen order, slots_ maps each id to its unique row.
  b->dedupe_.clear();
  b->unique_.clear();
  b->slots_.resize(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    auto [it, inserted] = b->dedupe_.try_emplace(ids[i], static_cast<uint32_t>(b->unique_.size()));
    if (inserted) b->unique_.push_back(ids[i]);
    b->slots_[i] = it->second;
  }
  b->by_shard_.resize(n);
  for (auto& v : b->by_shard_) v.clear();
  for (size_t u = 0; u < b->unique_.size(); ++u)
    b->by_shard_[placement_.IndexOf(b->unique_[u], t->salt)].push_back(static_cast<uint32_t>(u));
  // One RPC per shard, split when a response would exceed max_request_bytes.
  const size_t chunk = std::max<size_t>(1, options_.max_request_bytes / (size_t{dim} * 4 + 8));
  b->calls_.clear();
  for (uint32_t s = 0; s < n; ++s)
    for (size_t first = 0; first < b->by_shard_[s].size(); first += chunk)
      b->calls_.emplace_back(s, first);
  const size_t calls = b->calls_.size();
  if (b->requests_.size() < calls) {
    b->requests_.resize(calls);
    b->responses_.resize(calls);
  }
  std::vector<uint32_t> shards(calls);
  for (size_t c = 0; c < calls; ++c) {
    const auto [s, first] = b->calls_[c];
    shards[c] = s;
    const size_t count = std::min(chunk, b->by_shard_[s].size() - first);
    PullSparseRequest& req = b->requests_[c];
    req.set_table_id(table_id);
    req.set_placement_epoch(placement_.epoch());
    req.mutable_keys()->Resize(static_cast<int>(count), 0);
    uint64_t* keys = req.mutable_keys()->mutable_data();
    for (size_t k = 0; k < count; ++k) keys[k] = b->unique_[b->by_shard_[s][first + k]];
  }
  auto async_call = [](ParameterServer::Stub* stub, grpc::ClientContext* ctx,
                       const PullSparseRequest& req,
                       grpc::CompletionQueue* cq) { return stub->AsyncPullSparse(ctx, req, cq); };
  TANDEM_RETURN_IF_ERROR((FanOut<PullSparseRequest, PullSparseResponse>(
      shards, absl::MakeConstSpan(b->requests_.data(), calls),
      absl::MakeSpan(b->responses_.data(), calls), async_call, options_.rpc_timeout,
      [&](size_t c, grpc::Status first) {
        auto call = [&](grpc::ClientContext* ctx) {
          return Stub(shards[c])->PullSparse(ctx, b->requests_[c], &b->responses_[c]);
        };
        return Retry(shards[c], first, call, options_.rpc_timeout);
      })));
  b->rows_.resize(b->unique_.size() * dim);
  b->versions_.assign(n, std::numeric_limits<uint64_t>::max());
  uint64_t bytes = 0;
  for (size_t c = 0; c < calls; ++c) {
    const auto [s, first] = b->calls_[c];
    const PullSparseResponse& resp = b->responses_[c];
    const size_t count = static_cast<size_t>(b->requests_[c].keys_size());
    if (static_cast<size_t>(resp.values_size()) != count * dim)
      return absl::InternalError(absl::StrCat("pserver shard ", s, " answered ", resp.values_size(),
                                              " floats for ", count, " rows of dim ", dim));
    for (size_t k = 0; k < count; ++k)
      std::memcpy(b->rows_.data() + static_cast<size_t>(b->by_shard_[s][first + k]) * dim,
                  resp.values().data() + k * dim, dim * sizeof(float));
    b->versions_[s] = std::min(b->versions_[s], resp.version());
    NoteRows(s, count);
    bytes += count * dim * 4;
  }
  auto& m = PServerMetrics::Get();
  m.rows[PServerMetrics::kClient][PServerMetrics::kPull]->Inc(
      static_cast<double>(b->unique_.size()));
  m.bytes[PServerMetrics::kClient][PServerMetrics::kPull]->Inc(static_cast<double>(bytes));
  m.pull_latency[PServerMetrics::kClient][PServerMetrics::kSparse]->Observe(SecondsSince(start));
  return absl::OkStatus();
}

std::future<absl::Status> PServerClient::PrefetchSparse(uint32_t table_id,
                                                        absl::Span<const uint64_t> ids,
                                                        SparseBatch* batch) {
  std::packaged_task<absl::Status()> task(
      [this, table_id, ids, batch] { return PullSparse(table_id, ids, batch); });
  std::future<absl::Status> result = task.get_future();
  {
    absl::MutexLock lock(&bg_mu_);
    bg_tasks_.push_back(std::move(task));
  }
  bg_cv_.Signal();
  return result;
}

absl::Status PServerClient::SendPush(uint32_t shard, const PushRequest& push) {
  PushResponse resp;
  auto call = [&](grpc::ClientContext* ctx) {
    if (const auto* sparse = std::get_if<PushSparseRequest>(&push))
      return Stub(shard)->PushSparse(ctx, *sparse, &resp);
    return Stub(shard)->PushDense(ctx, std::get<PushDenseRequest>(push), &resp);
  };
  auto ctx = NewContext(options_.rpc_timeout);
  TANDEM_RETURN_IF_ERROR(Retry(shard, call(ctx.get()), call, options_.rpc_timeout));
  NoteStepsLost(shard, resp.steps_lost());
  return absl::OkStatus();
}

template <typename Req>
absl::Status PServerClient::PushAll(const std::vector<uint32_t>& shards, std::vector<Req>& requests,
                                    uint64_t step) {
  {
    // Numbered in both modes: the shard ignores a repeated (rank, step, seq), so a push retried
    // after a timeout is applied once.
    absl::MutexLock lock(&push_mu_);
    if (step != push_step_) {
      push_step_ = step;
      std::fill(push_seq_.begin(), push_seq_.end(), 0);
      for (auto& r : retained_) r.clear();
    }
    for (size_t i = 0; i < requests.size(); ++i)
      requests[i].mutable_header()->set_seq(push_seq_[shards[i]]++);
  }
  std::vector<PushResponse> responses(requests.size());
  auto async_call = [](ParameterServer::Stub* stub, grpc::ClientContext* ctx, const Req& req,
                       grpc::CompletionQueue* cq) {
    if constexpr (std::is_same_v<Req, PushSparseRequest>) {
      return stub->AsyncPushSparse(ctx, req, cq);
    } else {
      return stub->AsyncPushDense(ctx, req, cq);
    }
  };
  TANDEM_RETURN_IF_ERROR((FanOut<Req, PushResponse>(
      shards, absl::MakeConstSpan(requests), absl::MakeSpan(responses), async_call,
      options_.rpc_timeout, [&](size_t i, grpc::Status first) {
        auto call = [&](grpc::ClientContext* ctx) {
          if constexpr (std::is_same_v<Req, PushSparseRequest>) {
            return Stub(shards[i])->PushSparse(ctx, requests[i], &responses[i]);
          } else {
            return Stub(shards[i])->PushDense(ctx, requests[i], &responses[i]);
          }
        };
        return Retry(shards[i], first, call, options_.rpc_timeout);
      })));
  for (size_t i = 0; i < requests.size(); ++i) NoteStepsLost(shards[i], responses[i].steps_lost());
  if (options_.sync) {
    absl::MutexLock lock(&push_mu_);
    if (push_step_ == step)
      for (size_t i = 0; i < requests.size(); ++i)
        retained_[shards[i]].emplace_back(std::move(requests[i]));
  }
  return absl::OkStatus();
}

absl::Status PServerClient::PushSparse(const SparseBatch& b, absl::Span<const float> grads,
                                       uint64_t step) {
  const auto start = std::chrono::steady_clock::now();
  TANDEM_ASSIGN_OR_RETURN(const TableInfo* t, Table(b.table_id_));
  const uint32_t dim = b.dim_;
  if (t->config.kind() != TableConfig::SPARSE || dim != t->config.dim())
    return absl::InvalidArgumentError("PushSparse: the batch was not pulled from this table");
  if (grads.size() != b.unique_.size() * dim)
    return absl::InvalidArgumentError(
        absl::StrCat("PushSparse: ", b.unique_.size(), " unique rows of dim ", dim, " need ",
                     b.unique_.size() * dim, " gradients, got ", grads.size()));
  const size_t chunk = std::max<size_t>(1, options_.max_request_bytes / (size_t{dim} * 4 + 8));
  std::vector<uint32_t> shards;
  std::vector<PushSparseRequest> requests;
  for (uint32_t s = 0; s < b.by_shard_.size(); ++s) {
    const auto& rows = b.by_shard_[s];
    for (size_t first = 0; first < rows.size(); first += chunk) {
      const size_t count = std::min(chunk, rows.size() - first);
      PushSparseRequest& req = requests.emplace_back();
      shards.push_back(s);
      PushHeader* h = req.mutable_header();
      h->set_rank(options_.rank);
      h->set_step(step);
      h->set_based_on_version(b.versions_.empty() ? 0 : b.versions_[s]);
      h->set_placement_epoch(placement_.epoch());
      req.set_table_id(b.table_id_);
      req.mutable_keys()->Resize(static_cast<int>(count), 0);
      req.mutable_grads()->Resize(static_cast<int>(count * dim), 0.0f);
      uint64_t* keys = req.mutable_keys()->mutable_data();
      float* out = req.mutable_grads()->mutable_data();
      for (size_t k = 0; k < count; ++k) {
        const uint32_t u = rows[first + k];
        keys[k] = b.unique_[u];
        std::memcpy(out + k * dim, grads.data() + static_cast<size_t>(u) * dim,
                    dim * sizeof(float));
      }
      NoteRows(s, count);
    }
  }
  TANDEM_RETURN_IF_ERROR(PushAll(shards, requests, step));
  auto& m = PServerMetrics::Get();
  m.rows[PServerMetrics::kClient][PServerMetrics::kPush]->Inc(
      static_cast<double>(b.unique_.size()));
  m.bytes[PServerMetrics::kClient][PServerMetrics::kPush]->Inc(static_cast<double>(grads.size()) *
                                                               4);
  m.push_latency[PServerMetrics::kClient][PServerMetrics::kSparse]->Observe(SecondsSince(start));
  return absl::OkStatus();
}

// ---- Dense -------------------------------------------------------------------------------------

absl::Status PServerClient::PullDense(uint32_t table_id, absl::Span<float> out) {
  const auto start = std::chrono::steady_clock::now();
  TANDEM_ASSIGN_OR_RETURN(const TableInfo* t, Table(table_id));
  if (t->config.kind() != TableConfig::DENSE || out.size() != t->config.size())
    return absl::InvalidArgumentError(absl::StrCat(
        "PullDense: table ", table_id, " is not a dense table of ", out.size(), " floats"));
  const uint32_t bs = t->config.block_size();
  const size_t blocks_per_call = std::max<size_t>(1, options_.max_request_bytes / 4 / bs);
  std::vector<uint32_t> shards;
  std::vector<PullDenseRequest> requests;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    const auto& blocks = t->blocks_by_shard[s];
    for (size_t first = 0; first < blocks.size(); first += blocks_per_call) {
      PullDenseRequest& req = requests.emplace_back();
      shards.push_back(s);
      req.set_table_id(table_id);
      req.set_placement_epoch(placement_.epoch());
      const size_t end = std::min(blocks.size(), first + blocks_per_call);
      req.mutable_block_ids()->Add(blocks.begin() + first, blocks.begin() + end);
    }
  }
  std::vector<PullDenseResponse> responses(requests.size());
  auto async_call = [](ParameterServer::Stub* stub, grpc::ClientContext* ctx,
                       const PullDenseRequest& req,
                       grpc::CompletionQueue* cq) { return stub->AsyncPullDense(ctx, req, cq); };
  TANDEM_RETURN_IF_ERROR((FanOut<PullDenseRequest, PullDenseResponse>(
      shards, absl::MakeConstSpan(requests), absl::MakeSpan(responses), async_call,
      options_.rpc_timeout, [&](size_t i, grpc::Status first) {
        auto call = [&](grpc::ClientContext* ctx) {
          return Stub(shards[i])->PullDense(ctx, requests[i], &responses[i]);
        };
        return Retry(shards[i], first, call, options_.rpc_timeout);
      })));
  std::vector<uint64_t> versions(num_shards(), std::numeric_limits<uint64_t>::max());
  for (size_t i = 0; i < requests.size(); ++i) {
    size_t offset = 0;
    const PullDenseResponse& resp = responses[i];
    for (uint32_t block : requests[i].block_ids()) {
      const uint64_t begin = uint64_t{block} * bs;
      const size_t len = static_cast<size_t>(std::min<uint64_t>(bs, t->config.size() - begin));
      if (offset + len > static_cast<size_t>(resp.values_size()))
        return absl::InternalError(absl::StrCat("pserver shard ", shards[i], " answered ",
                                                resp.values_size(), " floats, too few"));
      std::memcpy(out.data() + begin, resp.values().data() + offset, len * sizeof(float));
      offset += len;
    }
    versions[shards[i]] = std::min(versions[shards[i]], resp.version());
    NoteRows(shards[i], requests[i].block_ids_size());
  }
  {
    absl::MutexLock lock(&tables_mu_);
    auto* info = tables_.at(table_id).get();
    for (uint32_t s = 0; s < num_shards(); ++s)
      if (versions[s] != std::numeric_limits<uint64_t>::max())
        info->dense_versions[s] = versions[s];
  }
  auto& m = PServerMetrics::Get();
  m.rows[PServerMetrics::kClient][PServerMetrics::kPull]->Inc(static_cast<double>(requests.size()));
  m.bytes[PServerMetrics::kClient][PServerMetrics::kPull]->Inc(static_cast<double>(out.size()) * 4);
  m.pull_latency[PServerMetrics::kClient][PServerMetrics::kDense]->Observe(SecondsSince(start));
  return absl::OkStatus();
}

absl::Status PServerClient::PushDense(uint32_t table_id, absl::Span<const float> grads,
                                      uint64_t step) {
  const auto start = std::chrono::steady_clock::now();
  TANDEM_ASSIGN_OR_RETURN(const TableInfo* t, Table(table_id));
  if (t->config.kind() != TableConfig::DENSE || grads.size() != t->config.size())
    return absl::InvalidArgumentError(absl::StrCat(
        "PushDense: table ", table_id, " is not a dense table of ", grads.size(), " floats"));
  const uint32_t bs = t->config.block_size();
  const size_t blocks_per_call = std::max<size_t>(1, options_.max_request_bytes / 4 / bs);
  std::vector<uint64_t> versions;
  {
    absl::MutexLock lock(&tables_mu_);
    versions = t->dense_versions;
  }
  std::vector<uint32_t> shards;
  std::vector<PushDenseRequest> requests;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    const auto& blocks = t->blocks_by_shard[s];
    for (size_t first = 0; first < blocks.size(); first += blocks_per_call) {
      PushDenseRequest& req = requests.emplace_back();
      shards.push_back(s);
      PushHeader* h = req.mutable_header();
      h->set_rank(options_.rank);
      h->set_step(step);
      h->set_based_on_version(versions[s]);
      h->set_placement_epoch(placement_.epoch());
      req.set_table_id(table_id);
      const size_t end = std::min(blocks.size(), first + blocks_per_call);
      for (size_t k = first; k < end; ++k) {
        const uint64_t begin = uint64_t{blocks[k]} * bs;
        const size_t len = static_cast<size_t>(std::min<uint64_t>(bs, t->config.size() - begin));
        req.add_block_ids(blocks[k]);
        req.mutable_grads()->Add(grads.begin() + begin, grads.begin() + begin + len);
      }
      NoteRows(s, end - first);
    }
  }
  TANDEM_RETURN_IF_ERROR(PushAll(shards, requests, step));
  auto& m = PServerMetrics::Get();
  m.rows[PServerMetrics::kClient][PServerMetrics::kPush]->Inc(static_cast<double>(requests.size()));
  m.bytes[PServerMetrics::kClient][PServerMetrics::kPush]->Inc(static_cast<double>(grads.size()) *
                                                               4);
  m.push_latency[PServerMetrics::kClient][PServerMetrics::kDense]->Observe(SecondsSince(start));
  return absl::OkStatus();
}

// ---- Step barrier ------------------------------------------------------------------------------

absl::Status PServerClient::BarrierRetry(uint32_t shard, const StepBarrierRequest& req,
                                         grpc::Status status, StepBarrierResponse* resp) {
  const absl::Time give_up = absl::Now() + options_.barrier_timeout;
  absl::Duration backoff = options_.initial_backoff;
  const std::string who =
      absl::StrCat("pserver shard ", shard, " (", options_.endpoints[shard], ")");
  while (!status.ok()) {
    const grpc::StatusCode code = status.error_code();
    if (absl::Now() > give_up)
      return absl::DeadlineExceededError(absl::StrCat(
          who, ": step ", req.step(), " not complete after ",
          absl::FormatDuration(options_.barrier_timeout), ": ", status.error_message()));
    if (code == grpc::StatusCode::DEADLINE_EXCEEDED) {
      // Other trainers are slow: wait again.
    } else if (code == grpc::StatusCode::UNAVAILABLE ||
               code == grpc::StatusCode::FAILED_PRECONDITION ||
               code == grpc::StatusCode::CANCELLED) {
      // The shard restarted (or is restarting): re-send this step's pushes, then wait again.
      // SendPush waits for the shard to come back; the shard ignores pushes it already has.
      if (code != grpc::StatusCode::FAILED_PRECONDITION) {
        PServerMetrics::Get().client_retries->Inc();
        absl::SleepFor(backoff);
        backoff = std::min(backoff * 2, options_.max_backoff);
        if (backoff >= absl::Milliseconds(400)) Reconnect(shard);
      }
      std::deque<PushRequest> pushes;
      {
        absl::MutexLock lock(&push_mu_);
        if (push_step_ == req.step()) pushes = retained_[shard];
      }
      for (const PushRequest& push : pushes) TANDEM_RETURN_IF_ERROR(SendPush(shard, push));
    } else {
      return FromGrpc(status, who);
    }
    auto ctx = NewContext(options_.rpc_timeout);
    status = Stub(shard)->StepBarrier(ctx.get(), req, resp);
  }
  return absl::OkStatus();
}

absl::Status PServerClient::FinishStep(uint64_t step) {
  if (!options_.sync) return absl::OkStatus();
  const uint32_t n = num_shards();
  std::vector<uint32_t> shards(n);
  std::vector<StepBarrierRequest> requests(n);
  std::vector<StepBarrierResponse> responses(n);
  {
    absl::MutexLock lock(&push_mu_);
    for (uint32_t s = 0; s < n; ++s) {
      shards[s] = s;
      requests[s].set_rank(options_.rank);
      requests[s].set_step(step);
      requests[s].set_num_pushes(push_step_ == step ? push_seq_[s] : 0);
    }
  }
  auto async_call = [](ParameterServer::Stub* stub, grpc::ClientContext* ctx,
                       const StepBarrierRequest& req,
                       grpc::CompletionQueue* cq) { return stub->AsyncStepBarrier(ctx, req, cq); };
  TANDEM_RETURN_IF_ERROR((FanOut<StepBarrierRequest, StepBarrierResponse>(
      shards, absl::MakeConstSpan(requests), absl::MakeSpan(responses), async_call,
      options_.rpc_timeout, [&](size_t i, grpc::Status first) {
        return BarrierRetry(shards[i], requests[i], first, &responses[i]);
      })));
  for (uint32_t s = 0; s < n; ++s) NoteStepsLost(s, responses[s].steps_lost());
  absl::MutexLock lock(&push_mu_);
  if (push_step_ <= step) {
    push_step_ = step + 1;
    std::fill(push_seq_.begin(), push_seq_.end(), 0);
    for (auto& r : retained_) r.clear();
  }
  return absl::OkStatus();
}

// ---- Status ------------------------------------------------------------------------------------

absl::StatusOr<StatusResponse> PServerClient::ShardStatus(uint32_t shard) {
  if (shard >= num_shards()) return absl::InvalidArgumentError("no such shard");
  StatusRequest req;
  StatusResponse resp;
  auto call = [&](grpc::ClientContext* ctx) { return Stub(shard)->Status(ctx, req, &resp); };
  auto ctx = NewContext(options_.rpc_timeout);
  TANDEM_RETURN_IF_ERROR(Retry(shard, call(ctx.get()), call, options_.rpc_timeout));
  return resp;
}

// ---- Consistent checkpoints --------------------------------------------------------------------

absl::Status PServerClient::ForEachShard(const std::function<absl::Status(uint32_t)>& fn) {
  std::vector<std::future<absl::Status>> results;
  for (uint32_t s = 0; s < num_shards(); ++s)
    results.push_back(std::async(std::launch::async, fn, s));
  absl::Status first = absl::OkStatus();
  for (auto& r : results) {
    absl::Status s = r.get();
    if (first.ok()) first = s;
  }
  return first;
}

namespace {

std::vector<uint64_t> Intersect(const std::vector<std::vector<uint64_t>>& lists) {
  if (lists.empty()) return {};
  std::vector<uint64_t> out = lists[0];
  for (size_t i = 1; i < lists.size(); ++i) {
    std::vector<uint64_t> next;
    std::set_intersection(out.begin(), out.end(), lists[i].begin(), lists[i].end(),
                          std::back_inserter(next));
    out = std::move(next);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<uint64_t>> PServerClient::Join() {
  TANDEM_RETURN_IF_ERROR(CheckLayout());
  std::vector<std::vector<uint64_t>> steps(num_shards());
  TANDEM_RETURN_IF_ERROR(ForEachShard([&](uint32_t shard) -> absl::Status {
    JoinRequest req;
    req.set_rank(options_.rank);
    JoinResponse resp;
    auto call = [&](grpc::ClientContext* ctx) { return Stub(shard)->Join(ctx, req, &resp); };
    auto ctx = NewContext(options_.rpc_timeout);
    TANDEM_RETURN_IF_ERROR(Retry(shard, call(ctx.get()), call, options_.rpc_timeout), "join");
    steps[shard].assign(resp.checkpoint_steps().begin(), resp.checkpoint_steps().end());
    std::sort(steps[shard].begin(), steps[shard].end());
    if (resp.aborted())
      TANDEM_LOG(warn, "pserver shard {}: this rank restarted; the step in flight was aborted",
                 shard);
    return absl::OkStatus();
  }));
  return Intersect(steps);
}

absl::StatusOr<std::vector<uint64_t>> PServerClient::CommonCheckpointSteps() {
  std::vector<std::vector<uint64_t>> steps(num_shards());
  for (uint32_t shard = 0; shard < num_shards(); ++shard) {
    TANDEM_ASSIGN_OR_RETURN(StatusResponse st, ShardStatus(shard));
    steps[shard].assign(st.checkpoint_steps().begin(), st.checkpoint_steps().end());
    std::sort(steps[shard].begin(), steps[shard].end());
  }
  return Intersect(steps);
}

absl::Status PServerClient::CheckpointAll(uint64_t step) {
  return ForEachShard([&](uint32_t shard) -> absl::Status {
    CheckpointRequest req;
    req.set_step(step);
    req.set_rank(options_.rank);
    CheckpointResponse resp;
    auto call = [&](grpc::ClientContext* ctx) { return Stub(shard)->Checkpoint(ctx, req, &resp); };
    // Writing a large shard takes a while: allow more than one pull's time.
    const absl::Duration timeout = options_.rpc_timeout * 4;
    auto ctx = NewContext(timeout);
    return Retry(shard, call(ctx.get()), call, timeout);
  });
}

absl::StatusOr<std::vector<std::string>> PServerClient::PublishAll(const std::string& snapshot,
                                                                  uint64_t step) {
  std::vector<std::string> files(num_shards());
  TANDEM_RETURN_IF_ERROR(ForEachShard([&](uint32_t shard) -> absl::Status {
    PublishRequest req;
    req.set_snapshot(snapshot);
    req.set_step(step);
    req.set_rank(options_.rank);
    PublishResponse resp;
    auto call = [&](grpc::ClientContext* ctx) { return Stub(shard)->Publish(ctx, req, &resp); };
    const absl::Duration timeout = options_.rpc_timeout * 4;  // a whole shard is written
    auto ctx = NewContext(timeout);
    TANDEM_RETURN_IF_ERROR(Retry(shard, call(ctx.get()), call, timeout));
    files[shard] = resp.file();
    return absl::OkStatus();
  }));
  return files;
}

absl::StatusOr<uint64_t> PServerClient::RestoreAll(uint64_t step) {
  std::vector<uint64_t> rolled(num_shards(), 0);
  TANDEM_RETURN_IF_ERROR(ForEachShard([&](uint32_t shard) -> absl::Status {
    RestoreRequest req;
    req.set_step(step);
    req.set_rank(options_.rank);
    RestoreResponse resp;
    auto call = [&](grpc::ClientContext* ctx) { return Stub(shard)->Restore(ctx, req, &resp); };
    const absl::Duration timeout = options_.rpc_timeout * 4;
    auto ctx = NewContext(timeout);
    TANDEM_RETURN_IF_ERROR(Retry(shard, call(ctx.get()), call, timeout));
    if (resp.rolled_back()) {
      rolled[shard] = resp.from_version() > step ? resp.from_version() - step : 0;
      TANDEM_LOG(info, "pserver shard {} rolled back from step {} to step {}", shard,
                 resp.from_version(), step);
    }
    NoteStepsLost(shard, resp.steps_lost());
    return absl::OkStatus();
  }));
  {
    absl::MutexLock lock(&push_mu_);
    push_step_ = step;
    std::fill(push_seq_.begin(), push_seq_.end(), 0);
    for (auto& r : retained_) r.clear();
  }
  return *std::max_element(rolled.begin(), rolled.end());
}

absl::StatusOr<CheckpointResponse> PServerClient::CheckpointShard(uint32_t shard) {
  if (shard >= num_shards()) return absl::InvalidArgumentError("no such shard");
  CheckpointRequest req;
  CheckpointResponse resp;
  auto call = [&](grpc::ClientContext* ctx) { return Stub(shard)->Checkpoint(ctx, req, &resp); };
  auto ctx = NewContext(options_.rpc_timeout);
  TANDEM_RETURN_IF_ERROR(Retry(shard, call(ctx.get()), call, options_.rpc_timeout));
  return resp;
}

}  // namespace tandem::pserver
