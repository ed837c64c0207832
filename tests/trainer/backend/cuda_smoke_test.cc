// Runs a kernel on the GPU when one is present. Without CUDA support in the build, or without a
// device, the test is skipped with the reason (ctest reports it as "Skipped").
#include "gtest/gtest.h"

#ifdef TANDEM_HAVE_CUDA
#include "trainer/backend/cuda/cuda_probe.h"
#endif

namespace tandem {
namespace {

TEST(CudaSmokeTest, AddsVectorsOnDevice) {
#ifndef TANDEM_HAVE_CUDA
  GTEST_SKIP() << "built without the CUDA backend (TANDEM_CUDA=OFF or no nvcc)";
#else
  auto count = cuda::DeviceCount();
  if (!count.ok()) GTEST_SKIP() << "no usable GPU: " << count.status().message();
  auto desc = cuda::DeviceDescription(0);
  ASSERT_TRUE(desc.ok()) << desc.status();
  std::cout << "device 0: " << *desc << std::endl;
  std::vector<float> a(1000), b(1000);
  for (int i = 0; i < 1000; ++i) {
    a[i] = static_cast<float>(i);
    b[i] = static_cast<float>(2 * i + 1);
  }
  auto out = cuda::AddOnDevice(a, b);
  ASSERT_TRUE(out.ok()) << out.status();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ((*out)[i], 3.0f * i + 1) << i;
#endif
}

}  // namespace
}  // namespace tandem
