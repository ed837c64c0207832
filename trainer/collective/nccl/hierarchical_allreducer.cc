#include "trainer/collective/nccl/hierarchical_allreducer.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "trainer/collective/reduce_kernels.h"

namespace tandem::collective {

absl::StatusOr<std::unique_ptr<HierarchicalAllReducer>> HierarchicalAllReducer::Create(
    NcclCommunicator* local, Communicator* cross, size_t max_count) {
  if (local == nullptr || cross == nullptr)
    return absl::InvalidArgumentError("hierarchical all-reduce needs both communicators");
  std::unique_ptr<HierarchicalAllReducer> h(new HierarchicalAllReducer(local, cross));
  h->host_count_ = max_count / local->size() + local->size();
  TANDEM_RETURN_IF_ERROR(CudaStatus(
      cudaHostAlloc(reinterpret_cast<void**>(&h->host_), h->host_count_ * sizeof(float),
                    cudaHostAllocDefault),
      "pinned staging buffer"));
  return h;
}

HierarchicalAllReducer::~HierarchicalAllReducer() {
  if (host_ != nullptr) cudaFreeHost(host_);
}

absl::Status HierarchicalAllReducer::AllReduce(float* dev, size_t count, ReduceOp op,
                                               cudaStream_t stream) {
  const size_t l = static_cast<size_t>(local_->size());
  const size_t slice = count / l, tail = count % l;
  if (slice + tail > host_count_)
    return absl::InvalidArgumentError(
        absl::StrCat("all-reduce of ", count, " floats exceeds max_count"));
  const float scale = 1.0f / static_cast<float>(l * cross_->world_size());
  float* mine = dev + local_->rank() * slice;

  if (slice > 0) {
    TANDEM_RETURN_IF_ERROR(local_->ReduceScatterInPlace(dev, slice, stream));
    TANDEM_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(host_, mine, slice * sizeof(float), cudaMemcpyDeviceToHost, stream),
        "copy slice to host"));
    TANDEM_RETURN_IF_ERROR(local_->Synchronize(stream, "copy slice to host"));
    TANDEM_RETURN_IF_ERROR(cross_->AllReduce(host_, slice, ReduceOp::kSum), "across nodes");
    if (op == ReduceOp::kAverage) ScaleInPlace(host_, scale, slice);
    TANDEM_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(mine, host_, slice * sizeof(float), cudaMemcpyHostToDevice, stream),
        "copy slice to device"));
    TANDEM_RETURN_IF_ERROR(local_->AllGatherInPlace(dev, slice, stream));
  }
  if (tail > 0) {
    float* t = dev + l * slice;
    TANDEM_RETURN_IF_ERROR(local_->ReduceInPlace(t, tail, 0, stream));
    if (local_->rank() == 0) {
      float* h = host_ + slice;
      TANDEM_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpyAsync(h, t, tail * sizeof(float), cudaMemcpyDeviceToHost, stream),
          "copy tail to host"));
      TANDEM_RETURN_IF_ERROR(local_->Synchronize(stream, "copy tail to host"));
      TANDEM_RETURN_IF_ERROR(cross_->AllReduce(h, tail, ReduceOp::kSum), "tail across nodes");
      if (op == ReduceOp::kAverage) ScaleInPlace(h, scale, tail);
      TANDEM_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpyAsync(t, h, tail * sizeof(float), cudaMemcpyHostToDevice, stream),
          "copy tail to device"));
    }
    TANDEM_RETURN_IF_ERROR(local_->BroadcastInPlace(t, tail * sizeof(float), 0, stream));
  }
  return local_->Synchronize(stream, "hierarchical all-reduce");
}

}  // namespace tandem::collective
