#include "trainer/engine/sparse_path.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace tandem::trainer {
namespace {


uint64_t Mix(uint64_t x) {  // splitmix64 finaliser: table seeds from (job seed, table id)
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

pserver::OptimizerConfig ToPServer(const OptimizerConfig& c) {
  pserver::OptimizerConfig o;
  switch (c.type) {
    case OptimizerType::kSgd:
      o.set_kind(pserver::OptimizerConfig::SGD);
      break;
    case OptimizerType::kMomentum:
      o.set_kind(pserver::OptimizerConfig::MOMENTUM);
      o.set_momentum(static_cast<float>(c.momentum));
      break;
    case OptimizerType::kAdam:
      o.set_kind(pserver::OptimizerConfig::ADAM);
      o.set_beta1(static_cast<float>(c.beta1));
      o.set_beta2(static_cast<float>(c.beta2));
      o.set_epsilon(static_cast<float>(c.epsilon));
      break;
    case OptimizerType::kAdagrad:
      o.set_kind(pserver::OptimizerConfig::ADAGRAD);
      o.set_epsilon(static_cast<float>(c.epsilon));
      break;
  }
  o.set_learning_rate(static_cast<float>(c.learning_rate));
  o.set_weight_decay(static_cast<float>(c.weight_decay));
  return o;
}

}  // namespace

PServerSyncOptions PServerSyncOptionsFrom(const api::SyncSpec& sync) {
  return {.dense_on_pserver = sync.dense == "pserver",
          .async = sync.mode == "async",
          .staleness = static_cast<int>(sync.staleness)};
}

bool HasSparseTables(const ModelGraph& graph) {
  for (const GraphLayer& l : graph.layers)
    for (const ParamDesc& p : l.params)
      if (p.sparse && p.trainable) return true;
  return false;
}

absl::StatusOr<std::unique_ptr<SparsePath>> SparsePath::Connect(
    const std::vector<std::string>& endpoints, const std::string& token, const tls::TlsFiles& tls,
    int rank, const PServerSyncOptions& sync, const PServerTimeouts& timeouts,
    const PServerLayout& layout) {
  if (endpoints.empty())
    return absl::FailedPreconditionError("no parameter server to use (TANDEM_PSERVERS is empty)");
  if (token.empty() && !tls.enabled())
    return absl::FailedPreconditionError(
        "neither TANDEM_JOB_TOKEN nor the TANDEM_TLS_* files are set: the pservers accept only "
        "the job's token or certificate");
  pserver::PServerClientOptions o;
  o.endpoints = endpoints;
  o.token = token;
  o.tls = tls;
  o.rank = static_cast<uint32_t>(rank);
  o.sync = !sync.async;
  if (timeouts.rpc) o.rpc_timeout = *timeouts.rpc;
  if (timeouts.reconnect) o.reconnect_timeout = *timeouts.reconnect;
  o.shard_ids = layout.ids;
  o.placement_epoch = layout.epoch;
  o.block_size_shards = layout.block_size_shards;
  auto client = pserver::PServerClient::Connect(o);
  if (!client.ok())
    return Annotate(client.status(),
                    absl::StrCat("connecting to the pservers ", absl::StrJoin(endpoints, ",")));
  auto sp = std::make_unique<SparsePath>(std::move(*client), sync);
  sp->options_ = std::move(o);
  return sp;
}

absl::Status SparsePath::Relayout(const std::vector<std::string>& endpoints,
                                  const PServerLayout& layout) {
  if (options_.endpoints.empty())
    return absl::FailedPreconditionError("pserver client: Relayout needs a client made by Connect");
  // Rows pulled (or being prefetched) were for batches of the old readers; a prefetch caught by
  // the reshard fails (FAILED_PRECONDITION from a shard of the new layout): dropped either way.
  for (Rows* r : {&rows_[0], &rows_[1], &eval_}) {
    (void)Wait(*r);
    r->valid = false;
  }
  pserver::PServerClientOptions o = options_;
  o.endpoints = endpoints;
  o.shard_ids = layout.ids;
  o.placement_epoch = layout.epoch;
  o.block_size_shards = layout.block_size_shards;
  auto client = pserver::PServerClient::Connect(o);
  if (!client.ok())
    return Annotate(client.status(), absl::StrCat("connecting to the pservers ",
                                                  absl::StrJoin(endpoints, ","), " (layout epoch ",
                                                  layout.epoch, ")"));
  for (const pserver::TableConfig& c : configs_)
    TANDEM_RETURN_IF_ERROR((*client)->RegisterTable(c), "declaring table '", c.name(),
                           "' on the layout of epoch ", layout.epoch);
  client_ = std::move(*client);
  options_ = std::move(o);
  return absl::OkStatus();
}

SparsePath::SparsePath(std::unique_ptr<pserver::PServerClient> client,
                       const PServerSyncOptions& sync, uint64_t)
    : client_(std::move(client)), sync_(sync) {}

SparsePath::~SparsePath() {
  // Let prefetches finish before their buffers go away.
  for (Rows* r : {&rows_[0], &rows_[1], &eval_})
    for (auto& f : r->pending)
      if (f.valid()) f.wait();
}

pserver::Initializer SparsePath::InitializerFor(const ParamDesc& p, uint64_t seed,
                                               uint32_t table_id) {
  pserver::Initializer init;
  init.set_seed(Mix(seed ^ Mix(table_id)));
  switch (p.init) {
    case ParamInit::kZero:
      init.set_kind(pserver::Initializer::CONSTANT);
      init.set_value(0.f);
      break;
    case ParamInit::kOne:
      init.set_kind(pserver::Initializer::CONSTANT);
      init.set_value(1.f);
      break;
    case ParamInit::kXavier: {
      const float limit = std::sqrt(6.f / static_cast<float>(p.fan_in + p.fan_out));
      init.set_kind(pserver::Initializer::UNIFORM);
      init.set_low(-limit);
      init.set_high(limit);
      break;
    }
    case ParamInit::kHe:
      init.set_kind(pserver::Initializer::NORMAL);
      init.set_mean(0.f);
      init.set_stddev(std::sqrt(2.f / static_cast<float>(p.fan_in)));
      break;
    case ParamInit::kSmall:
      init.set_kind(pserver::Initializer::NORMAL);
      init.set_mean(0.f);
      init.set_stddev(0.01f);
      break;
  }
  return init;
}

absl::Status SparsePath::Join() {
  TANDEM_ASSIGN_OR_RETURN(std::vector<uint64_t> steps, client_->Join());
  (void)steps;
  joined_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint64_t>> SparsePath::ShardCheckpointSteps() {
  return client_->CommonCheckpointSteps();
}

absl::Status SparsePath::CheckpointShards(int64_t step) {
  return client_->CheckpointAll(static_cast<uint64_t>(step));
}

absl::StatusOr<uint64_t> SparsePath::RestoreShards(int64_t step) {
  // Rows pulled or being prefetched belong to the state before the roll-back.
  for (Rows* r : {&rows_[0], &rows_[1], &eval_}) {
    (void)Wait(*r);
    r->valid = false;
  }
  return client_->RestoreAll(static_cast<uint64_t>(step));
}

absl::Status SparsePath::Attach(Network& net, const OptimizerConfig& optimizer, uint64_t seed) {
  net_ = &net;
  if (!joined_) TANDEM_RETURN_IF_ERROR(Join(), "joining the parameter servers");
  if (optimizer.schedule != ScheduleType::kConstant) {
    return absl::InvalidArgumentError(
        "spec.optimizer.schedule: parameters held by the pserver are updated with a constant "
        "learning rate; use schedule type 'constant' with pservers");
  }
  const ModelGraph& g = net.graph();
  const pserver::OptimizerConfig opt = ToPServer(optimizer);
  // params() are in layer order, each layer's in declaration order.
  int pi = 0;
  for (size_t l = 0; l < g.layers.size(); ++l) {
    const GraphLayer& gl = g.layers[l];
    for (const ParamDesc& d : gl.params) {
      Param& p = net.params()[pi];
      const std::string name = absl::StrCat(gl.config.name, ".", d.name);
      if (p.remote) {
        Table t;
        t.id = kFirstSparseTable + static_cast<uint32_t>(tables_.size());
        t.param = pi;
        t.blob = gl.inputs.at(0);
        t.input = t.blob < static_cast<int>(g.inputs.size()) ? t.blob : -1;
        t.vocab = d.shape.dim(0);
        t.dim = static_cast<uint32_t>(d.shape.NumElements() / d.shape.dim(0));
        if (t.input < 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "spec.model: layer '", gl.config.name, "': a table on the pserver needs its ids "
              "straight from a model input"));
        }
        int bi = -1;
        for (size_t b = 0; b < blobs_.size(); ++b)
          if (blobs_[b].blob == t.blob) bi = static_cast<int>(b);
        if (bi < 0) {
          blobs_.push_back({.blob = t.blob, .input = t.input, .vocab = t.vocab, .tables = {}});
          bi = static_cast<int>(blobs_.size()) - 1;
        } else if (blobs_[bi].vocab != t.vocab) {
          return absl::InvalidArgumentError(absl::StrCat(
              "spec.model: layer '", gl.config.name, "': tables sharing the input '",
              g.inputs[t.input].name, "' on the pserver need the same vocabSize (",
              blobs_[bi].vocab, " vs ", t.vocab, ")"));
        }
        blobs_[bi].tables.push_back(static_cast<int>(tables_.size()));
        pserver::TableConfig c;
        c.set_id(t.id);
        c.set_name(name);
        c.set_kind(pserver::TableConfig::SPARSE);
        c.set_dim(t.dim);
        *c.mutable_init() = InitializerFor(d, seed, t.id);
        *c.mutable_optimizer() = opt;
        TANDEM_RETURN_IF_ERROR(client_->RegisterTable(c), "registering table '", name, "'");
        configs_.push_back(c);
        tables_.push_back(t);
      } else if (sync_.dense_on_pserver && d.trainable && !d.sparse) {
        p.remote = true;  // the pserver's optimizer updates it; values are pulled every step
        const uint32_t id = kFirstDenseTable + static_cast<uint32_t>(dense_params_.size());
        pserver::TableConfig c;
        c.set_id(id);
        c.set_name(name);
        c.set_kind(pserver::TableConfig::DENSE);
        c.set_size(static_cast<uint64_t>(d.shape.NumElements()));
        *c.mutable_init() = InitializerFor(d, seed, id);
        *c.mutable_optimizer() = opt;
        TANDEM_RETURN_IF_ERROR(client_->RegisterTable(c), "registering table '", name, "'");
        configs_.push_back(c);
        dense_params_.push_back(pi);
        dense_table_ids_.push_back(id);
      }
      ++pi;
    }
  }
  for (Rows* r : {&rows_[0], &rows_[1], &eval_}) {
    r->keys.resize(blobs_.size());
    r->batches.resize(tables_.size());
  }
  return absl::OkStatus();
}

