#include "trainer/engine/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "common/logging.h"
#include "common/status.h"

namespace tandem::trainer {

SyncOptions SyncOptionsFrom(const api::SyncSpec& sync) {
  return {.bucket_mib = static_cast<double>(sync.bucket_mib),
          .compression = sync.compression == "bf16" ? collective::Compression::kBf16
                                                    : collective::Compression::kNone};
}

DataParallel::DataParallel(std::unique_ptr<collective::Communicator> comm, const SyncOptions& sync)
    : comm_(std::move(comm)), sync_(sync) {}

DataParallel::~DataParallel() { Detach(); }

void DataParallel::Detach() {
  if (net_ != nullptr) net_->SetGradientsReadyHook(nullptr);
  reducer_.reset();
  net_ = nullptr;
}

absl::Status DataParallel::Attach(Network& net, const data::BatchReader& reader) {
  const data::ReaderOptions& ro = reader.options();
  if (ro.rank != rank() || ro.world_size != world_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the training reader reads shard ", ro.rank, " of ", ro.world_size, ", this trainer is rank ",
        rank(), " of ", world_size()));
  }
  TANDEM_RETURN_IF_ERROR(AttachNetwork(net));
  reader_ = &reader;
  return absl::OkStatus();
}

absl::Status DataParallel::AttachStream(Network& net) {
  TANDEM_RETURN_IF_ERROR(AttachNetwork(net));
  reader_ = nullptr;  // a stream's batches have no fixed geometry
  return absl::OkStatus();
}

void DataParallel::BeginStreamStep(int64_t local_examples, int64_t global_examples) {
  empty_step_ = local_examples == 0;
  scale_ = global_examples > 0
               ? static_cast<float>(static_cast<double>(local_examples) * world_size() /
                                    static_cast<double>(global_examples))
               : 0.f;
}

absl::Status DataParallel::AttachNetwork(Network& net) {
  slices_.clear();
  const float* arena = net.gradient_arena();
  for (const Param& p : net.params()) {
    if (p.remote) continue;  // held by the pserver (sparse_path.h), not all-reduced
    if (p.desc.sparse) {
      return absl::UnimplementedError(absl::StrCat(
          "parameter '", p.desc.name, "' is sparse (an embedding table): sparse parameters of a "
          "data-parallel job go through the pserver (set TANDEM_PSERVERS)"));
    }
    if (p.grad.size() == 0) continue;
    slices_.push_back({static_cast<size_t>(p.grad.data() - arena),
                       static_cast<size_t>(p.grad.size())});
  }
  std::sort(slices_.begin(), slices_.end(),
            [](const auto& a, const auto& b) { return a.offset < b.offset; });
  if (net_ != nullptr) net_->SetGradientsReadyHook(nullptr);
  reducer_.reset();
  if (device_allreduce_) {
    runs_.clear();
    for (const collective::GradientSlice& sl : slices_) {
      if (!runs_.empty() && runs_.back().offset + runs_.back().count == sl.offset)
        runs_.back().count += sl.count;
      else
        runs_.push_back(sl);
    }
    net_ = &net;
    net.SetGradientsReadyHook(
        [this](int, int64_t offset, int64_t count) { OnGradientsReady(offset, count); });
    TANDEM_LOG(info, "data-parallel: rank {} of {}, dense gradients by NCCL ({} runs over {} floats)",
               rank(), world_size(), runs_.size(), net.gradient_arena_size());
    return absl::OkStatus();
  }
  collective::BucketOptions bo;
  bo.bucket_bytes = static_cast<size_t>(std::max(1.0, sync_.bucket_mib * (1 << 20)));
  bo.op = collective::ReduceOp::kAverage;
  bo.compression = sync_.compression;
  if (net_ != nullptr) net_->SetGradientsReadyHook(nullptr);
  reducer_.reset();
  TANDEM_ASSIGN_OR_RETURN(
      reducer_, collective::BucketedAllReducer::Create(
                    comm_.get(), net.gradient_arena(),
                    static_cast<size_t>(net.gradient_arena_size()), slices_, bo));
  net_ = &net;
  net.SetGradientsReadyHook(
      [this](int, int64_t offset, int64_t count) { OnGradientsReady(offset, count); });
  TANDEM_LOG(info, "data-parallel: rank {} of {}, {} gradient buckets over {} floats{}", rank(),
             world_size(), reducer_->buckets().size(), net.gradient_arena_size(),
             sync_.compression == collective::Compression::kBf16 ? ", bf16 on the wire" : "");
  return absl::OkStatus();
}

