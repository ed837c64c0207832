#include "trainer/collective/nccl/nccl_communicator.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::collective {

absl::Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(what, ": ", cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::CreateOver(
    Communicator& bootstrap, int device, const NcclOptions& options) {
  return Create(
      bootstrap.rank(), bootstrap.world_size(), device,
      [&bootstrap](ncclUniqueId* id) { return bootstrap.Broadcast(id, sizeof(*id), 0); }, options);
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(
    int rank, int world_size, int device,
    const std::function<absl::Status(ncclUniqueId* id)>& share_id, const NcclOptions& options) {
  TANDEM_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
  ncclUniqueId id{};
  if (rank == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess)
      return absl::InternalError(absl::StrCat("ncclGetUniqueId: ", ncclGetErrorString(r)));
  }
  TANDEM_RETURN_IF_ERROR(share_id(&id), "sharing the NCCL id");
  // Non-blocking mode lets Synchronize() bound every wait and abort a communicator whose peer
  // is gone (a blocking init or collective could otherwise wait forever).
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t r =
      ncclCommInitRankConfig(&comm, world_size, id, rank, &config);
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  while (r == ncclInProgress || r == ncclSuccess) {
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm, &state);
    if (state == ncclSuccess) break;
    if (state != ncclInProgress) {
      r = state;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ncclCommAbort(comm);
      return absl::DeadlineExceededError("NCCL communicator init timed out (a peer is missing)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (r != ncclSuccess) {
    if (comm != nullptr) ncclCommAbort(comm);
    return absl::UnavailableError(absl::StrCat("ncclCommInitRankConfig: ", ncclGetErrorString(r)));
  }
  return std::unique_ptr<NcclCommunicator>(
      new NcclCommunicator(comm, rank, world_size, device, options));
}

NcclCommunicator::~NcclCommunicator() {
  if (aborted_) return;
  // Finalize can wait on peers; abort releases the resources without waiting.
  ncclCommAbort(comm_);
}

absl::Status NcclCommunicator::Check(ncclResult_t r, const char* what) {
  if (r == ncclSuccess || r == ncclInProgress) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("NCCL ", what, " on rank ", rank_, ": ",
                                             ncclGetErrorString(r), ": ",
                                             ncclGetLastError(comm_)));
}

absl::Status NcclCommunicator::Synchronize(cudaStream_t stream, const char* what) {
  if (aborted_) return absl::UnavailableError("NCCL communicator was aborted");
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    // A non-blocking communicator may still be enqueuing (ncclInProgress): the stream is only
    // meaningful once NCCL reports success.
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm_, &state);
    if (state != ncclSuccess && state != ncclInProgress) {
      ncclCommAbort(comm_);
      aborted_ = true;
      return Check(state, what);
    }
    if (state == ncclSuccess) {
      cudaError_t e = cudaStreamQuery(stream);
      if (e == cudaSuccess) return absl::OkStatus();
      if (e != cudaErrorNotReady) return CudaStatus(e, what);
    }
    if (std::chrono::steady_clock::now() - start > options_.timeout) {
      ncclCommAbort(comm_);
      aborted_ = true;
      return absl::DeadlineExceededError(absl::StrCat(
          "NCCL ", what, " on rank ", rank_, " did not finish within ",
          std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count(),
          "s: a peer GPU process is stalled or dead"));
    }
    std::this_thread::yield();
  }
}

absl::Status NcclCommunicator::AllReduce(float* data, size_t count, ReduceOp op,
                                         cudaStream_t stream) {
  TANDEM_RETURN_IF_ERROR(Check(ncclAllReduce(data, data, count, ncclFloat,
                                             op == ReduceOp::kAverage ? ncclAvg : ncclSum, comm_,
                                             stream),
                               "all-reduce"));
  return Synchronize(stream, "all-reduce");
}

absl::Status NcclCommunicator::ReduceScatterInPlace(float* data, size_t slice_count,
                                                    cudaStream_t stream) {
  TANDEM_RETURN_IF_ERROR(Check(ncclReduceScatter(data, data + rank_ * slice_count, slice_count,
                                                 ncclFloat, ncclSum, comm_, stream),
                               "reduce-scatter"));
  return Synchronize(stream, "reduce-scatter");
}

absl::Status NcclCommunicator::AllGatherInPlace(float* data, size_t slice_count,
                                                cudaStream_t stream) {
  TANDEM_RETURN_IF_ERROR(Check(ncclAllGather(data + rank_ * slice_count, data, slice_count,
                                             ncclFloat, comm_, stream),
                               "all-gather"));
  return Synchronize(stream, "all-gather");
}

absl::Status NcclCommunicator::ReduceInPlace(float* data, size_t count, int root,
                                             cudaStream_t stream) {
  TANDEM_RETURN_IF_ERROR(
      Check(ncclReduce(data, data, count, ncclFloat, ncclSum, root, comm_, stream), "reduce"));
  return Synchronize(stream, "reduce");
}

absl::Status NcclCommunicator::BroadcastInPlace(void* data, size_t bytes, int root,
                                                cudaStream_t stream) {
  TANDEM_RETURN_IF_ERROR(
      Check(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream), "broadcast"));
  return Synchronize(stream, "broadcast");
}

}  // namespace tandem::collective
