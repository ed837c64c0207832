// Our own CUDA kernels, for the work no library call fits: element-wise activations, fills,
// strided row copies, bias gradients, dropout, softmax. Each launcher queues one kernel on `stream` and returns
// the launch error (cudaSuccess when queued). Sizes are element counts; pointers are device memory.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::cuda {

enum class Activation { kRelu, kSigmoid, kTanh };

cudaError_t LaunchFill(cudaStream_t s, int64_t n, float value, float* p);
cudaError_t LaunchAxpy(cudaStream_t s, int64_t n, float alpha, const float* x, float* y);
// Row r of `cols` floats from src + r * src_stride to dst + r * dst_stride (src_stride may be 0:
// broadcast one row).
cudaError_t LaunchCopyRows(cudaStream_t s, int64_t rows, int64_t cols, const float* src,
                           int64_t src_stride, float* dst, int64_t dst_stride);
// db[c] = sum_r dy[r, c] (overwrites db).
cudaError_t LaunchBiasGrad(cudaStream_t s, int64_t rows, int64_t cols, const float* dy, float* db);
cudaError_t LaunchActivationForward(cudaStream_t s, Activation a, int64_t n, const float* x,
                                    float* y);
// dx from dy and the forward output y.
cudaError_t LaunchActivationBackward(cudaStream_t s, Activation a, int64_t n, const float* y,
                                     const float* dy, float* dx);
// y[i] = DropoutKeep(key, i, rate) ? x[i] / (1 - rate) : 0 (trainer/core/dropout_mask.h).
cudaError_t LaunchDropout(cudaStream_t s, int64_t n, uint64_t key, float rate, const float* x,
                          float* y);
cudaError_t LaunchSoftmax(cudaStream_t s, int64_t rows, int64_t cols, const float* x, float* y);
cudaError_t LaunchSoftmaxBackward(cudaStream_t s, int64_t rows, int64_t cols, const float* y,
                                  const float* dy, float* dx);

}  // namespace tandem::cuda
