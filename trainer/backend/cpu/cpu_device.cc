// The CPU backend: oneDNN primitives for convolution and pooling, oneDNN's sgemm for matrix
// products, OpenMP loops for element-wise work.
//
// Why oneDNN's sgemm rather than OpenBLAS: Debian's OpenBLAS 0.3.21 does not recognise this CPU
// and falls back to SSE3 kernels (about 25 GFLOP/s per core) unless OPENBLAS_CORETYPE is set in
// the environment before the library loads; oneDNN dispatches on CPUID itself (about 130 GFLOP/s).
//
// Caching: each kernel keeps one entry per batch size (in practice two: the full batch and the
// last, smaller one) holding the primitives and the dnnl::memory objects; each call only swaps
// data handles, so steady-state steps allocate nothing.
#include <omp.h>
#include <sys/mman.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/out_of_memory.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/backend/cpu/cpu_kernels.h"
#include "trainer/core/dropout_mask.h"
#include "trainer/core/device.h"

namespace tandem::trainer {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kHugePageThreshold = size_t{8} << 20;
using Dt = memory::data_type;

// One argument of a primitive whose preferred layout may differ from our plain one (NCHW/OIHW):
// then it owns an internal buffer in the preferred layout and the reorder to or from it.
struct Arg {
  memory user;      // plain layout over the caller's pointer (data handle set per call)
  memory internal;  // preferred layout (allocated once), or == user when no reorder is needed
  dnnl::reorder reorder;
  bool reordered = false;

  void Init(const memory::desc& user_md, const memory::desc& want, dnnl::engine& eng, bool input) {
    user = memory(user_md, eng, DNNL_MEMORY_NONE);
    reordered = want != user_md;
    if (!reordered) {
      internal = user;
      return;
    }
    internal = memory(want, eng);
    reorder = input ? dnnl::reorder(user, internal) : dnnl::reorder(internal, user);
  }
  // Before the primitive: point at `p`; reorder inputs into the internal layout.
  memory& In(dnnl::stream& s, const float* p) {
    user.set_data_handle(const_cast<float*>(p));
    if (reordered) reorder.execute(s, user, internal);
    return internal;
  }
  memory& Out(float* p) {
    user.set_data_handle(p);
    return internal;
  }
  // After the primitive: copy outputs back to the plain layout.
  void Finish(dnnl::stream& s) {
    if (reordered) reorder.execute(s, internal, user);
  }
};

// The oneDNN tag of an activation in `layout` (Device::BlockedChannels: `block` channels).
Tag ActivationTag(ActivationLayout layout, int64_t block) {
  if (layout == ActivationLayout::kPlain) return Tag::nchw;
  TANDEM_CHECK(block == 16 || block == 8) << "blocked activations on a device without them";
  return block == 16 ? Tag::nChw16c : Tag::nChw8c;
}

// Convolution with the layouts oneDNN prefers (format `any`: blocked nChw16c on AVX-512), which
// run about 3x faster than its GEMM-based plain-NCHW path here; tensors between layers stay
// plain, so each call reorders at its boundary (cheap next to the convolution).
class CpuConv2d final : public Conv2dKernel {
 public:
  CpuConv2d(dnnl::engine& eng, dnnl::stream& stream, const Conv2dDesc& d, int64_t block,
            bool constant_weights)
      : eng_(eng), stream_(stream), d_(d), block_(block), constant_weights_(constant_weights) {}

