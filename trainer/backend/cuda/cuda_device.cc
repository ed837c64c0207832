#include "trainer/backend/cuda/cuda_device.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "trainer/backend/cuda/caching_allocator.h"
#include "trainer/backend/cuda/cuda_kernels.h"

namespace tandem::trainer {
namespace {

using cuda::CachingAllocator;

// A failed library call inside a step: stop with the library's message (see cuda_device.h).
#define TANDEM_CUDA_CALL(expr)                                                    \
  do {                                                                            \
    const cudaError_t _e = (expr);                                                \
    TANDEM_CHECK(_e == cudaSuccess) << #expr << ": " << cudaGetErrorString(_e);  \
  } while (0)
#define TANDEM_CUBLAS_CALL(expr)                                                        \
  do {                                                                                  \
    const cublasStatus_t _e = (expr);                                                   \
    TANDEM_CHECK(_e == CUBLAS_STATUS_SUCCESS) << #expr << ": " << cublasGetStatusString(_e); \
  } while (0)
#define TANDEM_CUDNN_CALL(expr)                                                     \
  do {                                                                              \
    const cudnnStatus_t _e = (expr);                                                \
    TANDEM_CHECK(_e == CUDNN_STATUS_SUCCESS) << #expr << ": " << cudnnGetErrorString(_e); \
  } while (0)

int I(int64_t v) {
  TANDEM_CHECK(v >= 0 && v <= INT32_MAX) << "dimension " << v << " exceeds cuDNN's int range";
  return static_cast<int>(v);
}

// An NCHW fp32 tensor descriptor, owned.
class TensorDesc {
 public:
  TensorDesc() { TANDEM_CUDNN_CALL(cudnnCreateTensorDescriptor(&d_)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  void Set(int64_t n, int64_t c, int64_t h, int64_t w) {
    TANDEM_CUDNN_CALL(cudnnSetTensor4dDescriptor(d_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, I(n), I(c),
                                                 I(h), I(w)));
  }
  cudnnTensorDescriptor_t get() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

// Shared by the device and its kernels: the stream, the library handles, the allocator.
struct CudaContext {
  int ordinal = 0;
  Precision precision = Precision::kFp32;
  bool host_accessible = false;  // managed memory (CudaDeviceOptions::host_accessible)
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;
  std::unique_ptr<CachingAllocator> allocator;

  void* AllocateBytes(size_t bytes) {
    void* p = allocator->Allocate(bytes);
    TANDEM_CHECK(p != nullptr) << "out of GPU memory allocating " << bytes << " bytes on device "
                               << ordinal;
    return p;
  }
};

// CudaDeviceOptions::host_accessible: every call returns once its work is done, so the host code
// of the training loop (host-only layers, which mix device calls with loops over tensor memory;
// the optimizer; the all-reduce; checkpoints) may read what the GPU wrote. Slower than queueing,
// correct without knowing which host code reads what (docs/gpu.md, "The trainer on the GPU").
class HostOrder {
 public:
  explicit HostOrder(CudaContext& ctx) : ctx_(ctx) {}
  ~HostOrder() {
    if (ctx_.host_accessible) TANDEM_CUDA_CALL(cudaStreamSynchronize(ctx_.stream));
  }
  HostOrder(const HostOrder&) = delete;
  HostOrder& operator=(const HostOrder&) = delete;

 private:
  CudaContext& ctx_;
};

// cuDNN convolution: one entry per batch size holds the descriptors, the algorithms cuDNN's
// heuristics pick, and one workspace large enough for all three passes.
class CudaConv2d final : public Conv2dKernel {
 public:
  CudaConv2d(CudaContext& ctx, const Conv2dDesc& d) : ctx_(ctx), d_(d) {
    TANDEM_CUDNN_CALL(cudnnCreateFilterDescriptor(&w_desc_));
    TANDEM_CUDNN_CALL(cudnnSetFilter4dDescriptor(w_desc_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                                 I(d.out_channels), I(d.in_channels / d.groups),
                                                 I(d.kernel_h), I(d.kernel_w)));
    TANDEM_CUDNN_CALL(cudnnCreateConvolutionDescriptor(&conv_desc_));
    TANDEM_CUDNN_CALL(cudnnSetConvolution2dDescriptor(conv_desc_, I(d.pad_h), I(d.pad_w),
                                                      I(d.stride_h), I(d.stride_w), 1, 1,
                                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    TANDEM_CUDNN_CALL(cudnnSetConvolutionGroupCount(conv_desc_, I(d.groups)));
    // fp32: FMA kernels only, so results match the CPU to rounding. bf16: the default math, which
    // on Hopper allows TF32 tensor cores for fp32 tensors (fp32's range; not
    // ALLOW_CONVERSION, whose fp16 down-conversion could overflow large activations).
    TANDEM_CUDNN_CALL(cudnnSetConvolutionMathType(
        conv_desc_, ctx.precision == Precision::kFp32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
    bias_desc_.Set(1, d.out_channels, 1, 1);
  }
  ~CudaConv2d() override {
    for (auto& [n, e] : cache_) ctx_.allocator->Free(e.workspace);
    cudnnDestroyConvolutionDescriptor(conv_desc_);
    cudnnDestroyFilterDescriptor(w_desc_);
  }

  void Forward(int64_t batch, const float* x, const float* w, const float* b, float* y) override {
    HostOrder order(ctx_);
    Entry& e = Get(batch);
    const float one = 1.f, zero = 0.f;
    TANDEM_CUDNN_CALL(cudnnConvolutionForward(ctx_.cudnn, &one, e.x.get(), x, w_desc_, w,
                                              conv_desc_, e.fwd, e.workspace, e.workspace_bytes,
                                              &zero, e.y.get(), y));
    if (b != nullptr) {
      TANDEM_CUDNN_CALL(cudnnAddTensor(ctx_.cudnn, &one, bias_desc_.get(), b, &one, e.y.get(), y));
    }
  }

  void Backward(int64_t batch, const float* x, const float* dy, const float* w, float* dw,
                float* db, float* dx) override {
    HostOrder order(ctx_);
    Entry& e = Get(batch);
    const float one = 1.f, zero = 0.f;
    TANDEM_CUDNN_CALL(cudnnConvolutionBackwardFilter(ctx_.cudnn, &one, e.x.get(), x, e.y.get(), dy,
                                                     conv_desc_, e.bwd_filter, e.workspace,
                                                     e.workspace_bytes, &zero, w_desc_, dw));
    if (db != nullptr) {
      TANDEM_CUDNN_CALL(
          cudnnConvolutionBackwardBias(ctx_.cudnn, &one, e.y.get(), dy, &zero, bias_desc_.get(), db));
    }
    if (dx != nullptr) {
      TANDEM_CUDNN_CALL(cudnnConvolutionBackwardData(ctx_.cudnn, &one, w_desc_, w, e.y.get(), dy,
                                                     conv_desc_, e.bwd_data, e.workspace,
                                                     e.workspace_bytes, &zero, e.x.get(), dx));
    }
  }

 private:
  struct Entry {
    TensorDesc x, y;
    cudnnConvolutionFwdAlgo_t fwd{};
    cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
    cudnnConvolutionBwdDataAlgo_t bwd_data{};
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
  };

  Entry& Get(int64_t batch) {
    auto it = cache_.find(batch);
    if (it != cache_.end()) return it->second;
    Entry& e = cache_[batch];
    e.x.Set(batch, d_.in_channels, d_.in_h, d_.in_w);
    e.y.Set(batch, d_.out_channels, d_.out_h, d_.out_w);
    // The heuristics' first choice that reports success: no trial runs, so no allocation spike
    // and no dependence on timing noise (deterministic across runs).
    int found = 0;
    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    TANDEM_CUDNN_CALL(cudnnGetConvolutionForwardAlgorithm_v7(
        ctx_.cudnn, e.x.get(), w_desc_, conv_desc_, e.y.get(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
        &found, fwd));
    e.fwd = PickFirst(fwd, found, "forward");
    cudnnConvolutionBwdFilterAlgoPerf_t bf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    TANDEM_CUDNN_CALL(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        ctx_.cudnn, e.x.get(), e.y.get(), conv_desc_, w_desc_,
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, bf));
    e.bwd_filter = PickFirst(bf, found, "backward filter");
    cudnnConvolutionBwdDataAlgoPerf_t bd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    TANDEM_CUDNN_CALL(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        ctx_.cudnn, w_desc_, e.y.get(), conv_desc_, e.x.get(), CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
        &found, bd));
    e.bwd_data = PickFirst(bd, found, "backward data");
    size_t a = 0, b = 0, c = 0;
    TANDEM_CUDNN_CALL(cudnnGetConvolutionForwardWorkspaceSize(ctx_.cudnn, e.x.get(), w_desc_,
                                                              conv_desc_, e.y.get(), e.fwd, &a));
    TANDEM_CUDNN_CALL(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        ctx_.cudnn, e.x.get(), e.y.get(), conv_desc_, w_desc_, e.bwd_filter, &b));
    TANDEM_CUDNN_CALL(cudnnGetConvolutionBackwardDataWorkspaceSize(
        ctx_.cudnn, w_desc_, e.y.get(), conv_desc_, e.x.get(), e.bwd_data, &c));
    e.workspace_bytes = std::max({a, b, c});
    if (e.workspace_bytes > 0) e.workspace = ctx_.AllocateBytes(e.workspace_bytes);
    return e;
  }

  template <typename Perf>
  static decltype(Perf::algo) PickFirst(const Perf* perf, int found, const char* pass) {
    for (int i = 0; i < found; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS) return perf[i].algo;
    TANDEM_CHECK(false) << "cuDNN has no " << pass << " convolution algorithm for this shape";
    return perf[0].algo;
  }

  CudaContext& ctx_;
  Conv2dDesc d_;
  cudnnFilterDescriptor_t w_desc_ = nullptr;
  cudnnConvolutionDescriptor_t conv_desc_ = nullptr;
  TensorDesc bias_desc_;
  std::map<int64_t, Entry> cache_;
};

// cuDNN pooling. cuDNN's backward needs the forward's input and output, so the kernel remembers
// where they were (the layer keeps both blobs alive until its Backward).
class CudaPool2d final : public Pool2dKernel {
 public:
  CudaPool2d(CudaContext& ctx, const Pool2dDesc& d) : ctx_(ctx), d_(d) {
    TANDEM_CUDNN_CALL(cudnnCreatePoolingDescriptor(&pool_desc_));
    // Average pooling divides by the window part inside the image, as on the CPU backend.
    // The layer computes floor-mode output sizes, so symmetric padding gives the same windows.
    TANDEM_CUDNN_CALL(cudnnSetPooling2dDescriptor(
        pool_desc_,
        d.kind == PoolKind::kMax ? CUDNN_POOLING_MAX_DETERMINISTIC
                                 : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
        CUDNN_NOT_PROPAGATE_NAN, I(d.kernel_h), I(d.kernel_w), I(d.pad_h), I(d.pad_w),
        I(d.stride_h), I(d.stride_w)));
  }
  ~CudaPool2d() override { cudnnDestroyPoolingDescriptor(pool_desc_); }

  void Forward(int64_t batch, const float* x, float* y, bool training) override {
    HostOrder order(ctx_);
    Entry& e = Get(batch);
    const float one = 1.f, zero = 0.f;
    TANDEM_CUDNN_CALL(
        cudnnPoolingForward(ctx_.cudnn, pool_desc_, &one, e.x.get(), x, &zero, e.y.get(), y));
    if (training) {
      last_x_ = x;
      last_y_ = y;
      last_batch_ = batch;
    }
  }

  void Backward(int64_t batch, const float* dy, float* dx) override {
    HostOrder order(ctx_);
    TANDEM_CHECK(last_batch_ == batch) << "pooling Backward without a training Forward";
    Entry& e = Get(batch);
    const float one = 1.f, zero = 0.f;
    TANDEM_CUDNN_CALL(cudnnPoolingBackward(ctx_.cudnn, pool_desc_, &one, e.y.get(), last_y_,
                                           e.y.get(), dy, e.x.get(), last_x_, &zero, e.x.get(),
                                           dx));
  }

 private:
  struct Entry {
    TensorDesc x, y;
  };
  Entry& Get(int64_t batch) {
    auto it = cache_.find(batch);
    if (it != cache_.end()) return it->second;
    Entry& e = cache_[batch];
    e.x.Set(batch, d_.channels, d_.in_h, d_.in_w);
    e.y.Set(batch, d_.channels, d_.out_h, d_.out_w);
    return e;
  }

  CudaContext& ctx_;
  Pool2dDesc d_;
  cudnnPoolingDescriptor_t pool_desc_ = nullptr;
  std::map<int64_t, Entry> cache_;
  const float* last_x_ = nullptr;
  const float* last_y_ = nullptr;
  int64_t last_batch_ = -1;
};

class CudaEltwise final : public EltwiseKernel {
 public:
  CudaEltwise(CudaContext& ctx, EltwiseKind kind) : ctx_(ctx) {
    switch (kind) {
      case EltwiseKind::kRelu:
        act_ = cuda::Activation::kRelu;
        break;
      case EltwiseKind::kSigmoid:
        act_ = cuda::Activation::kSigmoid;
        break;
      case EltwiseKind::kTanh:
        act_ = cuda::Activation::kTanh;
        break;
    }
  }
  void Forward(int64_t n, const float* x, float* y) override {
    HostOrder order(ctx_);
    TANDEM_CUDA_CALL(cuda::LaunchActivationForward(ctx_.stream, act_, n, x, y));
  }
  void Backward(int64_t n, const float* y, const float* dy, float* dx) override {
    HostOrder order(ctx_);
    TANDEM_CUDA_CALL(cuda::LaunchActivationBackward(ctx_.stream, act_, n, y, dy, dx));
  }

 private:
  CudaContext& ctx_;
  cuda::Activation act_ = cuda::Activation::kRelu;
};

class CudaDevice final : public Device {
 public:
  explicit CudaDevice(std::unique_ptr<CudaContext> ctx, std::string name)
      : ctx_(std::move(ctx)), name_(std::move(name)) {}
  ~CudaDevice() override {
    cudaStreamSynchronize(ctx_->stream);
    ctx_->allocator.reset();
    cudnnDestroy(ctx_->cudnn);
    cublasDestroy(ctx_->cublas);
    cudaStreamDestroy(ctx_->stream);
  }

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string Describe() const override {
    return absl::StrCat("gpu ", ctx_->ordinal, " (", name_, ", cuDNN ", cudnnGetVersion(), ", ",
                        ctx_->precision == Precision::kFp32 ? "fp32" : "bf16 compute",
                        ctx_->host_accessible ? ", managed memory" : "", ")");
  }
  int threads() const override { return 1; }

  float* Allocate(int64_t n) override {
    return static_cast<float*>(
        ctx_->AllocateBytes(static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float)));
  }
  void Free(float* p) override { ctx_->allocator->Free(p); }

  void Fill(int64_t n, float value, float* p) override {
    HostOrder order(*ctx_);
    TANDEM_CUDA_CALL(cuda::LaunchFill(ctx_->stream, n, value, p));
  }
  void Copy(int64_t n, const float* src, float* dst) override {
    HostOrder order(*ctx_);
    if (n <= 0) return;
    TANDEM_CUDA_CALL(
        cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, ctx_->stream));
  }
  void Axpy(int64_t n, float alpha, const float* x, float* y) override {
    HostOrder order(*ctx_);
    TANDEM_CUDA_CALL(cuda::LaunchAxpy(ctx_->stream, n, alpha, x, y));
  }
  void CopyRows(int64_t rows, int64_t cols, const float* src, int64_t src_stride, float* dst,
                int64_t dst_stride) override {
    HostOrder order(*ctx_);
    TANDEM_CUDA_CALL(
        cuda::LaunchCopyRows(ctx_->stream, rows, cols, src, src_stride, dst, dst_stride));
  }
  void BiasGrad(int64_t rows, int64_t cols, const float* dy, float* db) override {
    HostOrder order(*ctx_);
    TANDEM_CUDA_CALL(cuda::LaunchBiasGrad(ctx_->stream, rows, cols, dy, db));
  }
  void Dropout(int64_t n, uint64_t key, float rate, const float* x, float* y) override {
    HostOrder order(*ctx_);
    TANDEM_CUDA_CALL(cuda::LaunchDropout(ctx_->stream, n, key, rate, x, y));
  }
  void Upload(int64_t n, const float* host, float* dst) override {
    if (n <= 0) return;
    TANDEM_CUDA_CALL(
        cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, ctx_->stream));
    Synchronize();
  }
  void Download(int64_t n, const float* src, float* host) override {
    if (n <= 0) return;
    TANDEM_CUDA_CALL(
        cudaMemcpyAsync(host, src, n * sizeof(float), cudaMemcpyDeviceToHost, ctx_->stream));
    Synchronize();
  }
  void Synchronize() override { TANDEM_CUDA_CALL(cudaStreamSynchronize(ctx_->stream)); }

  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc) override {
    HostOrder order(*ctx_);
    if (m == 0 || n == 0) return;
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasComputeType_t compute = ctx_->precision == Precision::kFp32
                                            ? CUBLAS_COMPUTE_32F_PEDANTIC
                                            : CUBLAS_COMPUTE_32F_FAST_16BF;
    TANDEM_CUBLAS_CALL(cublasGemmEx(ctx_->cublas, op_b, op_a, I(n), I(m), I(k), &alpha, b,
                                    CUDA_R_32F, I(ldb), a, CUDA_R_32F, I(lda), &beta, c,
                                    CUDA_R_32F, I(ldc), compute, CUBLAS_GEMM_DEFAULT));
  }

  void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, int64_t stride_a, const float* b,
                          int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                          int64_t stride_c, int64_t batch) override {
    HostOrder order(*ctx_);
    if (m == 0 || n == 0 || batch == 0) return;
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasComputeType_t compute = ctx_->precision == Precision::kFp32
                                            ? CUBLAS_COMPUTE_32F_PEDANTIC
                                            : CUBLAS_COMPUTE_32F_FAST_16BF;
    TANDEM_CUBLAS_CALL(cublasGemmStridedBatchedEx(
        ctx_->cublas, op_b, op_a, I(n), I(m), I(k), &alpha, b, CUDA_R_32F, I(ldb),
        static_cast<long long>(stride_b), a, CUDA_R_32F, I(lda), static_cast<long long>(stride_a),
        &beta, c, CUDA_R_32F, I(ldc), static_cast<long long>(stride_c), I(batch), compute,
        CUBLAS_GEMM_DEFAULT));
  }

