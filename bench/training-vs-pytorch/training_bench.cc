// Tandem's side of bench/training-vs-pytorch: trains one model for a fixed number of steps and
// prints one JSON line {"model", "threads", "batch", "steps", "examples_per_sec", "ms_per_step",
// "peak_rss_mib", "loss"}. run_bench.py runs it and the PyTorch twin (pytorch_bench.py) side by
// side. The models are built with the fluent builder and mirror pytorch_bench.py exactly:
//   cnn:  conv 5x5x32 pad 2, relu, max 2x2, conv 5x5x64 pad 2, relu, max 2x2, fc 1024, relu, fc 10
//   mlp:  784-256-256-10 with relu
//   lstm: language model, vocabulary 10000, embedding = hidden = 256, 35 steps, fc to 10000
// cnn/mlp read Fashion-MNIST through the data reader (as training does); lstm uses random tokens.
// Optimizer: momentum 0.9 (lr 0.01, weight decay 0.0005 for cnn).
// --plain-layout and --no-fusion switch off the blocked activations and the conv+relu fusion
// (docs/trainer.md measures what each is worth).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include "CLI/CLI.hpp"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/core/device.h"
#include "trainer/data/batch_reader.h"
#include "trainer/data/data_config.h"
#include "trainer/data/dataset.h"
#include "trainer/engine/batch_feeder.h"
#include "trainer/model/model_builder.h"
#include "trainer/model/network.h"
#include "trainer/optim/optimizer.h"

namespace tt = tandem::trainer;

namespace {

tt::ModelDef BuildModel(const std::string& name, int64_t vocab, int64_t steps, int64_t hidden) {
  tt::ModelBuilder m;
  if (name == "cnn") {
    auto image = m.Features("image", {1, 28, 28});
    auto label = m.Labels("label");
    auto c1 = m.Conv2d("conv1").NumFilters(32).FilterSize(5).Padding(2).Input(image);
    auto r1 = m.Relu("relu1").Input(c1);
    auto p1 = m.MaxPool("pool1").PoolSize(2).Input(r1);
    auto c2 = m.Conv2d("conv2").NumFilters(64).FilterSize(5).Padding(2).Input(p1);
    auto r2 = m.Relu("relu2").Input(c2);
    auto p2 = m.MaxPool("pool2").PoolSize(2).Input(r2);
    auto f1 = m.Fc("fc1").Size(1024).Input(p2);
    auto r3 = m.Relu("relu3").Input(f1);
    auto f2 = m.Fc("fc2").Size(10).Input(r3);
    m.SoftmaxCrossEntropy("cost").Input(f2).Label(label);
  } else if (name == "mlp") {
    auto image = m.Features("image", {1, 28, 28});
    auto label = m.Labels("label");
    auto f1 = m.Fc("fc1").Size(256).Input(image);
    auto r1 = m.Relu("relu1").Input(f1);
    auto f2 = m.Fc("fc2").Size(256).Input(r1);
    auto r2 = m.Relu("relu2").Input(f2);
    auto f3 = m.Fc("fc3").Size(10).Input(r2);
    m.SoftmaxCrossEntropy("cost").Input(f3).Label(label);
  } else {
    auto tokens = m.Tokens("tokens", steps);
    auto targets = m.TokenTargets("targets", steps);
    auto e = m.Embedding("embed").VocabSize(vocab).Size(hidden).Input(tokens);
    auto l = m.Lstm("lstm").Size(hidden).Input(e);
    auto f = m.Fc("proj").Size(vocab).Input(l);
    m.SoftmaxCrossEntropy("cost").Input(f).Label(targets);
  }
  return m.Build();
}

double PeakRssMib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"training_bench: Tandem's side of bench/training-vs-pytorch"};
  std::string model = "mlp";
  int threads = 1, steps = 100, warmup = 10, batch = 64;
  app.add_option("--model", model)->check(CLI::IsMember({"cnn", "mlp", "lstm"}));
  app.add_option("--threads", threads);
  app.add_option("--steps", steps);
  app.add_option("--warmup", warmup);
  app.add_option("--batch", batch);
  bool plain_layout = false, no_fusion = false;
  app.add_flag("--plain-layout", plain_layout,
               "Keep every activation in NCHW (no oneDNN blocked layout between layers)");
  app.add_flag("--no-fusion", no_fusion, "Run relu after a convolution as its own pass");
  CLI11_PARSE(app, argc, argv);

  const int64_t vocab = 10000, seq = 35, hidden = 256;
  auto device = tt::CreateCpuDevice({.threads = threads,
                                     .blocked_activations = !plain_layout,
                                     .fuse_conv_relu = !no_fusion});
  tt::ModelGraph graph;
  auto errors = tt::BuildModelGraph(BuildModel(model, vocab, seq, hidden),
                                    tt::LayerRegistry::Builtin(), "bench", &graph);
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
  oc.learning_rate = model == "lstm" ? 0.1 : 0.01;
  oc.momentum = 0.9;
  oc.weight_decay = model == "cnn" ? 0.0005 : 0.0;
  tt::Optimizer opt(oc, net.params(), *device);

  std::unique_ptr<tt::data::BatchReader> reader;
  tt::BatchFeeder feeder;
  std::mt19937 rng(1);
  if (model != "lstm") {
    tt::data::DataConfig dc;
    std::vector<std::string> problems = tt::data::ParseDataConfig(nlohmann::json::object(), {}, &dc);
    auto ds = tt::data::LoadDataset(dc.train);
    if (!ds.ok()) {
      std::cerr << ds.status() << "\n";
      return 1;
    }
    reader = std::make_unique<tt::data::BatchReader>(
        *ds, tt::data::ReaderOptions{.batch_size = batch, .seed = 1, .prefetch = 2});
    reader->StartPass(0);
  }
  int64_t pass = 0;
  auto step_once = [&](int64_t step) -> double {
    if (reader) {
      const tt::data::Batch* b = reader->Next();
      if (b == nullptr || b->size < batch) {
        reader->StartPass(++pass);
        b = reader->Next();
      }
      auto st = feeder.Feed(*b, net);
      if (!st.ok()) {
        std::cerr << st << "\n";
        std::exit(1);
      }
    } else {
      net.SetBatchSize(batch);
      std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab) - 1);
      for (int i = 0; i < 2; ++i) {
        tt::Blob& b = net.input(i);
        b.ids.resize(batch * seq);
        for (auto& t : b.ids) t = tok(rng);
        b.lengths.assign(batch, static_cast<int32_t>(seq));
      }
    }
    tt::StepContext ctx{.training = true, .step = static_cast<uint64_t>(step)};
    const double loss = net.Forward(ctx);
    net.Backward(ctx);
    opt.Step(step, steps + warmup);
    return loss;
  };
  for (int s = 0; s < warmup; ++s) step_once(s);
  const auto t0 = std::chrono::steady_clock::now();
  double loss = 0;
  for (int s = 0; s < steps; ++s) loss = step_once(warmup + s);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "{\"model\": \"%s\", \"threads\": %d, \"batch\": %d, \"steps\": %d, "
      "\"examples_per_sec\": %.2f, \"ms_per_step\": %.3f, \"peak_rss_mib\": %.1f, \"loss\": %.4f}\n",
      model.c_str(), device->threads(), batch, steps, batch * steps / secs, 1000 * secs / steps,
      PeakRssMib(), loss);
  return 0;
}
