#include "pserver/server.h"

#include <chrono>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/model_snapshot.h"
#include "common/status.h"
#include "grpcpp/grpcpp.h"
#include "proto/pserver.grpc.pb.h"
#include "pserver/metrics.h"
#include "pserver/tls_credentials.h"

namespace tandem::pserver {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

// Compares without an early exit, so response time does not reveal how much of a guess matched.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

class PServer::Service final : public ParameterServer::Service {
 public:
  Service(PServer* server, std::string token, size_t max_request_bytes)
      : server_(server),
        expected_(token.empty() ? "" : absl::StrCat("Bearer ", token)),
        max_request_bytes_(max_request_bytes),
        m_(PServerMetrics::Get()) {}

  grpc::Status RegisterTable(grpc::ServerContext* ctx, const RegisterTableRequest* req,
                             RegisterTableResponse* resp) override {
    return Handle(ctx, *req, [&] { return shard().RegisterTable(*req, resp); });
  }

  grpc::Status PullSparse(grpc::ServerContext* ctx, const PullSparseRequest* req,
                          PullSparseResponse* resp) override {
    return DataRpc(
        ctx, *req, PServerMetrics::kSparse, PServerMetrics::kPull,
        [&] { return shard().PullSparse(*req, resp); },
        [&] { return Moved{req->keys_size(), resp->values_size()}; });
  }

  grpc::Status PushSparse(grpc::ServerContext* ctx, const PushSparseRequest* req,
                          PushResponse* resp) override {
    grpc::Status s = DataRpc(
        ctx, *req, PServerMetrics::kSparse, PServerMetrics::kPush,
        [&] { return shard().PushSparse(*req, resp); },
        [&] { return Moved{req->keys_size(), req->grads_size()}; });
    if (s.ok()) NotePush(*resp);
    return s;
  }

  grpc::Status PullDense(grpc::ServerContext* ctx, const PullDenseRequest* req,
                         PullDenseResponse* resp) override {
    return DataRpc(
        ctx, *req, PServerMetrics::kDense, PServerMetrics::kPull,
        [&] { return shard().PullDense(*req, resp); },
        [&] { return Moved{req->block_ids_size(), resp->values_size()}; });
  }

  grpc::Status PushDense(grpc::ServerContext* ctx, const PushDenseRequest* req,
                         PushResponse* resp) override {
    grpc::Status s = DataRpc(
        ctx, *req, PServerMetrics::kDense, PServerMetrics::kPush,
        [&] { return shard().PushDense(*req, resp); },
        [&] { return Moved{req->block_ids_size(), req->grads_size()}; });
    if (s.ok()) NotePush(*resp);
    return s;
  }

  grpc::Status StepBarrier(grpc::ServerContext* ctx, const StepBarrierRequest* req,
                           StepBarrierResponse* resp) override {
    return Handle(ctx, *req, [&] {
      absl::Time deadline = absl::Now() + server_->options_.barrier_timeout;
      const auto client_deadline = ctx->deadline();
      if (client_deadline != std::chrono::system_clock::time_point::max())
        deadline = std::min(deadline, absl::FromChrono(client_deadline));
      absl::Status s = shard().StepBarrier(*req, deadline, resp);
      m_.version->Set(static_cast<double>(resp->version()));
      m_.steps_lost->Set(static_cast<double>(resp->steps_lost()));
      return s;
    });
  }

  grpc::Status Checkpoint(grpc::ServerContext* ctx, const CheckpointRequest* req,
                          CheckpointResponse* resp) override {
    return Handle(ctx, *req, [&]() -> absl::Status {
      if (req->step() > 0) return server_->CheckpointAtStep(req->step(), resp);
      TANDEM_ASSIGN_OR_RETURN(std::string path, server_->CheckpointNow());
      resp->set_path(path);
      resp->set_version(server_->last_checkpoint_version());
      resp->set_step(resp->version());
      return absl::OkStatus();
    });
  }

