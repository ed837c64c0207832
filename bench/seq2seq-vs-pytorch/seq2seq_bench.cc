// Tandem's side of bench/seq2seq-vs-pytorch: trains one sequence-to-sequence model for a fixed
// number of steps on random token pairs and prints one JSON line {"model", "threads", "batch",
// "steps", "examples_per_sec", "ms_per_step", "ms_per_100_batches", "peak_rss_mib", "loss"}.
// run_bench.py runs it beside pytorch_seq2seq.py, which builds the same models:
//   rnn:       the seed's RNN setting: batch 64, dictionary 10,000 on both sides, embedding =
//              hidden = 256; an LSTM encoder whose last state is fed with the previous target
//              token to every step of an LSTM decoder (Cho et al. 2014), fc to 10,000.
//              Source and target 30 tokens.
//   attention: examples/nmt-attention.yaml's character model: vocabulary 32, embedding 32,
//              bidirectional LSTM 64+64, LSTM 128, decoder LSTM 128, scaled dot-product attention,
//              concat, fc 128 + tanh, fc 32. Source 12, target 16 tokens.
// Every sequence is full length (no padding), so neither side can win by skipping padding.
// Optimizer: momentum 0.9, lr 0.1.
#include <sys/resource.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <iostream>
#include <random>

#include "CLI/CLI.hpp"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/model/model_builder.h"
#include "trainer/model/model_graph.h"
#include "trainer/model/network.h"
#include "trainer/optim/optimizer.h"

namespace tt = tandem::trainer;

namespace {

struct Shape {
  int64_t vocab, embed, hidden, src_len, tgt_len;
};

Shape ShapeOf(const std::string& model) {
  if (model == "rnn") return {10000, 256, 256, 30, 30};
  return {32, 32, 128, 12, 16};
}

tt::ModelDef BuildModel(const std::string& name, const Shape& s) {
  tt::ModelBuilder m;
  auto src = m.SourceTokens("src", s.src_len);
  auto tin = m.Tokens("tgt_in", s.tgt_len);
  auto tout = m.TokenTargets("tgt_out", s.tgt_len);
  auto se = m.Embedding("src_emb").VocabSize(s.vocab).Size(s.embed).Input(src);
  auto te = m.Embedding("tgt_emb").VocabSize(s.vocab).Size(s.embed).Input(tin);
  if (name == "rnn") {
    auto enc = m.Lstm("enc").Size(s.hidden).Input(se);
    auto last = m.LastStep("summary").Input(enc);
    auto rep = m.SequenceExpand("summary_seq").Inputs({last, te});
    auto din = m.Concat("dec_in").Inputs({te, rep});
    auto dec = m.Lstm("dec").Size(s.hidden).Input(din);
    auto logits = m.Fc("logits").Size(s.vocab).Input(dec);
    m.SoftmaxCrossEntropy("cost").Input(logits).Label(tout);
  } else {
    auto enc1 = m.Bidirectional("enc1", "lstm", s.hidden / 2, se);
    auto enc2 = m.Lstm("enc2").Size(s.hidden).Input(enc1);
    auto dec = m.Lstm("dec").Size(s.hidden).Input(te);
    auto att = m.DotAttention("att").Scaled(true).Queries(dec).Memory(enc2);
    auto cat = m.Concat("att_cat").Inputs({att, dec});
    auto out = m.Fc("att_out").Size(s.hidden).Input(cat);
    auto th = m.Tanh("att_tanh").Input(out);
    auto logits = m.Fc("logits").Size(s.vocab).Input(th);
    m.SoftmaxCrossEntropy("cost").Input(logits).Label(tout);
  }
  return m.Build();
}

// CPU time of every thread of the process: on a loaded shared machine the single-thread figure
// is far steadier than wall time (time slices lost to other processes are not counted).
double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double PeakRssMib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"seq2seq_bench: Tandem's side of bench/seq2seq-vs-pytorch"};
  std::string model = "attention";
  int threads = 1, steps = 20, warmup = 3, batch = 64;
  app.add_option("--model", model)->check(CLI::IsMember({"rnn", "attention"}));
  app.add_option("--threads", threads);
  app.add_option("--steps", steps);
  app.add_option("--warmup", warmup);
  app.add_option("--batch", batch);
  CLI11_PARSE(app, argc, argv);
  const Shape shape = ShapeOf(model);
  auto device = tt::CreateCpuDevice({.threads = threads});
  tt::ModelGraph graph;
  auto errors = tt::BuildModelGraph(BuildModel(model, shape), tt::LayerRegistry::Builtin(),
                                    "bench", &graph);
  if (!errors.empty()) {
    std::cerr << errors[0].ToString() << "\n";
    return 1;
  }
  auto net_or = tt::Network::Create(std::move(graph), *device, 1);
  if (!net_or.ok()) {
    std::cerr << net_or.status() << "\n";
    return 1;
  }
  tt::Network& net = **net_or;
  tt::OptimizerConfig oc;
  oc.type = tt::OptimizerType::kMomentum;
  oc.learning_rate = 0.1;
  oc.momentum = 0.9;
  tt::Optimizer opt(oc, net.params(), *device);
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> tok(4, static_cast<int32_t>(shape.vocab) - 1);
  auto step_once = [&](int64_t step) -> double {
    net.SetBatchSize(batch);
    for (int i = 0; i < net.num_inputs(); ++i) {
      const int64_t len = i == 0 ? shape.src_len : shape.tgt_len;
      tt::Blob& b = net.input(i);
      b.ids.resize(batch * len);
      for (auto& t : b.ids) t = tok(rng);
      b.lengths.assign(batch, static_cast<int32_t>(len));
    }
    tt::StepContext ctx{.training = true, .step = static_cast<uint64_t>(step)};
    const double loss = net.Forward(ctx);
    net.Backward(ctx);
    opt.Step(step, steps + warmup);
    return loss;
  };
  for (int s = 0; s < warmup; ++s) step_once(s);
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = ProcessCpuSeconds();
  double loss = 0;
  for (int s = 0; s < steps; ++s) loss = step_once(warmup + s);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu_secs = ProcessCpuSeconds() - c0;
  std::printf(
      "{\"model\": \"%s\", \"threads\": %d, \"batch\": %d, \"steps\": %d, "
      "\"examples_per_sec\": %.2f, \"ms_per_step\": %.3f, \"cpu_ms_per_step\": %.3f, "
      "\"ms_per_100_batches\": %.1f, \"peak_rss_mib\": %.1f, \"loss\": %.4f}\n",
      model.c_str(), device->threads(), batch, steps, batch * steps / secs, 1000 * secs / steps,
      1000 * cpu_secs / steps, 100 * 1000 * secs / steps, PeakRssMib(), loss);
  return 0;
}
