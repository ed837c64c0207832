// The device seam: everything a layer asks of the hardware goes through this interface, so a CUDA
// backend (cuBLAS/cuDNN) plugs in beside the CPU one (oneDNN) without changing any layer.
//
//   std::unique_ptr<Device> cpu = CreateCpuDevice({.threads = 2});   // trainer/backend/cpu/cpu_device.h
//   cpu->Gemm(false, true, m, n, k, 1.f, a, k, b, k, 0.f, c, n);
//   std::unique_ptr<Conv2dKernel> conv = cpu->CreateConv2d(desc);   // owned by the layer
//   conv->Forward(batch, x, w, b, y);
//
// Kernel objects own whatever the backend caches per shape (oneDNN primitives, reordered weights,
// pooling workspaces) so the hot path allocates nothing after the first step of each batch size.
// Pointers passed to a device are that device's memory (Tensor::Resize allocates there).
// Layers whose arithmetic is a plain loop (costs, dropout, concat, embedding) run on host memory:
// LayerRegistry::RunsOn says which layers use only this interface and so run on every device.
// A Device is used by one training thread at a time; its kernels parallelise internally.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace tandem::trainer {

enum class DeviceKind { kCpu, kCuda };

// How a dense [C, H, W] activation lies in memory between two layers. kPlain is NCHW, what every
// layer reads and writes by default. kBlocked is the backend's own convolution layout
// (Device::BlockedChannels(): nChw16c with AVX-512), the same number of floats as kPlain when C
// is a multiple of the block. Network keeps a blob blocked when its producer and every consumer
// accept it (conv2d, pooling, element-wise activations), so a conv -> relu -> pool -> conv chain
// runs without reordering to NCHW and back at each layer. Parameters are always plain.
enum class ActivationLayout { kPlain, kBlocked };

// A 2-D convolution over NCHW input with OIHW (grouped: G*O/G, I/G, H, W) weights.
struct Conv2dDesc {
  int64_t in_channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t groups = 1;
  bool bias = true;
  ActivationLayout src_layout = ActivationLayout::kPlain;  // x and dx
  ActivationLayout dst_layout = ActivationLayout::kPlain;  // y and dy
  // Forward writes relu(conv(x) + b) (a fused post-op; Device::FusesConvRelu). Backward is
  // unchanged: it takes the gradient with respect to conv(x) + b, which the relu layer computes.
  bool fused_relu = false;
};

enum class PoolKind { kMax, kAvg };

struct Pool2dDesc {
  PoolKind kind = PoolKind::kMax;
  int64_t channels = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 2, kernel_w = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
  ActivationLayout src_layout = ActivationLayout::kPlain;  // x and dx
  ActivationLayout dst_layout = ActivationLayout::kPlain;  // y and dy
};

enum class EltwiseKind { kRelu, kSigmoid, kTanh };

class Conv2dKernel {
 public:
  virtual ~Conv2dKernel() = default;
  // y[N,O,OH,OW] = conv(x[N,C,H,W], w) + b.  `b` may be null when the desc has no bias.
  virtual void Forward(int64_t batch, const float* x, const float* w, const float* b, float* y) = 0;
  // One backward pass: dw = x (*) dy and db = sum(dy) (db may be null; both overwritten), and,
  // when dx is not null, dx = conv^T(dy, w). One call so that a kernel can prepare dy once for
  // both products.
  virtual void Backward(int64_t batch, const float* x, const float* dy, const float* w, float* dw,
                        float* db, float* dx) = 0;
};

class Pool2dKernel {
 public:
  virtual ~Pool2dKernel() = default;
  // In training mode the kernel remembers what backward needs (max positions).
  virtual void Forward(int64_t batch, const float* x, float* y, bool training) = 0;
  // REQUIRES: the last Forward was in training mode with the same batch.
  virtual void Backward(int64_t batch, const float* dy, float* dx) = 0;
};