  grpc::Status Join(grpc::ServerContext* ctx, const JoinRequest* req,
                    JoinResponse* resp) override {
    return Handle(ctx, *req, [&]() -> absl::Status {
      TANDEM_RETURN_IF_ERROR(shard().Join(*req, resp));
      if (resp->aborted()) m_.aborted_steps->Inc();
      for (uint64_t s : server_->CheckpointSteps()) resp->add_checkpoint_steps(s);
      return absl::OkStatus();
    });
  }

  grpc::Status Restore(grpc::ServerContext* ctx, const RestoreRequest* req,
                       RestoreResponse* resp) override {
    return Handle(ctx, *req, [&] { return server_->RestoreToStep(*req, resp); });
  }

  grpc::Status Publish(grpc::ServerContext* ctx, const PublishRequest* req,
                       PublishResponse* resp) override {
    return Handle(ctx, *req, [&] { return server_->Publish(*req, resp); });
  }

  grpc::Status ReshardBegin(grpc::ServerContext* ctx, const ReshardBeginRequest* req,
                            ReshardBeginResponse* resp) override {
    return Handle(ctx, *req, [&] { return shard().BeginReshard(*req, resp); });
  }

  grpc::Status ReshardSend(grpc::ServerContext* ctx, const ReshardSendRequest* req,
                           ReshardSendResponse* resp) override {
    return Handle(ctx, *req, [&] { return server_->SendReshard(req->epoch(), resp); });
  }

  grpc::Status ReshardReceive(grpc::ServerContext* ctx, const ReshardData* req,
                              ReshardDataResponse*) override {
    return Handle(ctx, *req, [&] { return shard().ReceiveReshard(*req); });
  }

  grpc::Status ReshardCommit(grpc::ServerContext* ctx, const ReshardCommitRequest* req,
                             ReshardCommitResponse* resp) override {
    return Handle(ctx, *req, [&]() -> absl::Status {
      TANDEM_RETURN_IF_ERROR(shard().CommitReshard(*req, resp));
      m_.reshards_committed->Inc();
      m_.reshard_received->Inc(
          static_cast<double>(resp->rows_received() + resp->blocks_received()));
      m_.layout_epoch->Set(static_cast<double>(req->epoch()));
      return absl::OkStatus();
    });
  }

  grpc::Status ReshardAbort(grpc::ServerContext* ctx, const ReshardAbortRequest* req,
                            ReshardAbortResponse*) override {
    return Handle(ctx, *req, [&]() -> absl::Status {
      bool aborted = false;
      TANDEM_RETURN_IF_ERROR(shard().AbortReshard(*req, &aborted));
      if (aborted) m_.reshards_aborted->Inc();
      return absl::OkStatus();
    });
  }

  grpc::Status Status(grpc::ServerContext* ctx, const StatusRequest* req,
                      StatusResponse* resp) override {
    return Handle(ctx, *req, [&] {
      shard().FillStatus(resp);
      resp->set_last_checkpoint_version(server_->last_checkpoint_version());
      for (uint64_t s : server_->CheckpointSteps()) resp->add_checkpoint_steps(s);
      return absl::OkStatus();
    });
  }

 private:
  Shard& shard() { return *server_->shard_; }

  void NotePush(const PushResponse& resp) {
    if (resp.dropped_stale()) m_.stale_dropped->Inc();
    if (resp.ignored()) m_.ignored_pushes->Inc();
    m_.version->Set(static_cast<double>(resp.version()));
    m_.steps_lost->Set(static_cast<double>(resp.steps_lost()));
  }

