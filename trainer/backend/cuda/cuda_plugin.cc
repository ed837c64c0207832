// libtandem-cuda.so: the CUDA device and NCCL behind the one C entry point of
// trainer/backend/cuda_plugin_abi.h. tandem-trainer opens it with dlopen for a GPU job only
// (trainer/backend/device_loader.h); nothing else in the trainer links CUDA.
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "trainer/backend/cuda/cuda_device.h"
#include "trainer/backend/cuda_plugin_abi.h"
#include "trainer/collective/nccl/nccl_communicator.h"

namespace {

using tandem::collective::NcclCommunicator;

void WriteError(const std::string& message, char* error, size_t error_len) {
  if (error == nullptr || error_len == 0) return;
  const size_t n = std::min(message.size(), error_len - 1);
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

void* CreateDevice(const TandemCudaDeviceRequest* request, char* error, size_t error_len) {
  auto device = tandem::trainer::CreateCudaDevice(
      {.ordinal = request->ordinal,
       .precision = request->bf16 != 0 ? tandem::trainer::Precision::kBf16
                                       : tandem::trainer::Precision::kFp32,
       .host_accessible = request->host_accessible != 0});
  if (!device.ok()) {
    WriteError(std::string(device.status().message()), error, error_len);
    return nullptr;
  }
  return device->release();
}

struct AllReducer {
  std::unique_ptr<NcclCommunicator> comm;
  cudaStream_t stream = nullptr;
  ~AllReducer() {
    comm.reset();
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

void* CreateAllReducer(int32_t ordinal, int32_t rank, int32_t world_size,
                       int (*share_id)(void* ctx, void* id, size_t id_bytes), void* ctx,
                       char* error, size_t error_len) {
  auto reducer = std::make_unique<AllReducer>();
  auto comm = NcclCommunicator::Create(
      rank, world_size, ordinal,
      [&](ncclUniqueId* id) {
        return share_id(ctx, id, sizeof(*id)) == 0
                   ? absl::OkStatus()
                   : absl::UnavailableError("the ring could not broadcast NCCL's unique id");
      },
      {});
  if (!comm.ok()) {
    WriteError(std::string(comm.status().message()), error, error_len);
    return nullptr;
  }
  reducer->comm = *std::move(comm);
  if (const cudaError_t e = cudaStreamCreateWithFlags(&reducer->stream, cudaStreamNonBlocking);
      e != cudaSuccess) {
    WriteError(absl::StrCat("cudaStreamCreate: ", cudaGetErrorString(e)), error, error_len);
    return nullptr;
  }
  return reducer.release();
}

int AllReduceAverage(void* allreducer, float* data, size_t count, char* error, size_t error_len) {
  auto* r = static_cast<AllReducer*>(allreducer);
  const absl::Status st =
      r->comm->AllReduce(data, count, tandem::collective::ReduceOp::kAverage, r->stream);
  if (st.ok()) return 0;
  WriteError(std::string(st.message()), error, error_len);
  return 1;
}

void DestroyAllReducer(void* allreducer) { delete static_cast<AllReducer*>(allreducer); }

std::string Description() {
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  int nccl = 0;
  ncclGetVersion(&nccl);
  return absl::StrCat("libtandem-cuda (CUDA runtime ", runtime, ", cuDNN ", cudnnGetVersion(),
                      ", NCCL ", nccl, ")");
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const TandemCudaPlugin* tandem_cuda_plugin() {
  static const std::string description = Description();
  static const TandemCudaPlugin plugin = {
      .abi = TANDEM_CUDA_PLUGIN_ABI,
      .interface_hash = TANDEM_DEVICE_INTERFACE_HASH,
      .description = description.c_str(),
      .create_device = &CreateDevice,
      .create_allreducer = &CreateAllReducer,
      .allreduce_average = &AllReduceAverage,
      .destroy_allreducer = &DestroyAllReducer,
  };
  return &plugin;
}