  void Forward(int64_t batch, const float* x, const float* w, const float* b, float* y) override {
    Entry& e = Get(batch);
    // Constant weights: reordered into the primitive's layout on the first call (per batch
    // size and weights pointer), then used as they are.
    memory* wei = &e.f_wei.internal;
    if (!constant_weights_ || e.weights_of != w) {
      wei = &e.f_wei.In(stream_, w);
      e.weights_of = w;
    }
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, e.f_src.In(stream_, x)},
                                         {DNNL_ARG_WEIGHTS, *wei},
                                         {DNNL_ARG_DST, e.f_dst.Out(y)}};
    if (d_.bias) {
      e.bias.set_data_handle(const_cast<float*>(b));
      args.emplace(DNNL_ARG_BIAS, e.bias);
    }
    e.fwd.execute(stream_, args);
    e.f_dst.Finish(stream_);
    stream_.wait();
  }

  void Backward(int64_t batch, const float* x, const float* dy, const float* w, float* dw,
                float* db, float* dx) override {
    TANDEM_CHECK(!constant_weights_) << "conv2d Backward on an inference-only device";
    Entry& e = Get(batch);
    const bool with_bias = d_.bias && db != nullptr;
    Arg& src = with_bias ? e.w_src : e.wn_src;
    Arg& ddst = with_bias ? e.w_ddst : e.wn_ddst;
    Arg& dwei = with_bias ? e.w_dwei : e.wn_dwei;
    memory& ddst_mem = ddst.In(stream_, dy);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src.In(stream_, x)},
                                         {DNNL_ARG_DIFF_DST, ddst_mem},
                                         {DNNL_ARG_DIFF_WEIGHTS, dwei.Out(dw)}};
    if (with_bias) {
      e.bias.set_data_handle(db);
      args.emplace(DNNL_ARG_DIFF_BIAS, e.bias);
      e.bwd_weights.execute(stream_, args);
    } else {
      e.bwd_weights_nobias.execute(stream_, args);
    }
    dwei.Finish(stream_);
    if (dx != nullptr) {
      // dy in the layout backward-data wants: usually the one just made for backward-weights
      // (blocked nChw16c for both), so the reorder is not repeated.
      const bool same = (with_bias ? e.ddst_shared : e.ddst_shared_nb);
      e.bwd_data.execute(stream_, {{DNNL_ARG_DIFF_DST, same ? ddst_mem : e.d_ddst.In(stream_, dy)},
                                   {DNNL_ARG_WEIGHTS, e.d_wei.In(stream_, w)},
                                   {DNNL_ARG_DIFF_SRC, e.d_dsrc.Out(dx)}});
      e.d_dsrc.Finish(stream_);
    }
    stream_.wait();
  }

 private:
  struct Entry {
    memory bias;
    Arg f_src, f_wei, f_dst;                 // forward
    Arg d_ddst, d_wei, d_dsrc;               // backward data
    Arg w_src, w_ddst, w_dwei;               // backward weights (with bias)
    Arg wn_src, wn_ddst, wn_dwei;            // backward weights (no bias)
    bool ddst_shared = false;                // backward data takes w_ddst's internal dy as is
    bool ddst_shared_nb = false;             // ... wn_ddst's
    const float* weights_of = nullptr;       // constant weights: f_wei.internal holds these
    dnnl::convolution_forward fwd;
    dnnl::convolution_backward_data bwd_data;
    dnnl::convolution_backward_weights bwd_weights, bwd_weights_nobias;
  };

  Entry& Get(int64_t batch) {
    auto it = cache_.find(batch);
    if (it != cache_.end()) return it->second;
    Entry& e = cache_[batch];
    const memory::dims src_dims{batch, d_.in_channels, d_.in_h, d_.in_w};
    const memory::dims dst_dims{batch, d_.out_channels, d_.out_h, d_.out_w};
    memory::dims wei_dims;
    Tag wei_tag;
    if (d_.groups == 1) {
      wei_dims = {d_.out_channels, d_.in_channels, d_.kernel_h, d_.kernel_w};
      wei_tag = Tag::oihw;
    } else {
      wei_dims = {d_.groups, d_.out_channels / d_.groups, d_.in_channels / d_.groups, d_.kernel_h,
                  d_.kernel_w};
      wei_tag = Tag::goihw;
    }
    const memory::dims strides{d_.stride_h, d_.stride_w};
    const memory::dims pad_l{d_.pad_h, d_.pad_w};
    // Right padding that makes the output exactly out_h x out_w.
    const memory::dims pad_r{(d_.out_h - 1) * d_.stride_h + d_.kernel_h - d_.in_h - d_.pad_h,
                             (d_.out_w - 1) * d_.stride_w + d_.kernel_w - d_.in_w - d_.pad_w};
    // Our side of x/dx and y/dy: plain NCHW, or the blocked layout the network keeps between
    // layers (then the primitives' preferred layout is usually the same, and Arg reorders
    // nothing).
    const memory::desc src_md(src_dims, Dt::f32, ActivationTag(d_.src_layout, block_));
    const memory::desc dst_md(dst_dims, Dt::f32, ActivationTag(d_.dst_layout, block_));
    const memory::desc wei_md(wei_dims, Dt::f32, wei_tag);
    const memory::desc bias_md({d_.out_channels}, Dt::f32, Tag::x);
    const memory::desc src_any(src_dims, Dt::f32, Tag::any);
    const memory::desc dst_any(dst_dims, Dt::f32, Tag::any);
    const memory::desc wei_any(wei_dims, Dt::f32, Tag::any);
    const memory::desc no_bias;
    const auto algo = dnnl::algorithm::convolution_direct;
    const auto prop = constant_weights_ ? dnnl::prop_kind::forward_inference
                                        : dnnl::prop_kind::forward_training;
    dnnl::convolution_forward::desc fd(prop, algo, src_any, wei_any, d_.bias ? bias_md : no_bias,
                                       dst_any, strides, pad_l, pad_r);
    dnnl::primitive_attr attr;
    if (d_.fused_relu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      attr.set_post_ops(ops);
    }
    dnnl::convolution_forward::primitive_desc fpd(fd, attr, eng_);
    e.bias = memory(bias_md, eng_, DNNL_MEMORY_NONE);
    e.f_src.Init(src_md, fpd.src_desc(), eng_, true);
    e.f_wei.Init(wei_md, fpd.weights_desc(), eng_, true);
    e.f_dst.Init(dst_md, fpd.dst_desc(), eng_, false);
    e.fwd = dnnl::convolution_forward(fpd);
    if (constant_weights_) return e;  // no backward primitives
    dnnl::convolution_backward_data::desc bdd(algo, src_any, wei_any, dst_any, strides, pad_l,
                                              pad_r);
    dnnl::convolution_backward_data::primitive_desc bdpd(bdd, eng_, fpd);
    dnnl::convolution_backward_weights::desc bwd(algo, src_any, wei_any, bias_md, dst_any, strides,
                                                 pad_l, pad_r);
    dnnl::convolution_backward_weights::primitive_desc bwpd(bwd, eng_, fpd);
    dnnl::convolution_backward_weights::desc bwd_nb(algo, src_any, wei_any, dst_any, strides,
                                                    pad_l, pad_r);
    dnnl::convolution_backward_weights::primitive_desc bwpd_nb(bwd_nb, eng_, fpd);
    e.d_ddst.Init(dst_md, bdpd.diff_dst_desc(), eng_, true);
    e.d_wei.Init(wei_md, bdpd.weights_desc(), eng_, true);
    e.d_dsrc.Init(src_md, bdpd.diff_src_desc(), eng_, false);
    e.w_src.Init(src_md, bwpd.src_desc(), eng_, true);
    e.w_ddst.Init(dst_md, bwpd.diff_dst_desc(), eng_, true);
    e.w_dwei.Init(wei_md, bwpd.diff_weights_desc(), eng_, false);
    e.wn_src.Init(src_md, bwpd_nb.src_desc(), eng_, true);
    e.wn_ddst.Init(dst_md, bwpd_nb.diff_dst_desc(), eng_, true);
    e.wn_dwei.Init(wei_md, bwpd_nb.diff_weights_desc(), eng_, false);
    e.ddst_shared = bdpd.diff_dst_desc() == bwpd.diff_dst_desc();
    e.ddst_shared_nb = bdpd.diff_dst_desc() == bwpd_nb.diff_dst_desc();
    e.bwd_data = dnnl::convolution_backward_data(bdpd);
    e.bwd_weights = dnnl::convolution_backward_weights(bwpd);
    e.bwd_weights_nobias = dnnl::convolution_backward_weights(bwpd_nb);
    return e;
  }

  dnnl::engine& eng_;
  dnnl::stream& stream_;
  Conv2dDesc d_;
  int64_t block_;
  bool constant_weights_;
  std::map<int64_t, Entry> cache_;
};