  absl::Status Authenticate(const grpc::ServerContext* ctx) const {
    if (expected_.empty()) return absl::OkStatus();  // mutual TLS alone (checked at the handshake)
    const auto& md = ctx->client_metadata();
    auto it = md.find("authorization");
    if (it == md.end())
      return absl::UnauthenticatedError("missing 'authorization: Bearer <job token>' metadata");
    if (!ConstantTimeEquals(std::string_view(it->second.data(), it->second.size()), expected_))
      return absl::UnauthenticatedError("the job token does not match this job's");
    return absl::OkStatus();
  }

  // What a pull or push moved: sparse rows (dense: blocks) and float values.
  struct Moved {
    int rows;
    int floats;
  };
  // A pull or push: handled as every RPC (Handle), then, when it succeeded, its latency, rows and
  // bytes recorded under `kind` (dense/sparse) and `op` (pull/push).
  template <typename Fn, typename MovedFn>
  grpc::Status DataRpc(grpc::ServerContext* ctx, const google::protobuf::Message& req, int kind,
                       int op, Fn&& fn, MovedFn&& moved) {
    const auto start = std::chrono::steady_clock::now();
    grpc::Status s = Handle(ctx, req, std::forward<Fn>(fn));
    if (s.ok()) {
      auto& latency = op == PServerMetrics::kPull ? m_.pull_latency : m_.push_latency;
      latency[PServerMetrics::kServer][kind]->Observe(SecondsSince(start));
      const Moved m = moved();
      m_.rows[PServerMetrics::kServer][op]->Inc(m.rows);
      m_.bytes[PServerMetrics::kServer][op]->Inc(m.floats * 4.0);
    }
    return s;
  }

  template <typename Fn>
  grpc::Status Handle(grpc::ServerContext* ctx, const google::protobuf::Message& req, Fn&& fn) {
    if (absl::Status s = Authenticate(ctx); !s.ok()) {
      m_.rejected_unauthenticated->Inc();
      return ToGrpc(s);
    }
    if (req.ByteSizeLong() > max_request_bytes_) {
      m_.rejected_invalid->Inc();
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("request of ", req.ByteSizeLong(), " bytes exceeds this shard's limit of ",
                       max_request_bytes_, " bytes"));
    }
    absl::Status s = fn();
    switch (s.code()) {
      case absl::StatusCode::kOk:
      case absl::StatusCode::kDeadlineExceeded:  // a barrier waiting for slow trainers
      case absl::StatusCode::kUnavailable:       // shutting down
      case absl::StatusCode::kAborted:           // trainers must resume from a checkpoint
        break;
      case absl::StatusCode::kInvalidArgument:
        m_.rejected_invalid->Inc();
        break;
      default:
        m_.rejected_other->Inc();
    }
    return ToGrpc(s);
  }

  PServer* const server_;
  const std::string expected_;
  const size_t max_request_bytes_;
  PServerMetrics& m_;
};

PServer::PServer(const PServerOptions& options) : options_(options) {}

PServer::~PServer() { (void)Stop(false); }