int64_t DataParallel::GlobalBatchSize(int64_t batch_index) const {
  return reader_ != nullptr ? reader_->GlobalBatchSize(batch_index) : 0;
}

absl::Status DataParallel::Reconnect(
    const std::function<absl::StatusOr<std::unique_ptr<collective::Communicator>>()>& connect) {
  Detach();
  reader_ = nullptr;
  comm_.reset();
  TANDEM_ASSIGN_OR_RETURN(comm_, connect());
  TANDEM_CHECK(comm_ != nullptr);
  return absl::OkStatus();
}

absl::Status DataParallel::Broadcast(void* data, size_t bytes, int root) {
  return comm_->Broadcast(data, bytes, root);
}

void DataParallel::BeginStep(int64_t batch_index, int64_t local_examples) {
  // The network seeds backward with 1/local_examples; the reducer averages over W ranks. Weighing
  // each rank by local * W / global makes the average the mean over the global batch. Every batch
  // is full but the last of a pass, so the factor is 1 on nearly every step.
  const int64_t global = GlobalBatchSize(batch_index);
  empty_step_ = local_examples == 0;
  scale_ = global > 0 ? static_cast<float>(static_cast<double>(local_examples) * world_size() /
                                           static_cast<double>(global))
                      : 0.f;
}

void DataParallel::OnGradientsReady(int64_t offset, int64_t count) {
  float* arena = net_->gradient_arena();
  if (scale_ != 1.f) {
    for (int64_t i = offset; i < offset + count; ++i) arena[i] *= scale_;
  }
  auto it = std::lower_bound(slices_.begin(), slices_.end(), static_cast<size_t>(offset),
                             [](const auto& s, size_t off) { return s.offset < off; });
  if (reducer_ == nullptr) return;  // the device all-reduce runs in FinishGradients
  for (; it != slices_.end() && it->offset < static_cast<size_t>(offset + count); ++it)
    reducer_->MarkReady(static_cast<size_t>(it - slices_.begin()));
}

absl::Status DataParallel::FinishGradients() {
  if (empty_step_) {
    // No batch on this rank: contribute zeros (the others weighted themselves accordingly).
    net_->device().Fill(net_->gradient_arena_size(), 0.f, net_->gradient_arena());
  }
  if (device_allreduce_) {
    net_->device().Synchronize();  // backward's last kernels wrote the gradients
    for (const collective::GradientSlice& r : runs_)
      TANDEM_RETURN_IF_ERROR(device_allreduce_(net_->gradient_arena() + r.offset,
                                               static_cast<int64_t>(r.count)));
    return absl::OkStatus();
  }
  return reducer_->Wait();
}

absl::Status DataParallel::AverageLayerState(Network& net) {
  layer_state_.clear();
  for (const Param& p : net.params())
    if (!p.desc.trainable && !p.desc.sparse)
      layer_state_.insert(layer_state_.end(), p.value.data(), p.value.data() + p.value.size());
  if (layer_state_.empty()) return absl::OkStatus();
  TANDEM_RETURN_IF_ERROR(comm_->AllReduce(layer_state_.data(), layer_state_.size(),
                                          collective::ReduceOp::kAverage),
                         "averaging layer state (batch-norm statistics)");
  size_t offset = 0;
  for (Param& p : net.params()) {
    if (p.desc.trainable || p.desc.sparse) continue;
    std::copy_n(layer_state_.data() + offset, p.value.size(), p.value.data());
    offset += p.value.size();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> DataParallel::GatherDoubles(
    const std::vector<double>& values) {
  // W broadcasts: exact (no float rounding on the wire) and small (a few values per rank).
  const size_t n = values.size();
  std::vector<double> all(n * world_size());
  std::copy(values.begin(), values.end(), all.begin() + static_cast<ptrdiff_t>(n) * rank());
  for (int r = 0; r < world_size(); ++r) {
    if (n == 0) break;
    TANDEM_RETURN_IF_ERROR(comm_->Broadcast(all.data() + n * r, n * sizeof(double), r),
                           "gathering values from rank ", r);
  }
  return all;
}

absl::StatusOr<std::vector<double>> DataParallel::SumAcrossRanks(
    const std::vector<double>& values) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> all, GatherDoubles(values));
  std::vector<double> sum(values.size(), 0.0);
  for (int r = 0; r < world_size(); ++r)
    for (size_t i = 0; i < values.size(); ++i) sum[i] += all[r * values.size() + i];
  return sum;
}

