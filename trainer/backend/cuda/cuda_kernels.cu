#include "trainer/backend/cuda/cuda_kernels.h"

#include <algorithm>

#include "trainer/core/dropout_mask.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 256;

// A grid-stride loop's grid: enough blocks to fill the GPU several times over, no more.
int Blocks(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(b, 65535)));
}

__global__ void FillKernel(int64_t n, float value, float* p) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    p[i] = value;
}

__global__ void AxpyKernel(int64_t n, float alpha, const float* __restrict__ x,
                           float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] += alpha * x[i];
}

__global__ void CopyRowsKernel(int64_t rows, int64_t cols, const float* __restrict__ src,
                               int64_t src_stride, float* __restrict__ dst, int64_t dst_stride) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / cols, c = i - r * cols;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
}

// One thread per column, walking the rows: coalesced across the warp, no atomics, deterministic.
__global__ void BiasGradKernel(int64_t rows, int64_t cols, const float* __restrict__ dy,
                               float* __restrict__ db) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= cols) return;
  float sum = 0.f;
  for (int64_t r = 0; r < rows; ++r) sum += dy[r * cols + c];
  db[c] = sum;
}

template <Activation A>
__global__ void ActivationForwardKernel(int64_t n, const float* __restrict__ x,
                                        float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float v = x[i];
    if constexpr (A == Activation::kRelu) y[i] = v > 0.f ? v : 0.f;
    if constexpr (A == Activation::kSigmoid) y[i] = 1.f / (1.f + expf(-v));
    if constexpr (A == Activation::kTanh) y[i] = tanhf(v);
  }
}

template <Activation A>
__global__ void ActivationBackwardKernel(int64_t n, const float* __restrict__ y,
                                         const float* __restrict__ dy, float* __restrict__ dx) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float v = y[i], g = dy[i];
    if constexpr (A == Activation::kRelu) dx[i] = v > 0.f ? g : 0.f;
    if constexpr (A == Activation::kSigmoid) dx[i] = g * v * (1.f - v);
    if constexpr (A == Activation::kTanh) dx[i] = g * (1.f - v * v);
  }
}

__global__ void DropoutKernel(int64_t n, uint64_t key, float rate, float scale,
                              const float* __restrict__ x, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    y[i] = trainer::DropoutKeep(key, i, rate) ? x[i] * scale : 0.f;
}

__device__ float BlockReduce(float v, bool is_max) {
  __shared__ float partial[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, other) : v + other;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // `partial` may still be read by the previous reduction
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < blockDim.x / 32 ? partial[lane] : (is_max ? -INFINITY : 0.f);
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, other) : v + other;
  }
  return v;
}

// One block per row: max, sum of exponentials, normalise (numerically stable).
__global__ void SoftmaxKernel(int64_t cols, const float* __restrict__ x, float* __restrict__ y) {
  const float* xr = x + blockIdx.x * cols;
  float* yr = y + blockIdx.x * cols;
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
  m = BlockReduce(m, true);
  float sum = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float e = expf(xr[c] - m);
    yr[c] = e;
    sum += e;
  }
  sum = BlockReduce(sum, false);
  const float inv = 1.f / sum;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] *= inv;
}

__global__ void SoftmaxBackwardKernel(int64_t cols, const float* __restrict__ y,
                                      const float* __restrict__ dy, float* __restrict__ dx) {
  const int64_t base = blockIdx.x * cols;
  float dot = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += dy[base + c] * y[base + c];
  dot = BlockReduce(dot, false);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    dx[base + c] = y[base + c] * (dy[base + c] - dot);
}

}  // namespace

cudaError_t LaunchFill(cudaStream_t s, int64_t n, float value, float* p) {
  if (n <= 0) return cudaSuccess;
  if (value == 0.f) return cudaMemsetAsync(p, 0, n * sizeof(float), s);
  FillKernel<<<Blocks(n), kThreads, 0, s>>>(n, value, p);
  return cudaGetLastError();
}

