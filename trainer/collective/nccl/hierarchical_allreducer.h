// HierarchicalAllReducer: all-reduce of GPU gradients across nodes with several GPUs each, so
// that each parameter crosses the slow inter-node link only twice (Horovod's design):
//   1. NCCL reduce-scatter inside the node: local rank l holds the node's sum of slice l;
//   2. our TCP ring across nodes, one ring per local rank, each on its own 1/L slice (the L
//      rings run in parallel, one per GPU process);
//   3. NCCL all-gather inside the node.
// The count % L tail goes NCCL reduce to local rank 0 -> TCP all-reduce among local ranks 0 ->
// NCCL broadcast. Inter-node latency steps fall from 2(N-1) to 2(M-1) for M nodes.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "trainer/collective/communicator.h"
#include "trainer/collective/nccl/nccl_communicator.h"

namespace tandem::collective {

class HierarchicalAllReducer {
 public:
  // `local`: this node's GPUs. `cross`: the TCP ring of every node's process with the same local
  // rank, in node order. `max_count`: the largest all-reduce, for the pinned staging buffer.
  static absl::StatusOr<std::unique_ptr<HierarchicalAllReducer>> Create(NcclCommunicator* local,
                                                                        Communicator* cross,
                                                                        size_t max_count);
  ~HierarchicalAllReducer();

  // In-place all-reduce of `count` floats in device memory; returns when `stream` is done.
  // REQUIRES: count <= max_count.
  absl::Status AllReduce(float* device_data, size_t count, ReduceOp op, cudaStream_t stream);

 private:
  HierarchicalAllReducer(NcclCommunicator* local, Communicator* cross)
      : local_(local), cross_(cross) {}
  NcclCommunicator* const local_;
  Communicator* const cross_;
  float* host_ = nullptr;  // pinned; one slice plus the tail
  size_t host_count_ = 0;
};

}  // namespace tandem::collective