absl::StatusOr<std::vector<int64_t>> DataParallel::AllGather(int64_t value) {
  double bits;
  static_assert(sizeof(bits) == sizeof(value));
  std::memcpy(&bits, &value, sizeof(bits));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> all, GatherDoubles({bits}));
  std::vector<int64_t> out(all.size());
  for (size_t i = 0; i < all.size(); ++i) std::memcpy(&out[i], &all[i], sizeof(int64_t));
  return out;
}

absl::StatusOr<std::optional<int64_t>> DataParallel::RestoreCheckpoint(Checkpointer* checkpointer,
                                                                       bool resume, Network& net,
                                                                       Optimizer& optimizer,
                                                                       uint64_t seed,
                                                                       bool ranks_may_lack) {
  std::optional<int64_t> agreed;
  int source = 0;
  if (resume && checkpointer != nullptr) {
    // Each rank loads its newest checkpoint not above `bound`; while the ranks disagree, the bound
    // drops to the oldest step loaded. It strictly decreases, so this ends: on a step all ranks
    // have, or with some rank having none (everyone starts fresh).
    int64_t bound = std::numeric_limits<int64_t>::max();
    while (true) {
      TANDEM_ASSIGN_OR_RETURN(std::optional<int64_t> loaded,
                              checkpointer->LoadLatest(net, optimizer, bound));
      TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> steps, AllGather(loaded.value_or(-1)));
      int64_t lo = *std::min_element(steps.begin(), steps.end());
      const int64_t hi = *std::max_element(steps.begin(), steps.end());
      if (ranks_may_lack && hi >= 0) {
        // Elastic: a rank that never held a checkpoint (a worker added later) takes the others'.
        lo = hi;
        for (int64_t s : steps)
          if (s >= 0) lo = std::min(lo, s);
        if (lo == hi) {
          agreed = lo;
          source = static_cast<int>(std::find(steps.begin(), steps.end(), lo) - steps.begin());
          break;
        }
        bound = lo;
        continue;
      }
      if (lo == hi) {
        if (lo >= 0) agreed = lo;
        break;
      }
      if (lo < 0) {
        TANDEM_LOG(warn, "data-parallel: some rank has no checkpoint (steps by rank: {}); every "
                         "rank starts from scratch",
                   absl::StrJoin(steps, ","));
        net.InitParameters(seed);
        for (Tensor* t : optimizer.State()) net.device().Fill(t->size(), 0.f, t->data());
        optimizer.set_updates(0);
        break;
      }
      TANDEM_LOG(info, "data-parallel: ranks hold different checkpoints (steps by rank: {}); "
                       "looking for step {} or older",
                 absl::StrJoin(steps, ","), lo);
      bound = lo;
    }
  }
  TANDEM_RETURN_IF_ERROR(SyncState(net, optimizer, source));
  return agreed;
}

absl::Status DataParallel::SyncState(Network& net, Optimizer& optimizer, int root) {
  TANDEM_RETURN_IF_ERROR(
      comm_->Broadcast(net.parameter_arena(), net.parameter_arena_size() * sizeof(float), root),
      "broadcasting rank ", root, "'s parameters");
  for (Tensor* t : optimizer.State()) {
    TANDEM_RETURN_IF_ERROR(comm_->Broadcast(t->data(), t->size() * sizeof(float), root),
                           "broadcasting rank ", root, "'s optimizer state");
  }
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> updates, AllGather(optimizer.updates()));
  optimizer.set_updates(updates[root]);
  return absl::OkStatus();
}

}  // namespace tandem::trainer