void SparsePath::StartPass(data::BatchReader& reader, int64_t pass) {
  reader.StartPass(pass);
  reader_ = &reader;
  started_ = false;
  have_[0] = have_[1] = false;
}

const data::Batch* SparsePath::NextBatch() {
  auto read = [&](int i) {
    const data::Batch* b = reader_->Next();
    have_[i] = b != nullptr;
    if (b != nullptr) batch_buf_[i] = *b;  // buffers keep their capacity
  };
  if (!started_) {
    started_ = true;
    batch_cur_ = 0;
    read(0);
    if (have_[0]) read(1);
  } else {
    const int old = batch_cur_;
    batch_cur_ = 1 - old;
    if (have_[batch_cur_]) {
      read(old);
    } else {
      have_[old] = false;
    }
  }
  return have_[batch_cur_] ? &batch_buf_[batch_cur_] : nullptr;
}

absl::Status SparsePath::KeysOfBatch(const data::Batch& b,
                                     std::vector<std::vector<uint64_t>>* keys) const {
  // The same order as BatchFeeder::Feed writes the ids: example-major, then field.
  const ModelGraph& g = net_->graph();
  for (size_t k = 0; k < blobs_.size(); ++k) {
    const InputDef& in = g.inputs[blobs_[k].input];
    const uint64_t vocab = static_cast<uint64_t>(blobs_[k].vocab);
    std::vector<uint64_t>& out = (*keys)[k];
    out.clear();
    switch (in.source) {
      case InputSource::kFields: {
        const int64_t fields = in.shape.dim(0);
        for (int64_t e = 0; e < b.size; ++e)
          for (int64_t f = 0; f < fields; ++f) {
            const data::SparseField& sf = b.fields[f];
            for (int64_t i = sf.offsets[e]; i < sf.offsets[e + 1]; ++i)
              out.push_back((sf.ids[i] & 0x7fffffff) % vocab);
          }
        break;
      }
      case InputSource::kTokens:
      case InputSource::kTokenTargets:
      case InputSource::kSourceTokens: {
        const bool source = in.source == InputSource::kSourceTokens;
        const auto& src = source ? b.source_tokens
                                 : in.source == InputSource::kTokens ? b.tokens : b.token_targets;
        const int64_t n =
            static_cast<int64_t>(b.size) * (source ? b.source_length : b.sequence_length);
        for (int64_t i = 0; i < n; ++i) out.push_back(static_cast<uint64_t>(src[i]) % vocab);
        break;
      }
      default:
        return absl::InternalError(absl::StrCat("input '", in.name, "' carries no ids"));
    }
  }
  return absl::OkStatus();
}

