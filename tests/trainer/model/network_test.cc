#include "trainer/model/network.h"

#include <algorithm>
#include <cmath>

#include "gtest/gtest.h"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/layers/lstm_layer.h"
#include "trainer/model/model_builder.h"

namespace tandem::trainer {
namespace {

// fc a -> relu feeds two layers (fan-out), whose outputs are concatenated.
ModelDef FanOutModel() {
  ModelBuilder m;
  auto x = m.Features("x", {3});
  auto label = m.Labels("label");
  auto a = m.Fc("a").Size(4).Input(x);
  auto r = m.Tanh("r").Input(a);
  auto b = m.Fc("b").Size(2).Input(r);
  auto c = m.Fc("c").Size(2).Input(r);
  auto cat = m.Concat("cat").Inputs({b, c});
  auto out = m.Fc("out").Size(3).Input(cat);
  m.SoftmaxCrossEntropy("cost").Input(out).Label(label);
  return m.Build();
}

std::unique_ptr<Network> Make(Device& device) {
  ModelGraph graph;
  EXPECT_TRUE(BuildModelGraph(FanOutModel(), LayerRegistry::Builtin(), "m", &graph).empty());
  auto net = Network::Create(std::move(graph), device, 5);
  EXPECT_TRUE(net.ok()) << net.status();
  return std::move(*net);
}

void Feed(Network& net) {
  net.SetBatchSize(2);
  const float x[] = {0.5f, -1.f, 2.f, 1.f, 0.25f, -0.5f};
  std::copy(x, x + 6, net.input(0).value.data());
  net.input(1).ids = {2, 0};
}

TEST(NetworkTest, GradientArenaIsInReverseLayerOrderAndHookSeesGrowingPrefixes) {
  auto device = CreateCpuDevice({.threads = 1});
  auto net = Make(*device);
  std::vector<std::tuple<int, int64_t, int64_t>> calls;
  net->SetGradientsReadyHook([&](int layer, int64_t offset, int64_t count) {
    calls.emplace_back(layer, offset, count);
  });
  Feed(*net);
  StepContext ctx;
  net->Forward(ctx);
  net->Backward(ctx);
  // Layers with parameters: a(0), b(2), c(3), out(5). Backward runs out, c, b, a.
  ASSERT_EQ(calls.size(), 4u);
  int64_t expected_offset = 0;
  const int order[] = {5, 3, 2, 0};
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(std::get<0>(calls[i]), order[i]);
    EXPECT_EQ(std::get<1>(calls[i]), expected_offset) << "ready gradients form a prefix";
    expected_offset += std::get<2>(calls[i]);
  }
  EXPECT_EQ(expected_offset, net->gradient_arena_size());
  // The last layer's weights are the first floats of the arena.
  EXPECT_EQ(net->params()[6].grad.data(), net->gradient_arena());
}

TEST(NetworkTest, FanOutGradientsAreSummed) {
  auto device = CreateCpuDevice({.threads = 1});
  auto net = Make(*device);
  Feed(*net);
  StepContext ctx;
  net->Forward(ctx);
  net->Backward(ctx);
  Param& w = net->params()[0];  // layer a's weights: upstream of the fan-out
  std::vector<float> analytic(w.grad.data(), w.grad.data() + w.grad.size());
  const double h = 1e-2;
  for (int64_t i = 0; i < w.value.size(); ++i) {
    const float saved = w.value.data()[i];
    w.value.data()[i] = static_cast<float>(saved + h);
    const double lp = net->Forward(ctx);
    w.value.data()[i] = static_cast<float>(saved - h);
    const double lm = net->Forward(ctx);
    w.value.data()[i] = saved;
    EXPECT_NEAR(analytic[i], (lp - lm) / (2 * h), 2e-3) << i;
  }
}


// The embedding's forward and backward split across threads (rows owned by r % T) must give
// exactly what one thread gives: same outputs, same gradient rows, same set of touched rows.
TEST(NetworkTest, EmbeddingOnTwoThreadsMatchesOneThreadExactly) {
  constexpr int64_t kFields = 26, kBatch = 128, kVocab = 5000, kDim = 32;
  auto build = [](Device& device) {
    ModelBuilder m;
    auto ids = m.Fields("ids", kFields);
    auto click = m.Targets("click");
    auto e = m.Embedding("emb").VocabSize(kVocab).Size(kDim).Input(ids);
    auto out = m.Fc("out").Size(1).Input(e);
    m.BinaryCrossEntropy("cost").Inputs({out, click});
    ModelGraph graph;
    EXPECT_TRUE(BuildModelGraph(m.Build(), LayerRegistry::Builtin(), "m", &graph).empty());
    auto net = Network::Create(std::move(graph), device, 7);
    EXPECT_TRUE(net.ok()) << net.status();
    return std::move(*net);
  };
  auto feed = [](Network& net) {
    net.SetBatchSize(kBatch);
    Blob& ids = net.input(0);
    ids.ids.clear();
    ids.offsets.assign(1, 0);
    uint32_t x = 12345;  // many repeated ids, some empty fields, some multi-hot ones
    for (int64_t r = 0; r < kBatch * kFields; ++r) {
      x = x * 1103515245u + 12345u;
      const int n = static_cast<int>((x >> 16) % 4);
      for (int k = 0; k < n; ++k) {
        x = x * 1103515245u + 12345u;
        ids.ids.push_back(static_cast<int32_t>((x >> 8) % 700));
      }
      ids.offsets.push_back(static_cast<int32_t>(ids.ids.size()));
    }
    Blob& click = net.input(1);
    for (int64_t i = 0; i < kBatch; ++i) click.value.data()[i] = static_cast<float>(i % 3 == 0);
  };
  auto one = CreateCpuDevice({.threads = 1});
  auto two = CreateCpuDevice({.threads = 2});
  auto a = build(*one);
  auto b = build(*two);
  StepContext ctx{.training = true};
  for (Network* net : {a.get(), b.get()}) {
    feed(*net);
    net->Forward(ctx);
    net->Backward(ctx);
  }
  const Param& pa = a->params()[0];
  const Param& pb = b->params()[0];
  ASSERT_EQ(pa.desc.name, "table");
  // The same rows in the same (first-touch) order, so the compact gradients compare row by row.
  ASSERT_FALSE(pa.touched_rows.empty());
  ASSERT_EQ(pa.touched_rows, pb.touched_rows);
  for (size_t k = 0; k < pa.touched_rows.size(); ++k) {
    ASSERT_EQ(pa.row_slot[pa.touched_rows[k]], static_cast<int32_t>(k));
    for (int64_t c = 0; c < kDim; ++c) {
      ASSERT_EQ(pa.grad.data()[k * kDim + c], pb.grad.data()[k * kDim + c])
          << "row " << pa.touched_rows[k] << " col " << c;
    }
  }
  // Compact: the gradient holds about the rows the batch touched, not the table's kVocab rows.
  EXPECT_LT(pa.grad.size(), kVocab * kDim / 2);
}

// A concat read only by an fc or an lstm is skipped: its reader takes the concat's inputs
// directly (Layer::ReadConcatInputs). The same model with a second reader of each concat (a tanh
// that does not feed the cost) keeps the concats, and must give the same loss and gradients. The
// decoder lstm reads [target embedding, the encoder's last state repeated at every step]: the
// repeated input takes the distinct-row path, the embedding does not (every token distinct).
TEST(NetworkTest, ConcatReadInPlaceMatchesConcatCopies) {
  constexpr int64_t kVocab = 40, kSrc = 5, kTgt = 4;
  auto build = [](Device& device, bool second_readers) {
    ModelBuilder m;
    auto src = m.SourceTokens("src", kSrc);
    auto tin = m.Tokens("tgt_in", kTgt);
    auto tout = m.TokenTargets("tgt_out", kTgt);
    auto se = m.Embedding("src_emb").VocabSize(kVocab).Size(3).Input(src);
    auto te = m.Embedding("tgt_emb").VocabSize(kVocab).Size(3).Input(tin);
    auto enc = m.Lstm("enc").Size(5).Input(se);
    auto last = m.LastStep("summary").Input(enc);
    auto rep = m.SequenceExpand("summary_seq").Inputs({last, te});
    auto din = m.Concat("dec_in").Inputs({te, rep});
    auto dec = m.Lstm("dec").Size(4).Input(din);
    auto cat = m.Concat("out_in").Inputs({dec, rep, te});
    auto out = m.Fc("out").Size(6).Input(cat);
    auto th = m.Tanh("out_tanh").Input(out);
    auto logits = m.Fc("logits").Size(kVocab).Input(th);
    auto cost = m.SoftmaxCrossEntropy("cost").Input(logits).Label(tout);
    m.Cost(cost);
    if (second_readers) {
      m.Tanh("other_reader_1").Input(din);
      m.Tanh("other_reader_2").Input(cat);
    }
    ModelGraph graph;
    EXPECT_TRUE(BuildModelGraph(m.Build(), LayerRegistry::Builtin(), "m", &graph).empty());
    auto net = Network::Create(std::move(graph), device, 3);
    EXPECT_TRUE(net.ok()) << net.status();
    return std::move(*net);
  };
  auto device = CreateCpuDevice({.threads = 1});
  auto fused = build(*device, false);
  auto copies = build(*device, true);
  auto layer = [&](const std::string& name) {
    const auto& layers = fused->graph().layers;
    for (size_t l = 0; l < layers.size(); ++l)
      if (layers[l].config.name == name) return static_cast<int>(l);
    return -1;
  };
  const int kDecIn = layer("dec_in"), kDec = layer("dec"), kOutIn = layer("out_in");
  ASSERT_GE(kDecIn, 0);
  ASSERT_GE(kOutIn, 0);
  EXPECT_EQ(fused->concat_read_by(kDecIn), kDec);
  EXPECT_EQ(fused->concat_read_by(kOutIn), kOutIn + 1);
  EXPECT_EQ(copies->concat_read_by(kDecIn), -1);
  EXPECT_EQ(copies->concat_read_by(kOutIn), -1);
  StepContext ctx{.training = true};
  double loss[2];
  int i = 0;
  for (Network* net : {fused.get(), copies.get()}) {
    net->SetBatchSize(3);
    const int32_t lengths[2][3] = {{5, 2, 4}, {4, 1, 3}};  // some sequences end early
    for (int k = 0; k < 3; ++k) {
      const int64_t steps = k == 0 ? kSrc : kTgt;
      Blob& b = net->input(k);
      b.ids.resize(3 * steps);
      for (size_t j = 0; j < b.ids.size(); ++j)
        b.ids[j] = static_cast<int32_t>((7 * j + 3 * k) % kVocab);
      b.lengths.assign(lengths[k == 0 ? 0 : 1], lengths[k == 0 ? 0 : 1] + 3);
    }
    loss[i++] = net->Forward(ctx);
    net->Backward(ctx);
  }
  const auto* dec = dynamic_cast<const LstmLayer*>(fused->graph().layers[kDec].layer.get());
  ASSERT_NE(dec, nullptr);
  EXPECT_TRUE(dec->projected_distinct_rows()) << "the repeated summary has 3 distinct rows";
  EXPECT_NEAR(loss[0], loss[1], 1e-6);
  ASSERT_EQ(fused->params().size(), copies->params().size());
  for (size_t p = 0; p < fused->params().size(); ++p) {
    const Param& a = fused->params()[p];
    const Param& b = copies->params()[p];
    ASSERT_EQ(a.grad.size(), b.grad.size()) << a.desc.name;
    double norm = 0;
    for (int64_t j = 0; j < b.grad.size(); ++j)
      norm = std::max<double>(norm, std::fabs(b.grad.data()[j]));
    ASSERT_GT(norm, 0) << "parameter " << p << " (" << a.desc.name << ") has no gradient";
    for (int64_t j = 0; j < a.grad.size(); ++j)
      ASSERT_NEAR(a.grad.data()[j], b.grad.data()[j], 1e-5 * norm + 1e-7)
          << "parameter " << p << " (" << a.desc.name << ") element " << j;
  }
}

// An embedding over token sequences or a sequence_expand read by one lstm (directly or through
// a concat read in place) hands its backward pass to the lstm, which sums the gate gradients per
// id / per example and multiplies by Wx^T once per class (Layer::ReadRowClasses). The same model
// with a second reader of each producer (a tanh outside the cost) runs the per-token path, and
// must give the same loss and gradients (the embedding tables compared row by row: the compact
// gradients list the rows in another order). The source ids repeat (distinct-row projection),
// the target ids do not (plain projection, class sums backward).
TEST(NetworkTest, GradientSummedPerRowClassMatchesPerTokenGradient) {
  constexpr int64_t kVocab = 40, kSrc = 5, kTgt = 4;
  auto build = [](Device& device, bool second_readers) {
    ModelBuilder m;
    auto src = m.SourceTokens("src", kSrc);
    auto tin = m.Tokens("tgt_in", kTgt);
    auto tout = m.TokenTargets("tgt_out", kTgt);
    auto se = m.Embedding("src_emb").VocabSize(kVocab).Size(3).Input(src);
    auto te = m.Embedding("tgt_emb").VocabSize(kVocab).Size(3).Input(tin);
    auto enc = m.Lstm("enc").Size(5).Input(se);
    auto last = m.LastStep("summary").Input(enc);
    auto rep = m.SequenceExpand("summary_seq").Inputs({last, tin});
    auto din = m.Concat("dec_in").Inputs({te, rep});
    auto dec = m.Lstm("dec").Size(4).Input(din);
    auto logits = m.Fc("logits").Size(kVocab).Input(dec);
    auto cost = m.SoftmaxCrossEntropy("cost").Input(logits).Label(tout);
    m.Cost(cost);
    if (second_readers) {
      m.Tanh("other_reader_1").Input(se);
      m.Tanh("other_reader_2").Input(te);
      m.Tanh("other_reader_3").Input(rep);
    }
    ModelGraph graph;
    EXPECT_TRUE(BuildModelGraph(m.Build(), LayerRegistry::Builtin(), "m", &graph).empty());
    auto net = Network::Create(std::move(graph), device, 3);
    EXPECT_TRUE(net.ok()) << net.status();
    return std::move(*net);
  };
  auto device = CreateCpuDevice({.threads = 1});
  auto fused = build(*device, false);
  auto per_token = build(*device, true);
  auto layer = [&](const std::string& name) {
    const auto& layers = fused->graph().layers;
    for (size_t l = 0; l < layers.size(); ++l)
      if (layers[l].config.name == name) return static_cast<int>(l);
    return -1;
  };
  EXPECT_EQ(fused->row_classes_read_by(layer("src_emb")), layer("enc"));
  EXPECT_EQ(fused->row_classes_read_by(layer("tgt_emb")), layer("dec"));
  EXPECT_EQ(fused->row_classes_read_by(layer("summary_seq")), layer("dec"));
  for (const char* name : {"src_emb", "tgt_emb", "summary_seq"})
    EXPECT_EQ(per_token->row_classes_read_by(layer(name)), -1) << name;
  StepContext ctx{.training = true};
  double loss[2];
  int i = 0;
  for (Network* net : {fused.get(), per_token.get()}) {
    net->SetBatchSize(4);
    const int32_t lengths[2][4] = {{5, 2, 4, 5}, {4, 1, 3, 2}};  // some sequences end early
    for (int k = 0; k < 3; ++k) {
      const int64_t steps = k == 0 ? kSrc : kTgt;
      Blob& b = net->input(k);
      b.ids.resize(4 * steps);
      for (size_t j = 0; j < b.ids.size(); ++j)
        b.ids[j] = static_cast<int32_t>(k == 0 ? 4 + j % 3 : (7 * j + 3 * k) % kVocab);
      b.lengths.assign(lengths[k == 0 ? 0 : 1], lengths[k == 0 ? 0 : 1] + 4);
    }
    loss[i++] = net->Forward(ctx);
    net->Backward(ctx);
  }
  const auto* enc = dynamic_cast<const LstmLayer*>(fused->graph().layers[layer("enc")].layer.get());
  ASSERT_NE(enc, nullptr);
  EXPECT_TRUE(enc->projected_distinct_rows()) << "3 source ids over 21 tokens";
  EXPECT_NEAR(loss[0], loss[1], 1e-6);
  ASSERT_EQ(fused->params().size(), per_token->params().size());
  for (size_t p = 0; p < fused->params().size(); ++p) {
    const Param& a = fused->params()[p];
    const Param& b = per_token->params()[p];
    const int64_t cols = b.desc.shape.dim(b.desc.shape.rank() - 1);
    std::vector<std::pair<const float*, const float*>> rows;  // (fused, per token), one per row
    if (b.desc.sparse) {
      ASSERT_EQ(a.touched_rows.size(), b.touched_rows.size()) << b.desc.name;
      for (int32_t r : b.touched_rows) {
        ASSERT_GE(a.row_slot[r], 0) << b.desc.name << " row " << r;
        rows.emplace_back(a.grad.data() + a.row_slot[r] * cols,
                          b.grad.data() + b.row_slot[r] * cols);
      }
    } else {
      ASSERT_EQ(a.grad.size(), b.grad.size()) << b.desc.name;
      for (int64_t r = 0; r < b.grad.size() / cols; ++r)
        rows.emplace_back(a.grad.data() + r * cols, b.grad.data() + r * cols);
    }
    double norm = 0;
    for (auto [x, y] : rows)
      for (int64_t c = 0; c < cols; ++c) norm = std::max<double>(norm, std::fabs(y[c]));
    ASSERT_GT(norm, 0) << "parameter " << p << " (" << b.desc.name << ") has no gradient";
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t c = 0; c < cols; ++c)
        ASSERT_NEAR(rows[r].first[c], rows[r].second[c], 1e-5 * norm + 1e-7)
            << "parameter " << p << " (" << b.desc.name << ") row " << r << " col " << c;
  }
}

