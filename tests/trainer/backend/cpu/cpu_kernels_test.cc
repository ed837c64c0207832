// The vectorised CPU kernels against plain scalar loops, over sizes that exercise the vector tails
// and the multi-threaded split, in place where the header allows it.
#include "trainer/backend/cpu/cpu_kernels.h"

#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::trainer::cpu {
namespace {

std::vector<float> Random(int64_t n, int seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Within a few ulps: the vector versions may fuse multiply-adds.
void ExpectNear(const std::vector<float>& want, const std::vector<float>& got, const char* what) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(want[i], got[i], 1e-6f * (1.f + std::fabs(want[i]))) << what << " at " << i;
  }
}

class CpuKernelsTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(CpuKernelsTest, ActivationsMatchScalarLoops) {
  const int64_t n = GetParam();
  auto x = Random(n, 1), dy = Random(n, 2), s = Random(n, 3, 0.f, 1.f);
  std::vector<float> want(n), got(n);

  for (int64_t i = 0; i < n; ++i) want[i] = x[i] > 0.f ? x[i] : 0.f;
  ReluForward(n, x.data(), got.data());
  EXPECT_EQ(want, got);
  std::vector<float> in_place = x;
  ReluForward(n, in_place.data(), in_place.data());
  EXPECT_EQ(want, in_place);

  for (int64_t i = 0; i < n; ++i) want[i] = x[i] > 0.f ? dy[i] : 0.f;
  ReluBackward(n, x.data(), dy.data(), got.data());
  EXPECT_EQ(want, got);

  for (int64_t i = 0; i < n; ++i) want[i] = dy[i] * s[i] * (1.f - s[i]);
  SigmoidBackward(n, s.data(), dy.data(), got.data());
  ExpectNear(want, got, "sigmoid");

  for (int64_t i = 0; i < n; ++i) want[i] = dy[i] * (1.f - x[i] * x[i]);
  TanhBackward(n, x.data(), dy.data(), got.data());
  ExpectNear(want, got, "tanh");

  want = dy;
  got = dy;
  for (int64_t i = 0; i < n; ++i) want[i] += 0.25f * x[i];
  Axpy(n, 0.25f, x.data(), got.data());
  ExpectNear(want, got, "axpy");
}

TEST_P(CpuKernelsTest, OptimizerUpdatesMatchScalarLoops) {
  const int64_t n = GetParam();
  const auto g = Random(n, 4), w0 = Random(n, 5), m0 = Random(n, 6), v0 = Random(n, 7, 0.f, 1.f);
  const float lr = 0.05f, wd = 0.001f, mu = 0.9f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  const float step_size = 0.01f, inv_sqrt_bc2 = 1.3f;
  {
    auto w = w0, want = w0;
    for (int64_t i = 0; i < n; ++i) want[i] -= lr * (g[i] + wd * want[i]);
    SgdUpdate(n, lr, wd, g.data(), w.data());
    ExpectNear(want, w, "sgd");
  }
  {
    auto w = w0, m = m0, want_w = w0, want_m = m0;
    for (int64_t i = 0; i < n; ++i) {
      want_m[i] = mu * want_m[i] + g[i] + wd * want_w[i];
      want_w[i] -= lr * want_m[i];
    }
    MomentumUpdate(n, lr, mu, wd, g.data(), m.data(), w.data());
    ExpectNear(want_m, m, "momentum m");
    ExpectNear(want_w, w, "momentum w");
  }
  {
    auto w = w0, m = m0, v = v0, want_w = w0, want_m = m0, want_v = v0;
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i] + wd * want_w[i];
      want_m[i] = b1 * want_m[i] + (1 - b1) * gi;
      want_v[i] = b2 * want_v[i] + (1 - b2) * gi * gi;
      want_w[i] -= step_size * want_m[i] / (std::sqrt(want_v[i]) * inv_sqrt_bc2 + eps);
    }
    AdamUpdate(n, step_size, b1, b2, eps, inv_sqrt_bc2, wd, g.data(), m.data(), v.data(),
               w.data());
    ExpectNear(want_m, m, "adam m");
    ExpectNear(want_v, v, "adam v");
    ExpectNear(want_w, w, "adam w");
  }
  {
    auto w = w0, s = v0, want_w = w0, want_s = v0;
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i] + wd * want_w[i];
      want_s[i] += gi * gi;
      want_w[i] -= lr * gi / (std::sqrt(want_s[i]) + eps);
    }
    AdagradUpdate(n, lr, eps, wd, g.data(), s.data(), w.data());
    ExpectNear(want_s, s, "adagrad s");
    ExpectNear(want_w, w, "adagrad w");
  }
}

// 0 and 1: no vector work; 15/17/33: vector tails; 3 * 65536 + 5: split across threads.
INSTANTIATE_TEST_SUITE_P(Sizes, CpuKernelsTest,
                         ::testing::Values(0, 1, 15, 17, 33, 1000, 3 * 65536 + 5));

TEST(CpuKernelsTest, ReluMapsNanToZeroLikeTheBranchyLoop) {
  std::vector<float> x{std::numeric_limits<float>::quiet_NaN(), -0.f, 2.f}, y(3);
  ReluForward(3, x.data(), y.data());
  EXPECT_EQ(y[0], 0.f);
  EXPECT_EQ(y[1], 0.f);
  EXPECT_EQ(y[2], 2.f);
}

TEST(CpuKernelsTest, ReportsTheInstructionSetItUses) {
  const std::string isa = KernelIsa();
  EXPECT_TRUE(isa == "avx512" || isa == "avx2" || isa == "generic") << isa;
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    EXPECT_EQ(isa, "avx512");
  }
#endif
}

}  // namespace
}  // namespace tandem::trainer::cpu