cudaError_t LaunchAxpy(cudaStream_t s, int64_t n, float alpha, const float* x, float* y) {
  if (n <= 0) return cudaSuccess;
  AxpyKernel<<<Blocks(n), kThreads, 0, s>>>(n, alpha, x, y);
  return cudaGetLastError();
}

cudaError_t LaunchCopyRows(cudaStream_t s, int64_t rows, int64_t cols, const float* src,
                           int64_t src_stride, float* dst, int64_t dst_stride) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  if (src_stride >= cols) {  // the copy engine does plain 2-D copies at full bandwidth
    return cudaMemcpy2DAsync(dst, dst_stride * sizeof(float), src, src_stride * sizeof(float),
                             cols * sizeof(float), rows, cudaMemcpyDeviceToDevice, s);
  }
  CopyRowsKernel<<<Blocks(rows * cols), kThreads, 0, s>>>(rows, cols, src, src_stride, dst,
                                                          dst_stride);
  return cudaGetLastError();
}

cudaError_t LaunchBiasGrad(cudaStream_t s, int64_t rows, int64_t cols, const float* dy, float* db) {
  if (cols <= 0) return cudaSuccess;
  BiasGradKernel<<<static_cast<int>((cols + kThreads - 1) / kThreads), kThreads, 0, s>>>(
      rows, cols, dy, db);
  return cudaGetLastError();
}

cudaError_t LaunchActivationForward(cudaStream_t s, Activation a, int64_t n, const float* x,
                                    float* y) {
  if (n <= 0) return cudaSuccess;
  switch (a) {
    case Activation::kRelu:
      ActivationForwardKernel<Activation::kRelu><<<Blocks(n), kThreads, 0, s>>>(n, x, y);
      break;
    case Activation::kSigmoid:
      ActivationForwardKernel<Activation::kSigmoid><<<Blocks(n), kThreads, 0, s>>>(n, x, y);
      break;
    case Activation::kTanh:
      ActivationForwardKernel<Activation::kTanh><<<Blocks(n), kThreads, 0, s>>>(n, x, y);
      break;
  }
  return cudaGetLastError();
}

cudaError_t LaunchActivationBackward(cudaStream_t s, Activation a, int64_t n, const float* y,
                                     const float* dy, float* dx) {
  if (n <= 0) return cudaSuccess;
  switch (a) {
    case Activation::kRelu:
      ActivationBackwardKernel<Activation::kRelu><<<Blocks(n), kThreads, 0, s>>>(n, y, dy, dx);
      break;
    case Activation::kSigmoid:
      ActivationBackwardKernel<Activation::kSigmoid><<<Blocks(n), kThreads, 0, s>>>(n, y, dy, dx);
      break;
    case Activation::kTanh:
      ActivationBackwardKernel<Activation::kTanh><<<Blocks(n), kThreads, 0, s>>>(n, y, dy, dx);
      break;
  }
  return cudaGetLastError();
}

cudaError_t LaunchDropout(cudaStream_t s, int64_t n, uint64_t key, float rate, const float* x,
                          float* y) {
  if (n <= 0) return cudaSuccess;
  DropoutKernel<<<Blocks(n), kThreads, 0, s>>>(n, key, rate, 1.f / (1.f - rate), x, y);
  return cudaGetLastError();
}

cudaError_t LaunchSoftmax(cudaStream_t s, int64_t rows, int64_t cols, const float* x, float* y) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  // rows <= 2^31 - 1 blocks on the x dimension.
  SoftmaxKernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(cols, x, y);
  return cudaGetLastError();
}

cudaError_t LaunchSoftmaxBackward(cudaStream_t s, int64_t rows, int64_t cols, const float* y,
                                  const float* dy, float* dx) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  SoftmaxBackwardKernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(cols, y, dy, dx);
  return cudaGetLastError();
}

}  // namespace tandem::cuda
