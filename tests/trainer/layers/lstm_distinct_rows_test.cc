// The lstm layer's distinct-row projection (distinct_rows.h): an input whose rows repeat (an
// embedding over a small vocabulary) is projected once per distinct row, and dWx sums the gate
// gradients per distinct row. The path must give what the plain path gives (which the gradient
// check and the golden forward test cover): forward output, dx, dWx, dWh and db, on sequences
// of differing lengths; and inputs without repeats must take the plain path.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/layers/distinct_rows.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/layers/lstm_layer.h"

namespace tandem::trainer {
namespace {

TEST(DistinctRowsTest, NumbersRowsByFirstOccurrence) {
  // Rows: a b a c b a (3 floats each); -0.0 and 0.0 differ bitwise, so they are two rows.
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 1, 2, 3, 0.f, 0, 1, 4, 5, 6, 1, 2, 3, -0.f, 0, 1};
  DistinctRows d;
  ASSERT_TRUE(d.Find(7, 3, x.data(), 7));
  EXPECT_EQ(d.count(), 4);
  EXPECT_EQ(d.index(), (std::vector<int32_t>{0, 1, 0, 2, 1, 0, 3}));
  EXPECT_EQ(d.first(), (std::vector<int64_t>{0, 1, 3, 6}));
  // More distinct rows than allowed: gives up.
  EXPECT_FALSE(d.Find(7, 3, x.data(), 3));
  EXPECT_TRUE(d.Find(7, 3, x.data(), 4));
}

TEST(DistinctRowsTest, GivesUpWhenTheFirst64RowsAreAllDistinct) {
  std::vector<float> x(200);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  DistinctRows d;
  EXPECT_FALSE(d.Find(200, 1, x.data(), 150));  // 200 rows, no repeat among the first 64
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 63);
  ASSERT_TRUE(d.Find(200, 1, x.data(), 150));  // row 63 repeats row 0
  EXPECT_EQ(d.count(), 63);
  EXPECT_EQ(d.index()[199], 199 % 63);
}

// One lstm instance (size h over `in` inputs, T steps) with its parameters and buffers.
struct Run {
  std::unique_ptr<Device> device = CreateCpuDevice({.threads = 1});
  std::unique_ptr<Layer> layer;
  std::vector<Param> params;
  Blob x, out;
  Tensor dx;

  void Build(int64_t h, int64_t in, int64_t steps, int64_t n, uint64_t seed,
             const std::vector<float>& input, const std::vector<int32_t>& lengths) {
    layer = *LayerRegistry::Builtin().Create("lstm");
    LayerConfig config{.name = "lstm", .type = "lstm", .inputs = {"x"}, .attrs = {{"size", h}}};
    const std::vector<BlobDesc> descs = {{BlobKind::kSequence, Shape({steps, in})}};
    LayerSetup setup(config, descs);
    const BlobDesc out_desc = layer->Setup(setup);
    ASSERT_TRUE(setup.ok());
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    params.resize(setup.params().size());
    for (size_t k = 0; k < params.size(); ++k) {
      params[k].desc = setup.params()[k];
      params[k].value.Resize(*device, params[k].desc.shape);
      params[k].grad.Resize(*device, params[k].desc.shape);
      for (int64_t i = 0; i < params[k].value.size(); ++i) params[k].value.data()[i] = u(rng);
      layer->params().push_back(&params[k]);
    }
    ASSERT_TRUE(layer->Init(*device).ok());
    x.value.Resize(*device, Shape({n, steps, in}));
    std::copy(input.begin(), input.end(), x.value.data());
    x.lengths = lengths;
    out.value.Resize(*device, out_desc.shape.WithBatch(n));
    out.grad.Resize(*device, out.value.shape());
    for (int64_t i = 0; i < out.grad.size(); ++i) out.grad.data()[i] = u(rng);
    dx.Resize(*device, x.value.shape());
  }

  void Step(bool distinct) {
    auto* lstm = dynamic_cast<LstmLayer*>(layer.get());
    ASSERT_NE(lstm, nullptr);
    lstm->set_project_distinct_rows(distinct);
    StepContext ctx{.training = true};
    layer->Forward({&x}, out, ctx);
    layer->Backward({&x}, out, {&dx}, ctx);
  }
};

void ExpectNear(const char* what, const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.size(), b.size()) << what;
  int bad = 0;
  for (int64_t i = 0; i < a.size() && bad < 5; ++i) {
    const float p = a.data()[i], q = b.data()[i];
    if (!(std::abs(p - q) <= 1e-5f + 1e-5f * std::abs(q))) {
      ADD_FAILURE() << what << "[" << i << "]: distinct-row path " << p << " vs plain " << q;
      ++bad;
    }
  }
}

// The same layer, parameters, input and output gradient through both paths.
void CompareBothPaths(int64_t h, int64_t in, int64_t steps, int64_t n, int64_t vocab,
                      const std::vector<int32_t>& lengths, bool expect_distinct) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> table(vocab * in);
  for (float& v : table) v = u(rng);
  std::uniform_int_distribution<int64_t> id(0, vocab - 1);
  std::vector<float> input(n * steps * in);
  for (int64_t r = 0; r < n * steps; ++r) {
    const int64_t v = id(rng);
    std::copy(table.begin() + v * in, table.begin() + (v + 1) * in, input.begin() + r * in);
  }
  Run plain, distinct;
  plain.Build(h, in, steps, n, 9, input, lengths);
  distinct.Build(h, in, steps, n, 9, input, lengths);
  plain.Step(false);
  distinct.Step(true);
  auto* lstm = dynamic_cast<LstmLayer*>(distinct.layer.get());
  EXPECT_EQ(lstm->projected_distinct_rows(), expect_distinct);
  EXPECT_FALSE(dynamic_cast<LstmLayer*>(plain.layer.get())->projected_distinct_rows());
  // Outputs at valid steps (padding is zero in both).
  ExpectNear("output", distinct.out.value, plain.out.value);
  ExpectNear("dx", distinct.dx, plain.dx);
  const char* names[] = {"dWx", "dWh", "db"};
  for (size_t k = 0; k < plain.params.size(); ++k)
    ExpectNear(names[k], distinct.params[k].grad, plain.params[k].grad);
}

TEST(LstmDistinctRowsTest, SameResultsAsThePlainPath) {
  // 5 distinct input rows over 6 sequences of 7 steps (lengths 7, 7, 5, 3, 2, 1: sequences end
  // early, so rows gather by the packing), 9 inputs, 16 units.
  CompareBothPaths(16, 9, 7, 6, 5, {7, 7, 5, 3, 2, 1}, true);
  // A character-model shape: 32 ids, 64 sequences of 12, 32 inputs, 64 units.
  CompareBothPaths(64, 32, 12, 64, 32, std::vector<int32_t>(64, 12), true);
}

TEST(LstmDistinctRowsTest, ManyDistinctRowsTakeThePlainPath) {
  // A vocabulary as large as the token count: more than half of the rows are distinct.
  CompareBothPaths(8, 5, 6, 20, 100000, std::vector<int32_t>(20, 6), false);
}

}  // namespace
}  // namespace tandem::trainer