absl::StatusOr<std::unique_ptr<PServer>> PServer::Start(const PServerOptions& options) {
  if (options.token.empty() && !options.tls.enabled())
    return absl::InvalidArgumentError(
        "the job token is empty (set TANDEM_JOB_TOKEN, or the TLS files for mutual TLS)");
  if (options.tls.enabled())
    TANDEM_RETURN_IF_ERROR(CheckTlsFiles(options.tls), "the pserver's TLS files");
  if (!options.shard.members.empty()) {
    // Elastic: rendezvous placement over shard ids.
    const auto& m = options.shard.members;
    if (std::find(m.begin(), m.end(), options.shard.shard) == m.end())
      return absl::InvalidArgumentError(absl::StrCat(
          "shard ", options.shard.shard, " is not among the layout's shards ",
          Placement::Rendezvous(options.shard.placement_epoch, m).ToString()));
    if (!options.checkpoint_dir.empty())
      return absl::InvalidArgumentError(
          "an elastic (resharding) pserver cannot checkpoint yet: its files would be keyed by a "
          "layout that changes (docs/elastic.md)");
  } else if (options.shard.num_shards == 0 || options.shard.shard >= options.shard.num_shards) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", options.shard.shard, " is not below num_shards ", options.shard.num_shards));
  }
  if (options.shard.num_trainers == 0)
    return absl::InvalidArgumentError("num_trainers must be > 0");
  std::unique_ptr<PServer> ps(new PServer(options));
  ShardOptions shard_options = options.shard;
  if (!shard_options.members.empty())
    shard_options.num_shards = static_cast<uint32_t>(shard_options.members.size());
  shard_options.max_response_floats =
      std::min<uint64_t>(shard_options.max_response_floats, options.max_request_bytes / 4);
  ps->shard_ = std::make_unique<Shard>(shard_options);
  if (!options.checkpoint_dir.empty()) {
    ps->checkpointer_ = std::make_unique<ShardCheckpointer>(
        options.checkpoint_dir, options.shard.shard, options.checkpoint_keep);
    TANDEM_ASSIGN_OR_RETURN(std::optional<ShardState> state, ps->checkpointer_->LoadLatest());
    if (state) {
      TANDEM_RETURN_IF_ERROR(ps->shard_->Restore(*state), "restoring shard ", options.shard.shard);
      TANDEM_LOG(info, "shard {} restored at version {} ({} tables)", options.shard.shard,
                 state->version, state->tables.size());
      absl::MutexLock lock(&ps->mu_);
      ps->seen_version_ = ps->last_checkpoint_version_ = state->version;
      ps->has_checkpoint_ = true;
    }
  }
  PServerMetrics::Get().layout_epoch->Set(static_cast<double>(options.shard.placement_epoch));
  ps->service_ = std::make_unique<Service>(ps.get(), options.token, options.max_request_bytes);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port),
                           options.tls.enabled()
                               ? MutualTlsServerCredentials(options.tls, options.tls_reload_interval)
                               : grpc::InsecureServerCredentials(),
                           &ps->port_);
  const int transport_limit =
      static_cast<int>(std::min<size_t>(options.max_request_bytes + (1 << 20), INT32_MAX));
  builder.SetMaxReceiveMessageSize(transport_limit);
  builder.SetMaxSendMessageSize(transport_limit);
  // Trainers ping open calls to notice partitions (pserver/client/pserver_client.cc): accept it
  // (gRPC's default answers pings more often than every 5 minutes with GOAWAY).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 400);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.RegisterService(ps->service_.get());
  ps->server_ = builder.BuildAndStart();
  if (!ps->server_ || ps->port_ == 0)
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port));
  if (ps->checkpointer_ && options.checkpoint_interval > 0) {
    PServer* raw = ps.get();
    ps->shard_->SetVersionListener([raw](uint64_t v) {
      {
        absl::MutexLock lock(&raw->mu_);
        raw->seen_version_ = v;
      }
      raw->cv_.SignalAll();
    });
    ps->checkpoint_thread_ = std::thread([raw] { raw->CheckpointLoop(); });
  }
  TANDEM_LOG(info, "shard {}/{} serving on port {} ({} mode, {} trainers, {})", options.shard.shard,
             options.shard.num_shards, ps->port_, options.shard.sync ? "sync" : "async",
             options.shard.num_trainers, options.tls.enabled() ? "mutual TLS" : "plaintext + token");
  return ps;
}

uint64_t PServer::last_checkpoint_version() const {
  absl::MutexLock lock(&mu_);
  return last_checkpoint_version_;
}