// Pooling runs in the layout of its input x (oneDNN's pooling wants src and dst alike); when
// the output's layout differs (a blocked chain ending in a plain-only layer such as fc), y and
// dy are reordered at this boundary, on the pooled, 4x smaller tensor.
class CpuPool2d final : public Pool2dKernel {
 public:
  CpuPool2d(dnnl::engine& eng, dnnl::stream& stream, const Pool2dDesc& d, int64_t block)
      : eng_(eng), stream_(stream), d_(d), block_(block) {}

  void Forward(int64_t batch, const float* x, float* y, bool training) override {
    Entry& e = Get(batch);
    e.src.set_data_handle(const_cast<float*>(x));
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, e.src}, {DNNL_ARG_DST, e.dst.Out(y)}};
    if (e.has_workspace) args.emplace(DNNL_ARG_WORKSPACE, e.workspace);
    (training ? e.fwd_train : e.fwd_infer).execute(stream_, args);
    e.dst.Finish(stream_);
    stream_.wait();
  }

  void Backward(int64_t batch, const float* dy, float* dx) override {
    Entry& e = Get(batch);
    e.src.set_data_handle(dx);
    std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, e.ddst.In(stream_, dy)},
                                         {DNNL_ARG_DIFF_SRC, e.src}};
    if (e.has_workspace) args.emplace(DNNL_ARG_WORKSPACE, e.workspace);
    e.bwd.execute(stream_, args);
    stream_.wait();
  }

 private:
  struct Entry {
    memory src, workspace;  // x / dx in their own layout
    Arg dst, ddst;          // y and dy: ours, or reordered from/to x's layout
    bool has_workspace = false;
    dnnl::pooling_forward fwd_train, fwd_infer;
    dnnl::pooling_backward bwd;
  };

  Entry& Get(int64_t batch) {
    auto it = cache_.find(batch);
    if (it != cache_.end()) return it->second;
    Entry& e = cache_[batch];
    const Tag src_tag = ActivationTag(d_.src_layout, block_);
    memory::desc src_md({batch, d_.channels, d_.in_h, d_.in_w}, Dt::f32, src_tag);
    memory::desc dst_md({batch, d_.channels, d_.out_h, d_.out_w}, Dt::f32, src_tag);
    memory::desc user_dst_md({batch, d_.channels, d_.out_h, d_.out_w}, Dt::f32,
                             ActivationTag(d_.dst_layout, block_));
    const memory::dims strides{d_.stride_h, d_.stride_w}, kernel{d_.kernel_h, d_.kernel_w};
    const memory::dims pad_l{d_.pad_h, d_.pad_w};
    const memory::dims pad_r{(d_.out_h - 1) * d_.stride_h + d_.kernel_h - d_.in_h - d_.pad_h,
                             (d_.out_w - 1) * d_.stride_w + d_.kernel_w - d_.in_w - d_.pad_w};
    // Average pooling divides by the window part inside the image (padding excluded).
    const auto algo = d_.kind == PoolKind::kMax ? dnnl::algorithm::pooling_max
                                                : dnnl::algorithm::pooling_avg_exclude_padding;
    dnnl::pooling_forward::desc ftd(dnnl::prop_kind::forward_training, algo, src_md, dst_md,
                                    strides, kernel, pad_l, pad_r);
    dnnl::pooling_forward::primitive_desc ftpd(ftd, eng_);
    dnnl::pooling_forward::desc fid(dnnl::prop_kind::forward_inference, algo, src_md, dst_md,
                                    strides, kernel, pad_l, pad_r);
    dnnl::pooling_forward::primitive_desc fipd(fid, eng_);
    dnnl::pooling_backward::desc bd(algo, src_md, dst_md, strides, kernel, pad_l, pad_r);
    dnnl::pooling_backward::primitive_desc bpd(bd, eng_, ftpd);
    e.src = memory(src_md, eng_, DNNL_MEMORY_NONE);
    e.dst.Init(user_dst_md, dst_md, eng_, /*input=*/false);
    e.ddst.Init(user_dst_md, dst_md, eng_, /*input=*/true);
    e.has_workspace = ftpd.workspace_desc().get_size() > 0;
    if (e.has_workspace) e.workspace = memory(ftpd.workspace_desc(), eng_);  // allocated once
    e.fwd_train = dnnl::pooling_forward(ftpd);
    e.fwd_infer = dnnl::pooling_forward(fipd);
    e.bwd = dnnl::pooling_backward(bpd);
    return e;
  }

  dnnl::engine& eng_;
  dnnl::stream& stream_;
  Pool2dDesc d_;
  int64_t block_;
  std::map<int64_t, Entry> cache_;
};