class EltwiseKernel {
 public:
  virtual ~EltwiseKernel() = default;
  virtual void Forward(int64_t n, const float* x, float* y) = 0;
  // dx from dy and the forward output y (all three kinds have derivatives expressible in y).
  virtual void Backward(int64_t n, const float* y, const float* dy, float* dx) = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceKind kind() const = 0;
  // "cpu (oneDNN 2.6.3, 2 threads)".
  virtual std::string Describe() const = 0;
  virtual int threads() const = 0;

  // Uninitialised storage for `n` floats, 64-byte aligned. Never returns null (aborts on OOM).
  virtual float* Allocate(int64_t n) = 0;
  virtual void Free(float* p) = 0;
  virtual void Fill(int64_t n, float value, float* p) = 0;
  virtual void Copy(int64_t n, const float* src, float* dst) = 0;
  // y += alpha * x.
  virtual void Axpy(int64_t n, float alpha, const float* x, float* y) = 0;
  // A 2-D copy: `rows` rows of `cols` floats, row r from src + r * src_stride to
  // dst + r * dst_stride (concat, slice).
  virtual void CopyRows(int64_t rows, int64_t cols, const float* src, int64_t src_stride,
                        float* dst, int64_t dst_stride) = 0;
  // db = sum over `rows` rows of dy[r, :] (`cols` wide; db overwritten).
  virtual void BiasGrad(int64_t rows, int64_t cols, const float* dy, float* db) = 0;
  // y[i] = DropoutKeep(key, i, rate) ? x[i] / (1 - rate) : 0 (trainer/core/dropout_mask.h): the
  // forward pass on x, and the backward pass on dy with the same key.
  virtual void Dropout(int64_t n, uint64_t key, float rate, const float* x, float* y) = 0;
  // Host <-> device transfers (a memcpy on the CPU backend). They return once the host buffer
  // may be reused (Upload) or read (Download), so they also order everything queued before them.
  virtual void Upload(int64_t n, const float* host, float* dst) = 0;
  virtual void Download(int64_t n, const float* src, float* host) = 0;
  // Waits until all queued work is done (a no-op on the CPU, whose calls are synchronous).
  virtual void Synchronize() {}

  // Row-major C[m,n] = alpha * op(A)[m,k] op(B)[k,n] + beta * C.
  virtual void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc) = 0;
  // `batch` independent products of one shape in one call: for i in [0, batch),
  // C_i = alpha * op(A_i) op(B_i) + beta * C_i with X_i = x + i * stride_x (row-major, leading
  // dimensions as in Gemm; the C_i must not overlap). For many small GEMMs (attention's per-example
  // scores and context): oneDNN's matmul with a batch dimension (one cached primitive per shape)
  // on the CPU, cuBLAS's strided batched GEMM on the GPU. beta == 0 never reads C.
  virtual void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                  float alpha, const float* a, int64_t lda, int64_t stride_a,
                                  const float* b, int64_t ldb, int64_t stride_b, float beta,
                                  float* c, int64_t ldc, int64_t stride_c, int64_t batch) = 0;

  // y[r, :] = softmax(x[r, :]) for `rows` rows of `cols` (numerically stable).
  virtual void Softmax(int64_t rows, int64_t cols, const float* x, float* y) = 0;
  // dx[r, :] = y[r, :] * (dy[r, :] - dot(dy[r, :], y[r, :])): softmax's backward from its output.
  virtual void SoftmaxBackward(int64_t rows, int64_t cols, const float* y, const float* dy,
                               float* dx) = 0;

  // Channels per block of ActivationLayout::kBlocked on this device, 0 when it has no such
  // layout (then every activation stays plain and no kernel is asked for kBlocked).
  virtual int64_t BlockedChannels() const { return 0; }
  // Whether Conv2dDesc::fused_relu is honoured (then the network runs a conv2d whose only reader
  // is a relu as one forward primitive and skips the relu's forward pass).
  virtual bool FusesConvRelu() const { return false; }

  virtual std::unique_ptr<Conv2dKernel> CreateConv2d(const Conv2dDesc& desc) = 0;
  virtual std::unique_ptr<Pool2dKernel> CreatePool2d(const Pool2dDesc& desc) = 0;
  virtual std::unique_ptr<EltwiseKernel> CreateEltwise(EltwiseKind kind) = 0;
};

}  // namespace tandem::trainer