absl::StatusOr<std::string> PServer::CheckpointNow() {
  if (!checkpointer_) return absl::FailedPreconditionError("this pserver has no --checkpoint-dir");
  absl::MutexLock write_lock(&checkpoint_mu_);
  const auto start = std::chrono::steady_clock::now();
  ShardState state = shard_->Snapshot();
  auto path = checkpointer_->Write(state);
  auto& m = PServerMetrics::Get();
  if (!path.ok()) {
    m.checkpoints_failed->Inc();
    TANDEM_LOG(error, "checkpoint of shard {} failed: {}", options_.shard.shard,
               path.status().ToString());
    return path.status();
  }
  m.checkpoint_duration->Observe(SecondsSince(start));
  m.checkpoints_ok->Inc();
  {
    absl::MutexLock lock(&mu_);
    last_checkpoint_version_ = state.version;
    has_checkpoint_ = true;
  }
  TANDEM_LOG(debug, "shard {} checkpoint at version {}: {}", options_.shard.shard, state.version,
             *path);
  return path;
}

absl::Status PServer::Publish(const PublishRequest& req, PublishResponse* resp) {
  if (options_.publish_dir.empty())
    return absl::FailedPreconditionError("this pserver has no publish directory (spec.publish)");
  // The name comes over the wire: only a staging directory's name, never a path.
  if (!snapshot::IsStagingName(req.snapshot()))
    return absl::InvalidArgumentError(
        absl::StrCat("publish: \"", req.snapshot(), "\" is not a snapshot staging directory name"));
  const std::string dir = absl::StrCat(options_.publish_dir, "/", req.snapshot());
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return absl::FailedPreconditionError(absl::StrCat("publish: ", dir, " does not exist"));
  const std::string name = snapshot::ShardFileName(options_.shard.shard);
  ShardState state = shard_->Snapshot();
  TANDEM_RETURN_IF_ERROR(WriteShardState(absl::StrCat(dir, "/", name), state), "publish shard ",
                         options_.shard.shard);
  resp->set_file(name);
  resp->set_version(state.version);
  TANDEM_LOG(debug, "shard {} published version {} for step {} into {}", options_.shard.shard,
             state.version, req.step(), dir);
  return absl::OkStatus();
}

