// Greedy and beam-search decoding: beam 1 equals greedy, a beam wide enough to keep every
// hypothesis finds the exhaustive search's best sequence, and the decode evaluation scores.
#include "trainer/engine/sequence_decoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/data/parallel_text_dataset.h"
#include "trainer/model/model_builder.h"
#include "trainer/model/model_graph.h"

namespace tandem::trainer {
namespace {

using data::Vocabulary;

// A small attention model: bidirectional GRU encoder, LSTM decoder, additive attention.
ModelDef AttentionModel(int64_t vocab, int64_t target_steps) {
  ModelBuilder m;
  auto src = m.SourceTokens("src", 5);
  auto tin = m.Tokens("tgt_in", target_steps);
  auto tout = m.TokenTargets("tgt_out", target_steps);
  auto se = m.Embedding("src_emb").VocabSize(vocab).Size(6).Input(src);
  auto enc = m.Bidirectional("enc", "gru", 5, se);
  auto te = m.Embedding("tgt_emb").VocabSize(vocab).Size(6).Input(tin);
  auto dec = m.Lstm("dec").Size(8).Input(te);
  auto att = m.AdditiveAttention("att").Size(4).Queries(dec).Memory(enc);
  auto cat = m.Concat("cat").Inputs({att, dec});
  auto logits = m.Fc("logits").Size(vocab).Input(cat);
  m.SoftmaxCrossEntropy("cost").Input(logits).Label(tout);
  return m.Build();
}

class SequenceDecoderTest : public ::testing::Test {
 protected:
  void Make(int64_t vocab, int64_t target_steps, uint64_t seed) {
    ModelGraph graph;
    auto errors = BuildModelGraph(AttentionModel(vocab, target_steps), LayerRegistry::Builtin(),
                                  "m", &graph);
    ASSERT_TRUE(errors.empty()) << errors[0].ToString();
    auto net = Network::Create(std::move(graph), *device_, seed);
    ASSERT_TRUE(net.ok()) << net.status();
    net_ = std::move(*net);
    // Larger weights than the initialisation's, so the distributions are far from uniform.
    for (Param& p : net_->params())
      for (int64_t i = 0; i < p.value.size(); ++i) p.value.data()[i] *= 3.f;
  }
  std::vector<std::vector<int32_t>> Sources(int n, int64_t vocab) {
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> len(1, 5), tok(4, static_cast<int>(vocab) - 1);
    std::vector<std::vector<int32_t>> s(n);
    for (auto& x : s) {
      x.resize(len(rng));
      for (int32_t& t : x) t = tok(rng);
    }
    return s;
  }
  // Mean log-probability per token of `y` + </s> (or of `y` alone when `finished` is false) for
  // `source`, by a teacher-forced forward pass: the score the beam search ranks finished
  // hypotheses by.
  double Score(const std::vector<int32_t>& source, const std::vector<int32_t>& y, bool finished) {
    Network& net = *net_;
    const int64_t steps = net.graph().inputs[1].shape.dim(0);
    net.SetBatchSize(1);
    net.input(0).ids.assign(5, 0);
    std::copy(source.begin(), source.end(), net.input(0).ids.begin());
    net.input(0).lengths = {static_cast<int32_t>(source.size())};
    std::vector<int32_t> in = {Vocabulary::kBos}, out = y;
    in.insert(in.end(), y.begin(), y.end());
    if (finished) {
      out.push_back(Vocabulary::kEos);
    } else {
      in.pop_back();
    }
    const int32_t len = static_cast<int32_t>(out.size());
    net.input(1).ids.assign(steps, 0);
    net.input(2).ids.assign(steps, 0);
    std::copy(in.begin(), in.end(), net.input(1).ids.begin());
    std::copy(out.begin(), out.end(), net.input(2).ids.begin());
    net.input(1).lengths = net.input(2).lengths = {len};
    // The cost is the mean of -log p over the steps.
    return -net.Forward(StepContext{.training = false});
  }