absl::Status SparsePath::Pull(Rows& rows, bool prefetch) {
  rows.pending.clear();
  for (size_t k = 0; k < blobs_.size(); ++k) {
    for (int t : blobs_[k].tables) {
      if (prefetch) {
        rows.pending.push_back(
            client_->PrefetchSparse(tables_[t].id, rows.keys[k], &rows.batches[t]));
      } else {
        TANDEM_RETURN_IF_ERROR(client_->PullSparse(tables_[t].id, rows.keys[k], &rows.batches[t]),
                               "pulling table ", tables_[t].id);
      }
    }
  }
  rows.valid = true;
  return absl::OkStatus();
}

absl::Status SparsePath::Wait(Rows& rows) {
  absl::Status status;
  for (auto& f : rows.pending)
    if (f.valid()) status.Update(f.get());
  rows.pending.clear();
  if (!status.ok()) rows.valid = false;
  return status;
}

absl::Status SparsePath::Install(const Rows& rows) {
  for (size_t k = 0; k < blobs_.size(); ++k) {
    Blob& ids = net_->input(blobs_[k].input);
    if (ids.ids.size() != rows.keys[k].size()) {
      return absl::InternalError(absl::StrCat("sparse path: ", rows.keys[k].size(),
                                              " keys pulled for ", ids.ids.size(), " ids"));
    }
    const pserver::SparseBatch& first = rows.batches[blobs_[k].tables[0]];
    const auto slots = first.slots();
    for (size_t i = 0; i < slots.size(); ++i) ids.ids[i] = static_cast<int32_t>(slots[i]);
    ids_seen_ += slots.size();
    for (int t : blobs_[k].tables) {
      const pserver::SparseBatch& b = rows.batches[t];
      Param& p = net_->params()[tables_[t].param];
      const int64_t u = static_cast<int64_t>(b.unique_keys().size());
      const Shape shape({std::max<int64_t>(u, 1), static_cast<int64_t>(tables_[t].dim)});
      p.value.Resize(net_->device(), shape);
      p.grad.Resize(net_->device(), shape);
      if (u > 0) std::memcpy(p.value.data(), b.rows().data(), sizeof(float) * b.rows().size());
      p.row_slot.assign(u, -1);
      p.touched_rows.clear();
      rows_pulled_ += u;
    }
  }
  return absl::OkStatus();
}