absl::Status PServer::SendReshard(uint64_t epoch, ReshardSendResponse* resp) {
  TANDEM_ASSIGN_OR_RETURN(OutgoingReshard out, shard_->PrepareOutgoing(epoch));
  const uint32_t self = options_.shard.shard;
  // Chunks of at most a quarter of the request limit, one table slice each; the last chunk to a
  // shard is an empty one marked `last`.
  const size_t chunk_floats = std::max<size_t>(1024, options_.max_request_bytes / 16);
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(out.by_shard.size());
  size_t i = 0;
  // Every destination's endpoint is checked before any thread starts: returning with a thread
  // still joinable would terminate the process.
  for (const auto& entry : out.by_shard) {
    if (out.endpoints.find(entry.first) == out.endpoints.end())
      return absl::InternalError(absl::StrCat("reshard: no endpoint for shard ", entry.first));
  }
  for (auto& entry : out.by_shard) {
    const uint32_t dest = entry.first;
    std::vector<ReshardTable>* tables = &entry.second;  // by value: outlives the loop iteration
    const std::string endpoint = out.endpoints.find(dest)->second;
    threads.emplace_back([&, dest, tables, endpoint, slot = i] {
      grpc::ChannelArguments args;
      const int limit =
          static_cast<int>(std::min<size_t>(options_.max_request_bytes + (1 << 20), INT32_MAX));
      args.SetMaxSendMessageSize(limit);
      args.SetMaxReceiveMessageSize(limit);
      auto channel = grpc::CreateCustomChannel(
          endpoint,
          options_.tls.enabled()
              ? MutualTlsChannelCredentials(options_.tls, options_.tls_reload_interval)
              : grpc::InsecureChannelCredentials(),
          args);
      auto stub = ParameterServer::NewStub(channel);
      uint32_t seq = 0;
      auto send = [&](const ReshardData& data) -> absl::Status {
        // The receiver may not have begun yet, or be briefly unreachable: retry for a minute.
        const absl::Time give_up = absl::Now() + absl::Seconds(60);
        absl::Duration backoff = absl::Milliseconds(20);
        while (true) {
          grpc::ClientContext ctx;
          if (!options_.token.empty())
            ctx.AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
          ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
          ReshardDataResponse r;
          grpc::Status st = stub->ReshardReceive(&ctx, data, &r);
          if (st.ok()) return absl::OkStatus();
          const bool transient = st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                                 st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
          if (!transient || absl::Now() + backoff > give_up)
            return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                                absl::StrCat("reshard: sending to shard ", dest, " at ", endpoint,
                                             ": ", st.error_message()));
          absl::SleepFor(backoff);
          backoff = std::min(backoff * 2, absl::Seconds(1));
        }
      };
      for (ReshardTable& t : *tables) {
        // Floats per key: a sparse row's, or a dense block's (the last block may be short).
        const TableConfig& c = t.config();
        const size_t n = t.keys_size();
        std::vector<size_t> width(n);
        uint64_t params = 0;
        for (size_t k = 0; k < n; ++k) {
          width[k] = c.kind() == TableConfig::SPARSE
                         ? c.dim()
                         : std::min<uint64_t>(c.block_size(),
                                              c.size() - t.keys(k) * c.block_size());
          params += width[k];
        }
        const size_t stride = params == 0 ? 1 : t.values_size() / params;
        size_t first = 0, vfirst = 0;
        do {
          size_t count = 0, vcount = 0;
          while (first + count < n && (count == 0 || vcount + width[first + count] * stride <=
                                                         chunk_floats)) {
            vcount += width[first + count] * stride;
            ++count;
          }
          ReshardData data;
          data.set_epoch(epoch);
          data.set_from(self);
          data.set_seq(seq++);
          data.set_version(out.version);
          ReshardTable* piece = data.add_tables();
          *piece->mutable_config() = c;
          piece->mutable_keys()->Add(t.keys().begin() + first, t.keys().begin() + first + count);
          piece->mutable_counts()->Add(t.counts().begin() + first,
                                       t.counts().begin() + first + count);
          piece->mutable_values()->Add(t.values().begin() + vfirst,
                                       t.values().begin() + vfirst + vcount);
          if (absl::Status st = send(data); !st.ok()) {
            results[slot] = st;
            return;
          }
          first += count;
          vfirst += vcount;
        } while (first < n);
      }
      ReshardData last;
      last.set_epoch(epoch);
      last.set_from(self);
      last.set_seq(seq++);
      last.set_last(true);
      last.set_version(out.version);
      results[slot] = send(last);
    });
    ++i;
  }
  for (auto& t : threads) t.join();
  for (const absl::Status& st : results) TANDEM_RETURN_IF_ERROR(st);
  PServerMetrics::Get().reshard_sent->Inc(static_cast<double>(out.rows_sent + out.blocks_sent));
  resp->set_rows_sent(out.rows_sent);
  resp->set_blocks_sent(out.blocks_sent);
  resp->set_bytes_sent(out.bytes_sent);
  resp->set_rows_kept(out.rows_kept);
  resp->set_blocks_kept(out.blocks_kept);
  TANDEM_LOG(info, "shard {}: sent {} rows and {} blocks ({} bytes) for epoch {}", self,
             out.rows_sent, out.blocks_sent, out.bytes_sent, epoch);
  return absl::OkStatus();
}

std::vector<uint64_t> PServer::CheckpointSteps() const {
  return checkpointer_ ? checkpointer_->Steps() : std::vector<uint64_t>{};
}

