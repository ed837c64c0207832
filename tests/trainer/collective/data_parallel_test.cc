// Data-parallel semantics end to end on a small model written here (the real trainer engine
// lives elsewhere): W ranks with batch B each (initial weights broadcast from rank 0, gradients
// averaged through BucketedAllReducer) reach the same weights as one trainer with batch W*B.
#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/trainer/collective/ring_harness.h"
#include "trainer/collective/bucketed_allreducer.h"

namespace tandem::collective {
namespace {

constexpr int kDim = 12, kSamples = 96, kSteps = 8;
constexpr float kLr = 0.05f;

struct Data {
  std::vector<float> x, y;  // kSamples x kDim, kSamples
};

Data MakeData() {
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0, 1);
  Data d;
  for (int i = 0; i < kSamples; ++i) {
    float y = 0.5f;
    for (int j = 0; j < kDim; ++j) {
      float v = g(rng);
      d.x.push_back(v);
      y += v * (0.1f * j - 0.4f);
    }
    d.y.push_back(y + 0.01f * g(rng));
  }
  return d;
}

// Linear regression, mean squared error over samples [begin, begin+n). Weights are [w(kDim), b];
// the gradient arena holds them in reverse layer order: [grad b, grad w].
void Gradient(const Data& d, const std::vector<float>& weights, int begin, int n,
              std::vector<float>* arena) {
  std::fill(arena->begin(), arena->end(), 0.0f);
  for (int i = begin; i < begin + n; ++i) {
    float pred = weights[kDim];
    for (int j = 0; j < kDim; ++j) pred += weights[j] * d.x[i * kDim + j];
    const float err = 2.0f * (pred - d.y[i]) / n;
    (*arena)[0] += err;
    for (int j = 0; j < kDim; ++j) (*arena)[1 + j] += err * d.x[i * kDim + j];
  }
}

void Step(const std::vector<float>& arena, std::vector<float>* weights) {
  (*weights)[kDim] -= kLr * arena[0];
  for (int j = 0; j < kDim; ++j) (*weights)[j] -= kLr * arena[1 + j];
}

std::vector<float> InitialWeights(int seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> w(kDim + 1);
  for (float& v : w) v = u(rng);
  return w;
}

class DataParallelTest : public ::testing::TestWithParam<testing::Wire> {};
INSTANTIATE_TEST_SUITE_P(Wires, DataParallelTest,
                         ::testing::Values(testing::Wire::kTcp, testing::Wire::kShm),
                         [](const auto& info) { return testing::WireName(info.param); });

TEST_P(DataParallelTest, WRanksWithBatchBMatchOneTrainerWithBatchWB) {
  const Data data = MakeData();
  for (int w : {2, 3, 4}) {
    const int batch = kSamples / (w * kSteps);
    // The reference: one trainer, batch w * batch.
    std::vector<float> ref = InitialWeights(42), arena(kDim + 1);
    for (int step = 0; step < kSteps; ++step) {
      Gradient(data, ref, step * w * batch, w * batch, &arena);
      Step(arena, &ref);
    }
    std::vector<std::vector<float>> finals(w);
    auto statuses = testing::RunRanks(w, testing::FastOptions(GetParam()),
                                      [&](int rank, Communicator& comm) -> absl::Status {
      // Only rank 0's initialisation counts: the broadcast overwrites the others'.
      std::vector<float> weights = InitialWeights(rank == 0 ? 42 : 1000 + rank);
      TANDEM_RETURN_IF_ERROR(comm.Broadcast(weights.data(), weights.size() * sizeof(float), 0));
      std::vector<float> grads(kDim + 1);
      BucketOptions o;
      o.bucket_bytes = 16;  // two buckets: [grad b], [grad w]
      TANDEM_ASSIGN_OR_RETURN(
          auto reducer, BucketedAllReducer::Create(&comm, grads.data(), grads.size(),
                                                   {{0, 1}, {1, kDim}}, o));
      for (int step = 0; step < kSteps; ++step) {
        Gradient(data, weights, step * w * batch + rank * batch, batch, &grads);
        reducer->MarkReady(0);  // backward produces the last layer's gradient first
        reducer->MarkReady(1);
        TANDEM_RETURN_IF_ERROR(reducer->Wait());
        Step(grads, &weights);
      }
      finals[rank] = weights;
      return absl::OkStatus();
    });
    for (auto& s : statuses) ASSERT_TRUE(s.ok()) << s;
    for (int r = 0; r < w; ++r)
      for (int j = 0; j <= kDim; ++j)
        EXPECT_NEAR(finals[r][j], ref[j], 1e-5f * (1 + std::fabs(ref[j])))
            << "W=" << w << " rank " << r << " weight " << j;
    // Every rank holds exactly the same weights (same averaged gradients everywhere).
    for (int r = 1; r < w; ++r) EXPECT_EQ(finals[r], finals[0]) << "W=" << w;
  }
}

}  // namespace
}  // namespace tandem::collective
