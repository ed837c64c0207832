#include "trainer/backend/cpu/cpu_kernels.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "trainer/core/fast_math.h"

namespace tandem::trainer::cpu {
namespace {

// Below this many elements a kernel runs on the calling thread: an OpenMP fork/join costs a few
// microseconds, about what 64k floats take through one core's vector units.
constexpr int64_t kParallelGrain = 1 << 16;

// Runs fn(begin, end) over [0, n) in contiguous, 16-float aligned pieces, one per thread.
template <typename Fn>
void ParallelFor(int64_t n, Fn&& fn) {
  const int threads = omp_get_max_threads();
  if (n < 2 * kParallelGrain || threads <= 1 || omp_in_parallel()) {
    fn(int64_t{0}, n);
    return;
  }
  const int pieces = static_cast<int>(std::min<int64_t>(threads, n / kParallelGrain));
#pragma omp parallel num_threads(pieces)
  {
    const int t = omp_get_thread_num();
    const int64_t per = (n / pieces + 15) / 16 * 16;
    const int64_t begin = std::min(n, t * per);
    const int64_t end = t == pieces - 1 ? n : std::min(n, begin + per);
    if (begin < end) fn(begin, end);
  }
}

// The kernels are plain loops that GCC vectorises; they are compiled once per instruction set
// and the best one the CPU supports is chosen at first use. (GCC's target_clones would be the
// obvious tool, but its load-time resolver picked the baseline clone on this AMD EPYC host.)
#define TANDEM_CPU_KERNELS(SUFFIX, ATTR)                                                         \
  ATTR void ReluForward##SUFFIX(int64_t b, int64_t e, const float* x, float* y) {               \
    for (int64_t i = b; i < e; ++i) {                                                           \
      const float v = x[i];                                                                     \
      y[i] = v > 0.f ? v : 0.f;                                                                 \
    }                                                                                           \
  }                                                                                             \
  ATTR void ReluBackward##SUFFIX(int64_t b, int64_t e, const float* y, const float* dy,         \
                                 float* dx) {                                                   \
    for (int64_t i = b; i < e; ++i) {                                                           \
      const float d = dy[i];                                                                    \
      dx[i] = y[i] > 0.f ? d : 0.f;                                                             \
    }                                                                                           \
  }                                                                                             \
  ATTR void SigmoidForward##SUFFIX(int64_t b, int64_t e, const float* x, float* y) {           \
    for (int64_t i = b; i < e; ++i) y[i] = FastSigmoid(x[i]);                                   \
  }                                                                                             \
  ATTR void TanhForward##SUFFIX(int64_t b, int64_t e, const float* x, float* y) {              \
    for (int64_t i = b; i < e; ++i) y[i] = FastTanh(x[i]);                                      \
  }                                                                                             \
  ATTR void SigmoidBackward##SUFFIX(int64_t b, int64_t e, const float* y, const float* dy,      \
                                    float* dx) {                                                \
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * y[i] * (1.f - y[i]);                        \
  }                                                                                             \
  ATTR void TanhBackward##SUFFIX(int64_t b, int64_t e, const float* y, const float* dy,         \
                                 float* dx) {                                                   \
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * (1.f - y[i] * y[i]);                        \
  }                                                                                             \
  ATTR void Axpy##SUFFIX(int64_t b, int64_t e, float alpha, const float* x, float* y) {         \
    for (int64_t i = b; i < e; ++i) y[i] += alpha * x[i];                                       \
  }                                                                                             \
  ATTR void Sgd##SUFFIX(int64_t b, int64_t e, float lr, float wd, const float* g, float* w) {   \
    for (int64_t i = b; i < e; ++i) w[i] -= lr * (g[i] + wd * w[i]);                            \
  }                                                                                             \
  ATTR void Momentum##SUFFIX(int64_t b, int64_t e, float lr, float mu, float wd,                \
                             const float* g, float* m, float* w) {                              \
    for (int64_t i = b; i < e; ++i) {                                                           \
      const float mi = mu * m[i] + g[i] + wd * w[i];                                            \
      m[i] = mi;                                                                                \
      w[i] -= lr * mi;                                                                          \
    }                                                                                           \
  }                                                                                             \
  ATTR void Adam##SUFFIX(int64_t b, int64_t e, float step_size, float b1, float b2, float eps,  \
                         float inv_sqrt_bc2, float wd, const float* g, float* m, float* v,      \
                         float* w) {                                                            \
    for (int64_t i = b; i < e; ++i) {                                                           \
      const float gi = g[i] + wd * w[i];                                                        \
      const float mi = b1 * m[i] + (1 - b1) * gi;                                               \
      const float vi = b2 * v[i] + (1 - b2) * gi * gi;                                          \
      m[i] = mi;                                                                                \
      v[i] = vi;                                                                                \
      w[i] -= step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);                            \
    }                                                                                           \
  }                                                                                             \
  ATTR void Adagrad##SUFFIX(int64_t b, int64_t e, float lr, float eps, float wd,                \
                            const float* g, float* s, float* w) {                               \
    for (int64_t i = b; i < e; ++i) {                                                           \
      const float gi = g[i] + wd * w[i];                                                        \
      const float si = s[i] + gi * gi;                                                          \
      s[i] = si;                                                                                \
      w[i] -= lr * gi / (std::sqrt(si) + eps);                                                  \
    }                                                                                           \
  }

