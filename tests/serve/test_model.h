// A small model with every kind of serving input path (dense features, a local embedding table
// over multi-hot ids) for the serving tests: built, randomly initialised and published with the
// trainer's own Publisher, and a reference forward pass with the training code (Network::Forward).
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/engine/publisher.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_builder.h"
#include "trainer/model/model_graph.h"
#include "trainer/model/network.h"

namespace tandem::serve::testing {

inline trainer::ModelDef SmallModelDef() {
  trainer::ModelBuilder b;
  auto x = b.Features("x", {4});
  auto ids = b.Fields("ids", 3);
  auto label = b.Labels("label");
  auto emb = b.Embedding("emb").VocabSize(50).Size(4).Pooling("sum").Input(ids);
  auto cat = b.Concat("cat").Inputs({x, emb});
  auto fc1 = b.Fc("fc1").Size(8).Input(cat);
  auto relu = b.Relu("relu").Input(fc1);
  auto fc2 = b.Fc("fc2").Size(3).Input(relu);
  b.SoftmaxCrossEntropy("cost").Input(fc2).Label(label);
  return b.Build();
}

struct SmallModel {
  std::unique_ptr<trainer::Device> device = trainer::CreateCpuDevice({.threads = 1});
  std::unique_ptr<trainer::Network> net;

  explicit SmallModel(uint64_t seed) {
    trainer::ModelGraph g;
    auto errors = trainer::BuildModelGraph(SmallModelDef(), trainer::LayerRegistry::Builtin(), "m", &g);
    if (!errors.empty()) std::abort();
    net = *trainer::Network::Create(std::move(g), *device, seed);
  }
  // Class probabilities of one example by the training forward pass.
  std::vector<float> Reference(const std::vector<float>& x, const std::vector<std::vector<int32_t>>& fields) {
    net->SetBatchSize(1);
    std::copy(x.begin(), x.end(), net->input(0).value.data());
    trainer::Blob& ids = net->input(1);
    ids.ids.clear();
    ids.offsets.assign(1, 0);
    for (const auto& f : fields) {
      ids.ids.insert(ids.ids.end(), f.begin(), f.end());
      ids.offsets.push_back(static_cast<int32_t>(ids.ids.size()));
    }
    net->input(2).ids.assign(1, 0);
    net->Forward({.training = false});
    const float* l = net->cost_input(0).value.data();
    std::vector<float> p(l, l + 3);
    float mx = std::max({p[0], p[1], p[2]}), sum = 0;
    for (float& v : p) sum += v = std::exp(v - mx);
    for (float& v : p) v /= sum;
    return p;
  }
  int64_t Publish(const std::string& dir, int64_t step, int keep = 3) {
    trainer::Publisher pub({.dir = dir, .every_steps = 1, .keep = keep, .job = "test"},
                           SmallModelDef().ToJson(), 1);
    return *pub.Publish(step, *net, nullptr);
  }
};

}  // namespace tandem::serve::testing