  void Softmax(int64_t rows, int64_t cols, const float* x, float* y) override {
    HostOrder order(*ctx_);
    TANDEM_CUDA_CALL(cuda::LaunchSoftmax(ctx_->stream, rows, cols, x, y));
  }
  void SoftmaxBackward(int64_t rows, int64_t cols, const float* y, const float* dy,
                       float* dx) override {
    HostOrder order(*ctx_);
    TANDEM_CUDA_CALL(cuda::LaunchSoftmaxBackward(ctx_->stream, rows, cols, y, dy, dx));
  }

  std::unique_ptr<Conv2dKernel> CreateConv2d(const Conv2dDesc& desc) override {
    return std::make_unique<CudaConv2d>(*ctx_, desc);
  }
  std::unique_ptr<Pool2dKernel> CreatePool2d(const Pool2dDesc& desc) override {
    return std::make_unique<CudaPool2d>(*ctx_, desc);
  }
  std::unique_ptr<EltwiseKernel> CreateEltwise(EltwiseKind kind) override {
    return std::make_unique<CudaEltwise>(*ctx_, kind);
  }

 private:
  std::unique_ptr<CudaContext> ctx_;
  std::string name_;
};

absl::Status Unavailable(const std::string& what, const char* message) {
  return absl::UnavailableError(absl::StrCat(what, ": ", message));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Device>> CreateCudaDevice(const CudaDeviceOptions& options) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return Unavailable("cudaGetDeviceCount", cudaGetErrorString(err));
  if (options.ordinal < 0 || options.ordinal >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("GPU ordinal ", options.ordinal, " out of range: ", count, " visible"));
  }
  err = cudaSetDevice(options.ordinal);
  if (err != cudaSuccess) return Unavailable("cudaSetDevice", cudaGetErrorString(err));
  cudaDeviceProp prop{};
  err = cudaGetDeviceProperties(&prop, options.ordinal);
  if (err != cudaSuccess) return Unavailable("cudaGetDeviceProperties", cudaGetErrorString(err));