absl::Status SparsePath::PullDense() {
  for (size_t i = 0; i < dense_params_.size(); ++i) {
    Param& p = net_->params()[dense_params_[i]];
    TANDEM_RETURN_IF_ERROR(
        client_->PullDense(dense_table_ids_[i], absl::MakeSpan(p.value.data(), p.value.size())),
        "pulling dense table ", dense_table_ids_[i]);
  }
  return absl::OkStatus();
}

absl::Status SparsePath::StartPrefetch() {
  const int nxt = 1 - batch_cur_;
  if (!have_[nxt]) return absl::OkStatus();
  Rows& r = rows_[1 - cur_];
  TANDEM_RETURN_IF_ERROR(Wait(r));
  TANDEM_RETURN_IF_ERROR(KeysOfBatch(batch_buf_[nxt], &r.keys));
  return Pull(r, /*prefetch=*/true);
}

absl::Status SparsePath::BeforeForward(uint64_t) {
  Rows& r = rows_[cur_];
  if (r.valid) {
    TANDEM_RETURN_IF_ERROR(Wait(r), "prefetching rows");
    // The prefetch was for the batch now fed: its keys must be the blob's (else pull again).
    bool same = true;
    for (size_t k = 0; k < blobs_.size() && same; ++k) {
      const Blob& ids = net_->input(blobs_[k].input);
      same = ids.ids.size() == r.keys[k].size();
      for (size_t i = 0; same && i < ids.ids.size(); ++i)
        same = static_cast<uint64_t>(ids.ids[i]) % static_cast<uint64_t>(blobs_[k].vocab) ==
               r.keys[k][i];
    }
    if (!same) r.valid = false;
  }
  if (!r.valid) {
    for (size_t k = 0; k < blobs_.size(); ++k) {
      const Blob& ids = net_->input(blobs_[k].input);
      r.keys[k].resize(ids.ids.size());
      const uint64_t vocab = static_cast<uint64_t>(blobs_[k].vocab);
      for (size_t i = 0; i < ids.ids.size(); ++i)
        r.keys[k][i] = static_cast<uint64_t>(ids.ids[i]) % vocab;
    }
    TANDEM_RETURN_IF_ERROR(Pull(r, /*prefetch=*/false));
  }
  TANDEM_RETURN_IF_ERROR(Install(r));
  if (sync_.dense_on_pserver) TANDEM_RETURN_IF_ERROR(PullDense());
  // Async: the next batch's rows travel while this one computes.
  if (sync_.async) TANDEM_RETURN_IF_ERROR(StartPrefetch());
  return absl::OkStatus();
}