class CpuEltwise final : public EltwiseKernel {
 public:
  explicit CpuEltwise(EltwiseKind kind) : kind_(kind) {}

  void Forward(int64_t n, const float* x, float* y) override {
    switch (kind_) {
      case EltwiseKind::kRelu:
        cpu::ReluForward(n, x, y);
        break;
      case EltwiseKind::kSigmoid:
        cpu::SigmoidForward(n, x, y);
        break;
      case EltwiseKind::kTanh:
        cpu::TanhForward(n, x, y);
        break;
    }
  }

  void Backward(int64_t n, const float* y, const float* dy, float* dx) override {
    switch (kind_) {
      case EltwiseKind::kRelu:
        cpu::ReluBackward(n, y, dy, dx);
        break;
      case EltwiseKind::kSigmoid:
        cpu::SigmoidBackward(n, y, dy, dx);
        break;
      case EltwiseKind::kTanh:
        cpu::TanhBackward(n, y, dy, dx);
        break;
    }
  }

 private:
  EltwiseKind kind_;
};

class CpuDevice final : public Device {
 public:
  explicit CpuDevice(const CpuDeviceOptions& options)
      : eng_(dnnl::engine::kind::cpu, 0), stream_(eng_) {
    if (options.threads > 0) omp_set_num_threads(options.threads);
    threads_ = omp_get_max_threads();
    fuse_conv_relu_ = options.fuse_conv_relu;
    constant_weights_ = options.constant_weights;
    if (options.blocked_activations) {
      // The block oneDNN's convolutions pick for `any` on this instruction set.
      const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
      if (isa == dnnl::cpu_isa::avx512_core || isa == dnnl::cpu_isa::avx512_core_vnni ||
          isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx) {
        block_ = 16;
      } else if (isa == dnnl::cpu_isa::avx2 || isa == dnnl::cpu_isa::avx2_vnni) {
        block_ = 8;
      }
    }
  }

