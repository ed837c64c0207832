// NCCL communicator and hierarchical all-reduce. Needs a CUDA build with NCCL and a GPU; skips
// visibly otherwise. Two "nodes" of one GPU each run as threads sharing GPU 0 (each node-local
// NCCL communicator has one rank), joined by a 2-rank TCP ring: this exercises the whole
// reduce-scatter -> TCP ring -> all-gather path, including the count % L tail, on one GPU.
#include <vector>

#include "gtest/gtest.h"
#include "tests/trainer/collective/ring_harness.h"

#ifdef TANDEM_HAVE_NCCL
#include "trainer/collective/nccl/hierarchical_allreducer.h"
#endif

namespace tandem::collective {
namespace {

TEST(NcclTest, HierarchicalAllReduceAcrossTwoNodes) {
#ifndef TANDEM_HAVE_NCCL
  GTEST_SKIP() << "built without CUDA/NCCL (TANDEM_CUDA=OFF, no nvcc or no NCCL)";
#else
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)
    GTEST_SKIP() << "no usable GPU";
  const size_t count = 1000003;
  auto statuses = testing::RunRanks(2, testing::FastOptions(),
                                    [&](int node, Communicator& cross) -> absl::Status {
    // The node-local ring: this process alone.
    auto solo_peers = MakePeerList({{"127.0.0.1", 1}}, 0, 1);
    Communicator solo(testing::FastOptions(),
                      *TcpTransport::Connect(testing::FastOptions().transport, *solo_peers));
    TANDEM_ASSIGN_OR_RETURN(auto local, NcclCommunicator::CreateOver(solo, 0, {}));
    TANDEM_ASSIGN_OR_RETURN(auto h, HierarchicalAllReducer::Create(local.get(), &cross, count));
    std::vector<float> host(count);
    for (size_t i = 0; i < count; ++i) host[i] = static_cast<float>((i + node) % 100);
    float* dev = nullptr;
    TANDEM_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&dev, count * sizeof(float)), "malloc"));
    cudaStream_t stream;
    cudaStreamCreate(&stream);
    cudaMemcpy(dev, host.data(), count * sizeof(float), cudaMemcpyHostToDevice);
    absl::Status s = h->AllReduce(dev, count, ReduceOp::kSum, stream);
    cudaMemcpy(host.data(), dev, count * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(dev);
    cudaStreamDestroy(stream);
    TANDEM_RETURN_IF_ERROR(s);
    for (size_t i = 0; i < count; ++i)
      if (host[i] != static_cast<float>(i % 100 + (i + 1) % 100))
        return absl::InternalError("wrong sum");
    return absl::OkStatus();
  });
  for (auto& s : statuses) EXPECT_TRUE(s.ok()) << s;
#endif
}

}  // namespace
}  // namespace tandem::collective