TANDEM_CPU_KERNELS(Generic, )
#if defined(__x86_64__) && defined(__GNUC__)
TANDEM_CPU_KERNELS(Avx2, __attribute__((target("avx2,fma"))))
TANDEM_CPU_KERNELS(Avx512, __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))))
#endif

struct Kernels {
  decltype(&ReluForwardGeneric) relu_forward;
  decltype(&ReluBackwardGeneric) relu_backward;
  decltype(&SigmoidBackwardGeneric) sigmoid_backward;
  decltype(&TanhBackwardGeneric) tanh_backward;
  decltype(&SigmoidForwardGeneric) sigmoid_forward;
  decltype(&TanhForwardGeneric) tanh_forward;
  decltype(&AxpyGeneric) axpy;
  decltype(&SgdGeneric) sgd;
  decltype(&MomentumGeneric) momentum;
  decltype(&AdamGeneric) adam;
  decltype(&AdagradGeneric) adagrad;
  const char* isa;
};

#define TANDEM_KERNEL_TABLE(SUFFIX, ISA)                                                      \
  Kernels {                                                                                   \
    ReluForward##SUFFIX, ReluBackward##SUFFIX, SigmoidBackward##SUFFIX, TanhBackward##SUFFIX, \
        SigmoidForward##SUFFIX, TanhForward##SUFFIX, Axpy##SUFFIX, Sgd##SUFFIX,               \
        Momentum##SUFFIX, Adam##SUFFIX, Adagrad##SUFFIX, ISA                                  \
  }

const Kernels& K() {
  static const Kernels kernels = [] {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
      return TANDEM_KERNEL_TABLE(Avx512, "avx512");
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      return TANDEM_KERNEL_TABLE(Avx2, "avx2");
    }
#endif
    return TANDEM_KERNEL_TABLE(Generic, "generic");
  }();
  return kernels;
}

}  // namespace

void ReluForward(int64_t n, const float* x, float* y) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().relu_forward(b, e, x, y); });
}
void ReluBackward(int64_t n, const float* y, const float* dy, float* dx) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().relu_backward(b, e, y, dy, dx); });
}
void SigmoidForward(int64_t n, const float* x, float* y) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().sigmoid_forward(b, e, x, y); });
}
void TanhForward(int64_t n, const float* x, float* y) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().tanh_forward(b, e, x, y); });
}
void SigmoidBackward(int64_t n, const float* y, const float* dy, float* dx) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().sigmoid_backward(b, e, y, dy, dx); });
}
void TanhBackward(int64_t n, const float* y, const float* dy, float* dx) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().tanh_backward(b, e, y, dy, dx); });
}
void Axpy(int64_t n, float alpha, const float* x, float* y) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().axpy(b, e, alpha, x, y); });
}
void SgdUpdate(int64_t n, float lr, float wd, const float* g, float* w) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().sgd(b, e, lr, wd, g, w); });
}
void MomentumUpdate(int64_t n, float lr, float mu, float wd, const float* g, float* m, float* w) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().momentum(b, e, lr, mu, wd, g, m, w); });
}
void AdamUpdate(int64_t n, float step_size, float b1, float b2, float eps, float inv_sqrt_bc2,
                float wd, const float* g, float* m, float* v, float* w) {
  ParallelFor(n, [&](int64_t b, int64_t e) {
    K().adam(b, e, step_size, b1, b2, eps, inv_sqrt_bc2, wd, g, m, v, w);
  });
}
void AdagradUpdate(int64_t n, float lr, float eps, float wd, const float* g, float* s, float* w) {
  ParallelFor(n, [&](int64_t b, int64_t e) { K().adagrad(b, e, lr, eps, wd, g, s, w); });
}

const char* KernelIsa() { return K().isa; }

}  // namespace tandem::trainer::cpu
