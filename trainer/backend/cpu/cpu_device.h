// The CPU backend behind trainer/core/device.h: oneDNN for convolution, pooling and matrix
// products, our vectorised OpenMP kernels (cpu_kernels.h) for the element-wise work.
//
//   std::unique_ptr<Device> cpu = CreateCpuDevice({.threads = 2});
//   float* p = cpu->Allocate(n);   // host memory; Upload/Download are plain copies
//
// Built on every machine (target tandem_trainer_cpu); the only code that includes oneDNN.
#pragma once

#include <memory>

#include "trainer/core/device.h"

namespace tandem::trainer {

struct CpuDeviceOptions {
  // Threads for oneDNN/OpenMP. 0: leave the OpenMP default (OMP_NUM_THREADS or all cores).
  int threads = 0;
  // Offer oneDNN's blocked layout for activations between convolution layers (BlockedChannels):
  // 16 channels with AVX-512, 8 with AVX2, none below. false: always plain NCHW (tests compare).
  bool blocked_activations = true;
  // Fuse a relu into the convolution before it (FusesConvRelu). false: separate passes.
  bool fuse_conv_relu = true;
  // Inference only (tandem-serve): parameters never change after a kernel's first Forward, and
  // Backward is never called. Convolutions then build forward-inference primitives only and
  // reorder their weights into the blocked layout once per batch size instead of on every call.
  bool constant_weights = false;
};

std::unique_ptr<Device> CreateCpuDevice(const CpuDeviceOptions& options);

}  // namespace tandem::trainer
