// NcclCommunicator: NCCL collectives on GPU buffers, with a bounded wait: an operation whose
// stream does not finish within `timeout` (a dead or stalled rank) aborts the communicator and
// returns Unavailable/DeadlineExceeded, so callers can exit with kPeerFailureExitCode instead of
// hanging in a kernel forever. Built only with CUDA (target tandem_collective_nccl).
//
//   // NCCL's unique id travels over our TCP ring (rank 0 makes it, Broadcast shares it).
//   TANDEM_ASSIGN_OR_RETURN(auto nccl, NcclCommunicator::CreateOver(*tcp_comm, device, {}));
//   TANDEM_RETURN_IF_ERROR(nccl->AllReduce(dev_grads, n, ReduceOp::kAverage, stream));
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "trainer/collective/communicator.h"

namespace tandem::collective {

struct NcclOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  // per operation
};

class NcclCommunicator {
 public:
  // Joins an NCCL communicator of `bootstrap`'s ranks on CUDA device `device`; rank 0's unique id
  // is broadcast over `bootstrap` (any ring: the node-local one for hierarchical all-reduce).
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> CreateOver(Communicator& bootstrap,
                                                                      int device,
                                                                      const NcclOptions& options);
  // The same with the unique id shared by the caller: `share_id` must make rank 0's id (which it
  // receives filled in) every rank's (the CUDA plugin's callers broadcast it over their ring).
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(
      int rank, int world_size, int device,
      const std::function<absl::Status(ncclUniqueId* id)>& share_id, const NcclOptions& options);
  ~NcclCommunicator();

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }

  // Each call enqueues on `stream` and waits (bounded by the timeout) for it to finish.
  absl::Status AllReduce(float* data, size_t count, ReduceOp op, cudaStream_t stream);
  // In place: rank r's reduced slice lands at data + r * slice_count.
  absl::Status ReduceScatterInPlace(float* data, size_t slice_count, cudaStream_t stream);
  // In place: rank r contributes data + r * slice_count.
  absl::Status AllGatherInPlace(float* data, size_t slice_count, cudaStream_t stream);
  absl::Status ReduceInPlace(float* data, size_t count, int root, cudaStream_t stream);
  absl::Status BroadcastInPlace(void* data, size_t bytes, int root, cudaStream_t stream);

  // Waits for `stream` with the timeout, checking NCCL's asynchronous errors meanwhile.
  absl::Status Synchronize(cudaStream_t stream, const char* what);

 private:
  NcclCommunicator(ncclComm_t comm, int rank, int size, int device, const NcclOptions& options)
      : comm_(comm), rank_(rank), size_(size), device_(device), options_(options) {}
  absl::Status Check(ncclResult_t r, const char* what);

  ncclComm_t comm_;
  const int rank_, size_, device_;
  const NcclOptions options_;
  bool aborted_ = false;
};

// CUDA runtime errors as Status ("what: cudaErrorX: text").
absl::Status CudaStatus(cudaError_t e, const char* what);

}  // namespace tandem::collective
