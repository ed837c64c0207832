#include "trainer/backend/cuda/cuda_probe.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"

namespace tandem::cuda {
namespace {

absl::Status CudaError(cudaError_t err, const char* what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

__global__ void AddKernel(const float* a, const float* b, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

}  // namespace

absl::StatusOr<int> DeviceCount() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) return CudaError(err, "cudaGetDeviceCount");
  if (n == 0) return absl::UnavailableError("no CUDA device");
  return n;
}

absl::StatusOr<std::string> DeviceDescription(int ordinal) {
  cudaDeviceProp prop{};
  cudaError_t err = cudaGetDeviceProperties(&prop, ordinal);
  if (err != cudaSuccess) return CudaError(err, "cudaGetDeviceProperties");
  return absl::StrCat(prop.name, " (sm_", prop.major, prop.minor, ")");
}

absl::StatusOr<std::vector<float>> AddOnDevice(const std::vector<float>& a,
                                               const std::vector<float>& b) {
  if (a.size() != b.size()) return absl::InvalidArgumentError("AddOnDevice: sizes differ");
  const int n = static_cast<int>(a.size());
  const size_t bytes = a.size() * sizeof(float);
  float *da = nullptr, *db = nullptr, *dout = nullptr;
  std::vector<float> out(a.size());
  cudaError_t err = cudaMalloc(&da, bytes);
  if (err == cudaSuccess) err = cudaMalloc(&db, bytes);
  if (err == cudaSuccess) err = cudaMalloc(&dout, bytes);
  if (err == cudaSuccess) err = cudaMemcpy(da, a.data(), bytes, cudaMemcpyHostToDevice);
  if (err == cudaSuccess) err = cudaMemcpy(db, b.data(), bytes, cudaMemcpyHostToDevice);
  if (err == cudaSuccess && n > 0) {
    AddKernel<<<(n + 255) / 256, 256>>>(da, db, dout, n);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) err = cudaMemcpy(out.data(), dout, bytes, cudaMemcpyDeviceToHost);
  cudaFree(da);
  cudaFree(db);
  cudaFree(dout);
  if (err != cudaSuccess) return CudaError(err, "AddOnDevice");
  return out;
}

}  // namespace tandem::cuda