absl::Status SparsePath::AfterBackward(uint64_t step) {
  Rows& r = rows_[cur_];
  for (size_t t = 0; t < tables_.size(); ++t) {
    Param& p = net_->params()[tables_[t].param];
    const pserver::SparseBatch& b = r.batches[t];
    const size_t u = b.unique_keys().size();
    const size_t dim = tables_[t].dim;
    // The pserver takes the gradient in slot order; backward left compact rows in first-touch
    // order (Param). Slots no id used this step (padding positions of sequences) push zeros.
    push_rows_.assign(u * dim, 0.f);
    for (size_t k = 0; k < p.touched_rows.size(); ++k)
      std::memcpy(push_rows_.data() + static_cast<size_t>(p.touched_rows[k]) * dim,
                  p.grad.data() + k * dim, sizeof(float) * dim);
    TANDEM_RETURN_IF_ERROR(client_->PushSparse(b, push_rows_, step), "pushing table ",
                           tables_[t].id);
    rows_pushed_ += u;
    for (int32_t slot : p.touched_rows) p.row_slot[slot] = -1;
    p.touched_rows.clear();
  }
  for (size_t i = 0; i < dense_params_.size(); ++i) {
    const Param& p = net_->params()[dense_params_[i]];
    TANDEM_RETURN_IF_ERROR(client_->PushDense(dense_table_ids_[i],
                                              absl::MakeConstSpan(p.grad.data(), p.grad.size()),
                                              step),
                           "pushing dense table ", dense_table_ids_[i]);
  }
  TANDEM_RETURN_IF_ERROR(client_->FinishStep(step), "step barrier of step ", step);
  r.valid = false;
  // Sync: the next rows may only be read once every trainer's step is applied; they travel while
  // the engine finishes this step (dense all-reduce wait, optimizer, metrics, next batch).
  if (!sync_.async) TANDEM_RETURN_IF_ERROR(StartPrefetch());
  cur_ = 1 - cur_;
  return absl::OkStatus();
}

absl::Status SparsePath::EmptyStep(uint64_t step) {
  TANDEM_RETURN_IF_ERROR(client_->FinishStep(step), "step barrier of step ", step);
  return absl::OkStatus();
}

absl::Status SparsePath::PrepareEval() {
  for (size_t k = 0; k < blobs_.size(); ++k) {
    const Blob& ids = net_->input(blobs_[k].input);
    eval_.keys[k].resize(ids.ids.size());
    const uint64_t vocab = static_cast<uint64_t>(blobs_[k].vocab);
    for (size_t i = 0; i < ids.ids.size(); ++i)
      eval_.keys[k][i] = static_cast<uint64_t>(ids.ids[i]) % vocab;
  }
  TANDEM_RETURN_IF_ERROR(Pull(eval_, /*prefetch=*/false));
  const uint64_t pulled = rows_pulled_, seen = ids_seen_;
  TANDEM_RETURN_IF_ERROR(Install(eval_));
  rows_pulled_ = pulled;  // count training traffic only
  ids_seen_ = seen;
  if (sync_.dense_on_pserver) TANDEM_RETURN_IF_ERROR(PullDense());
  return absl::OkStatus();
}

}  // namespace tandem::trainer
