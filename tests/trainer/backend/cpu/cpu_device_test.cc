// The CPU backend against naive reference implementations, and Tensor's memory reuse.
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/core/device.h"
#include "trainer/core/tensor.h"

namespace tandem::trainer {
namespace {

std::vector<float> Random(int64_t n, int seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

TEST(TensorTest, ResizeReusesMemoryUpToCapacity) {
  auto device = CreateCpuDevice({.threads = 1});
  Tensor t;
  t.Resize(*device, Shape({64, 10}));
  float* p = t.data();
  t.Resize(*device, Shape({17, 10}));  // the last, short batch
  EXPECT_EQ(t.data(), p);
  EXPECT_EQ(t.size(), 170);
  t.Resize(*device, Shape({64, 10}));
  EXPECT_EQ(t.data(), p) << "no reallocation when going back to the full batch";
  EXPECT_EQ(t.shape().ToString(), "[64, 10]");
}

TEST(CpuDeviceTest, GemmMatchesNaive) {
  auto device = CreateCpuDevice({.threads = 2});
  const int64_t m = 7, n = 5, k = 9;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      auto a = Random(m * k, 1), b = Random(k * n, 2), c = Random(m * n, 3);
      std::vector<float> ref = c;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0;
          for (int64_t l = 0; l < k; ++l)
            s += (ta ? a[l * m + i] : a[i * k + l]) * (tb ? b[j * k + l] : b[l * n + j]);
          ref[i * n + j] = static_cast<float>(0.5 * s + 2.0 * c[i * n + j]);
        }
      device->Gemm(ta, tb, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n, 2.f,
                   c.data(), n);
      for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(c[i], ref[i], 1e-4) << ta << tb << i;
    }
  }
}

// Every transpose combination, alpha and beta (1 and others), padded leading dimensions and
// batch strides with gaps: each product equals a naive one, and the gaps are never written.
TEST(CpuDeviceTest, GemmStridedBatchedMatchesNaive) {
  auto device = CreateCpuDevice({.threads = 2});
  const int64_t m = 5, n = 6, k = 7, batch = 4;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.5f, 2.f}, std::pair{-1.f, 1.f}}) {
        const int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3;
        const int64_t sa = (ta ? k : m) * lda + 5, sb = (tb ? n : k) * ldb + 3, sc = m * ldc + 4;
        auto a = Random(batch * sa, 1), b = Random(batch * sb, 2), c = Random(batch * sc, 3);
        std::vector<float> ref = c;
        for (int64_t e = 0; e < batch; ++e)
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              double s = 0;
              for (int64_t l = 0; l < k; ++l)
                s += (ta ? a[e * sa + l * lda + i] : a[e * sa + i * lda + l]) *
                     (tb ? b[e * sb + j * ldb + l] : b[e * sb + l * ldb + j]);
              float& r = ref[e * sc + i * ldc + j];
              r = static_cast<float>(alpha * s + (beta == 0.f ? 0.0 : beta * r));
            }
        device->GemmStridedBatched(ta, tb, m, n, k, alpha, a.data(), lda, sa, b.data(), ldb, sb,
                                   beta, c.data(), ldc, sc, batch);
        for (size_t i = 0; i < c.size(); ++i)
          ASSERT_NEAR(c[i], ref[i], 1e-4) << ta << tb << " alpha " << alpha << " at " << i;
      }
    }
  }
}

TEST(CpuDeviceTest, GroupedStridedConvolutionMatchesNaive) {
  auto device = CreateCpuDevice({.threads = 1});
  Conv2dDesc d{.in_channels = 4, .in_h = 7, .in_w = 6, .out_channels = 6, .out_h = 4, .out_w = 3,
               .kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride_w = 2, .pad_h = 1,
               .pad_w = 0, .groups = 2, .bias = true};
  const int64_t n = 3, cg = d.in_channels / d.groups, og = d.out_channels / d.groups;
  auto x = Random(n * 4 * 7 * 6, 4), w = Random(6 * cg * 3 * 2, 5), b = Random(6, 6);
  std::vector<float> y(n * 6 * 4 * 3);
  device->CreateConv2d(d)->Forward(n, x.data(), w.data(), b.data(), y.data());
  for (int64_t e = 0; e < n; ++e)
    for (int64_t o = 0; o < 6; ++o)
      for (int64_t oh = 0; oh < 4; ++oh)
        for (int64_t ow = 0; ow < 3; ++ow) {
          double s = b[o];
          const int64_t g = o / og;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t kh = 0; kh < 3; ++kh)
              for (int64_t kw = 0; kw < 2; ++kw) {
                const int64_t ih = oh * 2 - 1 + kh, iw = ow * 2 + kw;
                if (ih < 0 || ih >= 7 || iw < 0 || iw >= 6) continue;
                s += x[((e * 4 + g * cg + c) * 7 + ih) * 6 + iw] * w[((o * cg + c) * 3 + kh) * 2 + kw];
              }
          EXPECT_NEAR(y[((e * 6 + o) * 4 + oh) * 3 + ow], s, 1e-4);
        }
}

// constant_weights (serving): weights reordered once per batch size and kept, forward-inference
// primitives only; the same outputs as the training device's forward, call after call, for
// batch sizes in any order, and again after the weights move to another pointer.
TEST(CpuDeviceTest, ConstantWeightsConvolutionMatchesTheTrainingDevice) {
  auto train = CreateCpuDevice({.threads = 1});
  auto serve = CreateCpuDevice({.threads = 1, .constant_weights = true});
  Conv2dDesc d{.in_channels = 16, .in_h = 9, .in_w = 9, .out_channels = 32, .out_h = 9, .out_w = 9,
               .kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1,
               .pad_w = 1, .groups = 1, .bias = true};
  auto w = Random(32 * 16 * 9, 1), b = Random(32, 2);
  auto w2 = Random(32 * 16 * 9, 3);
  auto reference = train->CreateConv2d(d);
  auto conv = serve->CreateConv2d(d);
  int seed = 10;
  for (const int64_t n : {1, 4, 1, 3, 4, 1}) {
    for (const std::vector<float>* weights : {&w, &w, &w2}) {
      auto x = Random(n * 16 * 81, seed++);
      std::vector<float> want(n * 32 * 81), got(n * 32 * 81);
      reference->Forward(n, x.data(), weights->data(), b.data(), want.data());
      conv->Forward(n, x.data(), weights->data(), b.data(), got.data());
      for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << "batch " << n << " at " << i;
    }
  }
}

TEST(CpuDeviceTest, SoftmaxRowsSumToOneAndAreStable) {
  auto device = CreateCpuDevice({.threads = 1});
  std::vector<float> x = {1000.f, 1001.f, 1002.f, -5.f, 0.f, 5.f}, y(6);
  device->Softmax(2, 3, x.data(), y.data());
  EXPECT_NEAR(y[0] + y[1] + y[2], 1.f, 1e-6);
  EXPECT_NEAR(y[2], std::exp(2.f) / (1 + std::exp(1.f) + std::exp(2.f)), 1e-5);
  EXPECT_NEAR(y[3], std::exp(-10.f) / (std::exp(-10.f) + std::exp(-5.f) + 1), 1e-6);
}

TEST(CpuDeviceTest, HonoursTheThreadSetting) {
  EXPECT_EQ(CreateCpuDevice({.threads = 1})->threads(), 1);
  EXPECT_EQ(CreateCpuDevice({.threads = 2})->threads(), 2);
  EXPECT_NE(CreateCpuDevice({.threads = 2})->Describe().find("2 threads"), std::string::npos);
}

}  // namespace
}  // namespace tandem::trainer