  DeviceKind kind() const override { return DeviceKind::kCpu; }
  std::string Describe() const override {
    const dnnl_version_t* v = dnnl_version();
    return absl::StrCat("cpu (oneDNN ", v->major, ".", v->minor, ".", v->patch, ", ", threads_,
                        " threads)");
  }
  int threads() const override { return threads_; }
  int64_t BlockedChannels() const override { return block_; }
  bool FusesConvRelu() const override { return fuse_conv_relu_; }

  float* Allocate(int64_t n) override {
    size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float);
    // Big tensors (embedding tables and their gradients, large fc weights) are read at scattered
    // rows: on 4 KiB pages nearly every row lookup is a TLB miss. Align them to 2 MiB and ask for
    // transparent huge pages (honoured when the kernel's THP mode is `madvise` or `always`;
    // harmless otherwise).
    const bool huge = bytes >= kHugePageThreshold;
    const size_t align = huge ? kHugePage : 64;
    bytes = (bytes + align - 1) / align * align;
    void* p = std::aligned_alloc(align, bytes);
    if (p == nullptr) ExitOutOfMemory(bytes, "a tensor");
    if (huge) ::madvise(p, bytes, MADV_HUGEPAGE);
    return static_cast<float*>(p);
  }
  void Free(float* p) override { std::free(p); }

  void Fill(int64_t n, float value, float* p) override {
    if (value == 0.f) {
      std::memset(p, 0, n * sizeof(float));
      return;
    }
    for (int64_t i = 0; i < n; ++i) p[i] = value;
  }
  void Copy(int64_t n, const float* src, float* dst) override {
    std::memcpy(dst, src, n * sizeof(float));
  }
  void Axpy(int64_t n, float alpha, const float* x, float* y) override {
    cpu::Axpy(n, alpha, x, y);
  }

  void CopyRows(int64_t rows, int64_t cols, const float* src, int64_t src_stride, float* dst,
                int64_t dst_stride) override {
    for (int64_t r = 0; r < rows; ++r) Copy(cols, src + r * src_stride, dst + r * dst_stride);
  }
  void BiasGrad(int64_t rows, int64_t cols, const float* dy, float* db) override {
    Fill(cols, 0.f, db);
    for (int64_t r = 0; r < rows; ++r) Axpy(cols, 1.f, dy + r * cols, db);
  }
  void Dropout(int64_t n, uint64_t key, float rate, const float* x, float* y) override {
    const float scale = 1.f / (1.f - rate);
    for (int64_t i = 0; i < n; ++i) y[i] = DropoutKeep(key, i, rate) ? x[i] * scale : 0.f;
  }
  void Upload(int64_t n, const float* host, float* dst) override { Copy(n, host, dst); }
  void Download(int64_t n, const float* src, float* host) override { Copy(n, src, host); }

  void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc) override {
    const dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha,
                                        a, lda, b, ldb, beta, c, ldc);
    TANDEM_CHECK_EQ(static_cast<int>(st), static_cast<int>(dnnl_success))
        << "dnnl_sgemm m=" << m << " n=" << n << " k=" << k;
  }

  // oneDNN's matmul with a batch dimension: one primitive per shape, created once and kept (its
  // creation costs far more than one small product). A shape oneDNN declines (it has no
  // implementation for those strides) falls back to a loop of sgemm calls.
  void GemmStridedBatched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, int64_t stride_a, const float* b,
                          int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                          int64_t stride_c, int64_t batch) override {
    if (m == 0 || n == 0 || batch == 0) return;
    const MatmulKey key{trans_a,  trans_b,  m,        n,        k,
                        lda,      ldb,      ldc,      stride_a, stride_b,
                        stride_c, batch,    std::bit_cast<uint32_t>(alpha),
                        std::bit_cast<uint32_t>(beta)};
    auto it = matmul_.find(key);
    if (it == matmul_.end()) it = matmul_.emplace(key, CreateMatmul(key)).first;
    MatmulEntry& e = it->second;
    if (!e.prim) {
      for (int64_t i = 0; i < batch; ++i)
        Gemm(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta,
             c + i * stride_c, ldc);
      return;
    }
    e.src.set_data_handle(const_cast<float*>(a));
    e.wei.set_data_handle(const_cast<float*>(b));
    e.dst.set_data_handle(c);
    e.prim->execute(stream_, {{DNNL_ARG_SRC, e.src}, {DNNL_ARG_WEIGHTS, e.wei},
                              {DNNL_ARG_DST, e.dst}});
    stream_.wait();
  }

  // oneDNN's vectorised softmax (the plain loop spends most of its time in scalar expf), one
  // primitive per shape.
  void Softmax(int64_t rows, int64_t cols, const float* x, float* y) override {
    auto it = softmax_.find({rows, cols});
    if (it == softmax_.end()) {
      memory::desc md({rows, cols}, Dt::f32, Tag::ab);
      dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, md, 1);
      dnnl::softmax_forward::primitive_desc pd(d, eng_);
      it = softmax_.emplace(std::make_pair(rows, cols),
                            SoftmaxEntry{memory(md, eng_, DNNL_MEMORY_NONE),
                                         memory(md, eng_, DNNL_MEMORY_NONE),
                                         dnnl::softmax_forward(pd)})
               .first;
    }
    SoftmaxEntry& e = it->second;
    e.src.set_data_handle(const_cast<float*>(x));
    e.dst.set_data_handle(y);
    e.prim.execute(stream_, {{DNNL_ARG_SRC, e.src}, {DNNL_ARG_DST, e.dst}});
    stream_.wait();
  }

  void SoftmaxBackward(int64_t rows, int64_t cols, const float* y, const float* dy,
                       float* dx) override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* yr = y + r * cols;
      const float* dyr = dy + r * cols;
      float dot = 0.f;
      for (int64_t c = 0; c < cols; ++c) dot += dyr[c] * yr[c];
      for (int64_t c = 0; c < cols; ++c) dx[r * cols + c] = yr[c] * (dyr[c] - dot);
    }
  }

  std::unique_ptr<Conv2dKernel> CreateConv2d(const Conv2dDesc& desc) override {
    return std::make_unique<CpuConv2d>(eng_, stream_, desc, block_, constant_weights_);
  }
  std::unique_ptr<Pool2dKernel> CreatePool2d(const Pool2dDesc& desc) override {
    return std::make_unique<CpuPool2d>(eng_, stream_, desc, block_);
  }
  std::unique_ptr<EltwiseKernel> CreateEltwise(EltwiseKind kind) override {
    return std::make_unique<CpuEltwise>(kind);
  }

 private:
  struct SoftmaxEntry {
    memory src, dst;
    dnnl::softmax_forward prim;
  };
  // trans_a, trans_b, m, n, k, lda, ldb, ldc, the three batch strides, batch, alpha and beta's
  // bits.
  using MatmulKey = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                               int64_t, int64_t, int64_t, int64_t, uint32_t, uint32_t>;
  struct MatmulEntry {
    memory src, wei, dst;
    std::optional<dnnl::matmul> prim;  // none: oneDNN has no implementation, loop over Gemm
  };
  MatmulEntry CreateMatmul(const MatmulKey& key) {
    const auto [ta, tb, m, n, k, lda, ldb, ldc, sa, sb, sc, batch, alpha_bits, beta_bits] = key;
    const float alpha = std::bit_cast<float>(alpha_bits), beta = std::bit_cast<float>(beta_bits);
    // Row-major op(A)[m, k]: element (i, l) at i * lda + l, or l * lda + i when transposed.
    const memory::desc a_md({batch, m, k}, Dt::f32,
                            ta ? memory::dims{sa, 1, lda} : memory::dims{sa, lda, 1});
    const memory::desc b_md({batch, k, n}, Dt::f32,
                            tb ? memory::dims{sb, 1, ldb} : memory::dims{sb, ldb, 1});
    const memory::desc c_md({batch, m, n}, Dt::f32, memory::dims{sc, ldc, 1});
    MatmulEntry e{memory(a_md, eng_, DNNL_MEMORY_NONE), memory(b_md, eng_, DNNL_MEMORY_NONE),
                  memory(c_md, eng_, DNNL_MEMORY_NONE), std::nullopt};
    try {
      dnnl::primitive_attr attr;
      if (alpha != 1.f) attr.set_output_scales(0, {alpha});
      if (beta != 0.f) {
        dnnl::post_ops po;
        po.append_sum(beta);
        attr.set_post_ops(po);
      }
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, eng_);
      e.prim.emplace(pd);
    } catch (const dnnl::error&) {
      e.prim.reset();
    }
    return e;
  }
  dnnl::engine eng_;
  dnnl::stream stream_;
  int threads_ = 1;
  int64_t block_ = 0;  // BlockedChannels()
  bool fuse_conv_relu_ = true;
  bool constant_weights_ = false;
  std::map<std::pair<int64_t, int64_t>, SoftmaxEntry> softmax_;
  std::map<MatmulKey, MatmulEntry> matmul_;
};

}  // namespace

std::unique_ptr<Device> CreateCpuDevice(const CpuDeviceOptions& options) {
  return std::make_unique<CpuDevice>(options);
}

}  // namespace tandem::trainer
