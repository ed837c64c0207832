// The CUDA backend behind trainer/core/device.h: cuBLAS for Gemm, cuDNN for convolution and
// pooling, our own kernels for the element-wise work, one stream, and a caching allocator.
//
//   absl::StatusOr<std::unique_ptr<Device>> gpu = CreateCudaDevice({.ordinal = 0});
//   if (!gpu.ok()) ...;               // no driver, no device: Unavailable with CUDA's message
//   float* p = (*gpu)->Allocate(n);   // device memory; Upload/Download move host data
//
// Every call is queued on the device's stream and returns at once, except Upload, Download and
// Synchronize, which wait. Failures of CUDA, cuBLAS or cuDNN inside a step stop the process with
// the library's message (like running out of host memory on the CPU backend).
// Built only with the CUDA backend (TANDEM_HAVE_CUDA, target tandem_cuda_device).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "trainer/core/device.h"

namespace tandem::trainer {

enum class Precision {
  kFp32,  // fp32 storage and fp32 arithmetic (no TF32): the parity reference
  // fp32 storage (so the weights the optimizer updates stay fp32 masters), matrix products on
  // bf16 tensor cores with fp32 accumulation (cuBLAS CUBLAS_COMPUTE_32F_FAST_16BF), and cuDNN
  // convolutions on TF32 tensor cores (its default math for fp32 tensors). bf16 and TF32 keep
  // fp32's exponent range, so no loss scaling.
  kBf16,
};

struct CudaDeviceOptions {
  int ordinal = 0;
  Precision precision = Precision::kFp32;
  // Allocate with cudaMallocManaged instead of cudaMalloc, and return from every call only once
  // its work is done (host order), so host code may read and write the device's tensors directly
  // between calls (pages migrate on demand). The training loop needs it: its host-only layers,
  // optimizer, data feeder, all-reduce and checkpoints read tensor memory on the host (docs/gpu.md,
  // "The trainer on the GPU"). Default off: the parity test and the benchmark measure plain
  // device memory and queued calls.
  bool host_accessible = false;
};

absl::StatusOr<std::unique_ptr<Device>> CreateCudaDevice(const CudaDeviceOptions& options);

}  // namespace tandem::trainer