  std::unique_ptr<Device> device_ = CreateCpuDevice({.threads = 1});
  std::unique_ptr<Network> net_;
};

TEST_F(SequenceDecoderTest, BeamOfOneIsGreedy) {
  Make(12, 7, 3);
  auto decoder = SequenceDecoder::Create(*net_);
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  const auto sources = Sources(40, 12);
  // Chunks of 16 examples: the last chunk is short, rows are reused between chunks.
  const auto greedy = decoder->Greedy(sources, 16).value();
  const auto beam1 = decoder->BeamSearch(sources, 1, 16).value();
  EXPECT_EQ(greedy, beam1);
  // Not a degenerate model: the outputs differ between sources.
  EXPECT_GT(std::set<std::vector<int32_t>>(greedy.begin(), greedy.end()).size(), 3u);
  // Decoding one at a time gives the same (no state leaks between batch rows).
  for (int i = 0; i < 5; ++i) EXPECT_EQ(decoder->Greedy({sources[i]}).value()[0], greedy[i]) << i;
}

TEST_F(SequenceDecoderTest, WideBeamFindsTheExhaustiveBest) {
  // Vocabulary 6, 2 decoder steps: at most 6 + 5 * 6 = 36 hypotheses, all kept by a beam of 64,
  // so the beam's answer is the best finished sequence over all of them.
  Make(6, 2, 5);
  auto decoder = SequenceDecoder::Create(*net_);
  ASSERT_TRUE(decoder.ok());
  const auto sources = Sources(8, 6);
  const auto beam = decoder->BeamSearch(sources, 64).value();
  for (size_t i = 0; i < sources.size(); ++i) {
    std::vector<int32_t> best;
    double best_score = Score(sources[i], {}, true);
    for (int32_t a = 0; a < 6; ++a) {
      if (a == Vocabulary::kEos) continue;
      const double s = Score(sources[i], {a}, true);
      if (s > best_score + 1e-6) {
        best = {a};
        best_score = s;
      }
    }
    EXPECT_EQ(beam[i], best) << "source " << i;
  }
}

TEST_F(SequenceDecoderTest, HookRunsBeforeEveryForwardAndItsErrorStops) {
  Make(8, 4, 2);
  auto decoder = SequenceDecoder::Create(*net_);
  ASSERT_TRUE(decoder.ok());
  int calls = 0;
  decoder->SetBeforeForward([&] {
    ++calls;
    return calls == 2 ? absl::UnavailableError("shard 1 down") : absl::OkStatus();
  });
  auto out = decoder->Greedy(Sources(3, 8));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "shard 1 down");
  EXPECT_EQ(calls, 2);
}

TEST_F(SequenceDecoderTest, InputsAreRefilledAfterAHookRewritesThem) {
  // The sparse path's PrepareEval rewrites the id inputs into row slots in place; a hook that
  // scrambles the ids after they were used must not change what the next step decodes.
  Make(12, 7, 3);
  auto decoder = SequenceDecoder::Create(*net_);
  ASSERT_TRUE(decoder.ok());
  const auto sources = Sources(10, 12);
  const auto clean = decoder->Greedy(sources).value();
  Network* net = net_.get();
  std::vector<int32_t> seen;
  decoder->SetBeforeForward([&] {
    seen.push_back(net->input(0).ids[0]);
    // From step 1 on the encoder does not run again, so a rewrite is harmless now but must not
    // reach the next step (the first step's forward pass reads the ids as they are).
    if (seen.size() > 1) net->input(0).ids[0] = 1000;
    return absl::OkStatus();
  });
  const auto again = decoder->Greedy(sources).value();
  EXPECT_EQ(again, clean);
  ASSERT_GT(seen.size(), 2u);
  for (int32_t id : seen) EXPECT_EQ(id, sources[0][0]);
}

TEST_F(SequenceDecoderTest, RefusesModelsThatAreNotSequenceToSequence) {
  ModelBuilder m;
  auto x = m.Features("x", {3});
  auto label = m.Labels("label");
  auto fc = m.Fc("fc").Size(5).Input(x);
  m.SoftmaxCrossEntropy("cost").Input(fc).Label(label);
  ModelGraph graph;
  ASSERT_TRUE(BuildModelGraph(m.Build(), LayerRegistry::Builtin(), "m", &graph).empty());
  auto net = Network::Create(std::move(graph), *device_, 1);
  ASSERT_TRUE(net.ok());
  auto decoder = SequenceDecoder::Create(**net);
  ASSERT_FALSE(decoder.ok());
  EXPECT_NE(decoder.status().message().find("input 'x'"), std::string::npos)
      << decoder.status();
}

}  // namespace
}  // namespace tandem::trainer