  auto ctx = std::make_unique<CudaContext>();
  ctx->ordinal = options.ordinal;
  ctx->precision = options.precision;
  ctx->host_accessible = options.host_accessible;
  err = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking);
  if (err != cudaSuccess) return Unavailable("cudaStreamCreate", cudaGetErrorString(err));
  const cublasStatus_t bs = cublasCreate(&ctx->cublas);
  if (bs != CUBLAS_STATUS_SUCCESS) return Unavailable("cublasCreate", cublasGetStatusString(bs));
  cublasSetStream(ctx->cublas, ctx->stream);
  const cudnnStatus_t ds = cudnnCreate(&ctx->cudnn);
  if (ds != CUDNN_STATUS_SUCCESS) return Unavailable("cudnnCreate", cudnnGetErrorString(ds));
  cudnnSetStream(ctx->cudnn, ctx->stream);
  ctx->allocator = std::make_unique<CachingAllocator>(cuda::RawAllocator{
      .allocate =
          [managed = options.host_accessible](size_t bytes) -> void* {
            void* p = nullptr;
            const cudaError_t e =
                managed ? cudaMallocManaged(&p, bytes, cudaMemAttachGlobal) : cudaMalloc(&p, bytes);
            if (e != cudaSuccess) {
              cudaGetLastError();  // clear the sticky-free error so the cache can retry
              return nullptr;
            }
            return p;
          },
      .release = [](void* p) { cudaFree(p); },
  });
  return std::unique_ptr<Device>(
      new CudaDevice(std::move(ctx), absl::StrCat(prop.name, ", sm_", prop.major, prop.minor)));
}

}  // namespace tandem::trainer