absl::Status PServer::CheckpointAtStep(uint64_t step, CheckpointResponse* resp) {
  if (!checkpointer_) return absl::FailedPreconditionError("this pserver has no --checkpoint-dir");
  absl::MutexLock write_lock(&checkpoint_mu_);
  {
    absl::MutexLock lock(&mu_);
    // Another trainer already asked for this step: one file serves every rank.
    if (last_cut_step_ == step && !last_cut_path_.empty()) {
      resp->set_path(last_cut_path_);
      resp->set_version(last_cut_version_);
      resp->set_step(step);
      return absl::OkStatus();
    }
  }
  const auto start = std::chrono::steady_clock::now();
  TANDEM_ASSIGN_OR_RETURN(ShardState state, shard_->SnapshotAtStep(step));
  auto path = checkpointer_->Write(state, step);
  auto& m = PServerMetrics::Get();
  if (!path.ok()) {
    m.checkpoints_failed->Inc();
    TANDEM_LOG(error, "checkpoint of step {} on shard {} failed: {}", step, options_.shard.shard,
               path.status().ToString());
    return path.status();
  }
  m.checkpoint_duration->Observe(SecondsSince(start));
  m.checkpoints_ok->Inc();
  {
    absl::MutexLock lock(&mu_);
    last_checkpoint_version_ = state.version;
    has_checkpoint_ = true;
    last_cut_step_ = step;
    last_cut_path_ = *path;
    last_cut_version_ = state.version;
  }
  resp->set_path(*path);
  resp->set_version(state.version);
  resp->set_step(step);
  TANDEM_LOG(debug, "shard {}: checkpoint of step {}: {}", options_.shard.shard, step, *path);
  return absl::OkStatus();
}

absl::Status PServer::RestoreToStep(const RestoreRequest& req, RestoreResponse* resp) {
  absl::MutexLock write_lock(&checkpoint_mu_);
  auto load = [&](uint64_t step) -> absl::StatusOr<ShardState> {
    if (!checkpointer_)
      return absl::FailedPreconditionError(absl::StrCat(
          "pserver shard ", options_.shard.shard, " has no --checkpoint-dir, so it cannot roll "
          "back to step ", step));
    return checkpointer_->Load(step);
  };
  TANDEM_RETURN_IF_ERROR(shard_->RestoreToStep(req, load, resp));
  if (resp->rolled_back()) {
    PServerMetrics::Get().rollbacks->Inc();
    PServerMetrics::Get().version->Set(static_cast<double>(resp->version()));
    PServerMetrics::Get().steps_lost->Set(static_cast<double>(resp->steps_lost()));
    // Checkpoints above `step` belong to the abandoned run; the resumed run writes its own.
    if (checkpointer_) checkpointer_->RemoveAbove(req.step());
    absl::MutexLock lock(&mu_);
    last_cut_step_ = 0;
    last_cut_path_.clear();
    seen_version_ = resp->version();
  }
  return absl::OkStatus();
}

void PServer::CheckpointLoop() {
  const uint64_t interval = options_.checkpoint_interval;
  absl::MutexLock lock(&mu_);
  // Due when the version crossed a multiple of the interval since the last attempt; a failed
  // write is retried at the next multiple, not in a loop.
  uint64_t attempted = last_checkpoint_version_;
  while (!stopping_) {
    if (seen_version_ / interval <= attempted / interval) {
      cv_.Wait(&mu_);
      continue;
    }
    attempted = seen_version_;
    mu_.Unlock();
    // Trainers that drive consistent checkpoints (Checkpoint with a step) own the schedule.
    if (!shard_->cut_mode()) (void)CheckpointNow();
    mu_.Lock();
  }
}

absl::Status PServer::Stop(bool final_checkpoint) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return absl::OkStatus();
    stopped_ = true;
    stopping_ = true;
  }
  cv_.SignalAll();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
  shard_->Shutdown();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (final_checkpoint && checkpointer_) {
    auto path = CheckpointNow();
    if (!path.ok()) return path.status();
    TANDEM_LOG(info, "shard {}: final checkpoint at version {}: {}", options_.shard.shard,
               last_checkpoint_version(), *path);
  }
  return absl::OkStatus();
}

}  // namespace tandem::pserver