// Activations kept in oneDNN's blocked layout between conv, relu and pooling (device.h's
// ActivationLayout), with relus fused into their convolutions, must give what plain NCHW and
// separate passes give: same loss, same parameter gradients. The
// model has a blocked chain with a fan-out (relu1 feeds two poolings, so the gradient sum runs on
// blocked tensors), a chain ending in plain-only layers (pool -> fc), and one the network must
// keep plain (conv2 -> tanh -> fc: tanh's output is read by fc, so tanh's input stays plain too).
TEST(NetworkTest, BlockedActivationsMatchPlainLayout) {
  auto model = [] {
    ModelBuilder m;
    auto image = m.Features("image", {3, 8, 8});
    auto label = m.Labels("label");
    auto c1 = m.Conv2d("conv1").NumFilters(16).FilterSize(3).Padding(1).Input(image);
    auto r1 = m.Relu("relu1").Input(c1);
    auto p1 = m.MaxPool("pool1").PoolSize(2).Input(r1);
    auto a1 = m.AvgPool("avg1").PoolSize(2).Input(r1);
    auto c2 = m.Conv2d("conv2").NumFilters(16).FilterSize(3).Padding(1).Input(p1);
    auto t2 = m.Tanh("tanh2").Input(c2);
    auto c3 = m.Conv2d("conv3").NumFilters(32).FilterSize(3).Padding(1).Input(a1);
    auto r3 = m.Relu("relu3").Input(c3);
    auto p3 = m.MaxPool("pool3").PoolSize(2).Input(r3);
    auto f1 = m.Fc("fc1").Size(6).Input(t2);
    auto f3 = m.Fc("fc3").Size(6).Input(p3);
    auto cat = m.Concat("cat").Inputs({f1, f3});
    auto out = m.Fc("out").Size(5).Input(cat);
    m.SoftmaxCrossEntropy("cost").Input(out).Label(label);
    return m.Build();
  };
  auto blocked_device = CreateCpuDevice({.threads = 1, .blocked_activations = true});
  auto plain_device = CreateCpuDevice(
      {.threads = 1, .blocked_activations = false, .fuse_conv_relu = false});
  if (blocked_device->BlockedChannels() == 0) {
    GTEST_SKIP() << "this CPU has no blocked convolution layout in oneDNN (needs AVX2)";
  }
  ASSERT_EQ(plain_device->BlockedChannels(), 0);
  auto build = [&](Device& device) {
    ModelGraph graph;
    EXPECT_TRUE(BuildModelGraph(model(), LayerRegistry::Builtin(), "m", &graph).empty());
    auto net = Network::Create(std::move(graph), device, 3);
    EXPECT_TRUE(net.ok()) << net.status();
    return std::move(*net);
  };
  auto blocked = build(*blocked_device);
  auto plain = build(*plain_device);
  // Which activations stay blocked: the conv/relu/pool chains, not what an fc or tanh reads.
  for (const GraphLayer& gl : blocked->graph().layers) {
    const std::string& n = gl.config.name;
    const bool want = n == "conv1" || n == "relu1" || n == "pool1" || n == "avg1" ||
                      n == "conv3" || n == "relu3";
    EXPECT_EQ(blocked->blocked(gl.output), want) << n;
    EXPECT_FALSE(plain->blocked(gl.output)) << n;
  }
  // relu1 is fused into conv1 and relu3 into conv3; none is on the plain device. (The concat,
  // read only by an fc, is read in place on both.)
  for (int l = 0; l < static_cast<int>(blocked->graph().layers.size()); ++l) {
    const std::string& n = blocked->graph().layers[l].config.name;
    const bool concat = n == "cat";
    EXPECT_EQ(blocked->fused(l), concat || n == "relu1" || n == "relu3") << n;
    EXPECT_EQ(plain->fused(l), concat) << n;
    EXPECT_EQ(plain->concat_read_by(l) >= 0, concat) << n;
  }
  constexpr int64_t kBatch = 5;
  double loss[2];
  int k = 0;
  for (Network* net : {blocked.get(), plain.get()}) {
    net->SetBatchSize(kBatch);
    float* x = net->input(0).value.data();
    for (int64_t i = 0; i < kBatch * 3 * 8 * 8; ++i) x[i] = std::sin(0.37f * i) + 0.1f;
    net->input(1).ids = {0, 1, 2, 3, 4};
    StepContext ctx{.training = true};
    loss[k++] = net->Forward(ctx);
    net->Backward(ctx);
  }
  EXPECT_NEAR(loss[0], loss[1], 1e-5 * std::abs(loss[1]));
  ASSERT_EQ(blocked->params().size(), plain->params().size());
  for (size_t i = 0; i < plain->params().size(); ++i) {
    const Param& b = blocked->params()[i];
    const Param& p = plain->params()[i];
    ASSERT_EQ(b.grad.size(), p.grad.size());
    float scale = 0;
    for (int64_t j = 0; j < p.grad.size(); ++j) scale = std::max(scale, std::abs(p.grad.data()[j]));
    ASSERT_GT(scale, 0.f) << "parameter " << i << " (" << p.desc.name << ") got no gradient";
    for (int64_t j = 0; j < p.grad.size(); ++j) {
      ASSERT_NEAR(b.grad.data()[j], p.grad.data()[j], 1e-4f * scale)
          << "parameter " << i << " (" << p.desc.name << ") element " << j;
    }
  }
}

}  // namespace
}  // namespace tandem::trainer
