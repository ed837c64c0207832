// tandem-bench-serving-model: the model of a TrainingJob manifest (spec.model), initialised from
// --seed, published for tandem-serve into <out>/published (trainer/engine/publisher.h), its
// parameters written as raw float32 files <out>/weights/<layer>.<param>.bin (+ index.json) for
// the ONNX export (export_onnx.py), and request bodies <out>/requests-b<k>.jsonl (k examples per
// request, random inputs of the model's signature).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "api/manifest.h"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/engine/publisher.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_graph.h"
#include "trainer/model/network.h"
#include "trainer/model/trainer_spec.h"

int main(int argc, char** argv) {
  CLI::App app{"tandem-bench-serving-model: a published model, its weights and requests for bench/serving"};
  std::string manifest, out;
  uint64_t seed = 1;
  int requests = 2000;
  std::vector<int> sizes = {1, 8};
  app.add_option("manifest", manifest, "TrainingJob manifest")->required();
  app.add_option("--out", out, "Output folder")->required();
  app.add_option("--seed", seed, "Initialisation seed");
  app.add_option("--requests", requests, "Request bodies per file");
  app.add_option("--examples-per-request", sizes, "One requests file per size");
  CLI11_PARSE(app, argc, argv);
  auto job = tandem::api::LoadTrainingJob(manifest, tandem::trainer::TrainerSectionValidators());
  if (!job.ok()) {
    std::cerr << job.status().message() << std::endl;
    return 1;
  }
  auto spec = tandem::trainer::ParseTrainerSpec(tandem::api::SpecToJson(job->spec), {});
  if (!spec.ok()) {
    std::cerr << spec.status().message() << std::endl;
    return 1;
  }
  tandem::trainer::ModelGraph graph;
  if (!tandem::trainer::BuildModelGraph(spec->model, tandem::trainer::LayerRegistry::Builtin(), "spec.model", &graph)
           .empty())
    return 1;
  auto device = tandem::trainer::CreateCpuDevice({.threads = 1});
  auto net = tandem::trainer::Network::Create(std::move(graph), *device, seed);
  if (!net.ok()) {
    std::cerr << net.status().message() << std::endl;
    return 1;
  }
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out + "/weights");
  tandem::trainer::Publisher pub({.dir = out + "/published", .every_steps = 1, .keep = 1, .job = "bench"},
                                 spec->model.ToJson(), seed);
  if (auto v = pub.Publish(1, **net, nullptr); !v.ok()) {
    std::cerr << v.status().message() << std::endl;
    return 1;
  }
  nlohmann::json index = nlohmann::json::array();
  const auto& g = (*net)->graph();
  size_t k = 0;
  for (const auto& layer : g.layers) {
    for (size_t j = 0; j < layer.params.size(); ++j, ++k) {
      const auto& p = (*net)->params()[k];
      const std::string name = absl::StrCat(layer.config.name, ".", p.desc.name);
      std::ofstream f(out + "/weights/" + name + ".bin", std::ios::binary);
      f.write(reinterpret_cast<const char*>(p.value.data()), sizeof(float) * p.value.size());
      index.push_back({{"name", name}, {"shape", p.desc.shape.dims()}});
    }
  }
  std::ofstream(out + "/weights/index.json") << nlohmann::json({{"params", index}, {"model", spec->model.ToJson()}}).dump(1);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  for (int per : sizes) {
    std::ofstream f(absl::StrCat(out, "/requests-b", per, ".jsonl"));
    for (int r = 0; r < requests; ++r) {
      nlohmann::json instances = nlohmann::json::array();
      for (int e = 0; e < per; ++e) {
        nlohmann::json inst = nlohmann::json::object();
        for (const auto& in : g.inputs) {
          if (in.source == tandem::trainer::InputSource::kFeatures) {
            std::vector<float> v(static_cast<size_t>(in.shape.NumElements()));
            for (float& x : v) x = std::round(unit(rng) * 1000.f) / 1000.f;
            inst[in.name] = v;
          } else if (in.source == tandem::trainer::InputSource::kFields) {
            nlohmann::json fields = nlohmann::json::array();
            for (int64_t fi = 0; fi < in.shape.dim(0); ++fi) fields.push_back({rng() & 0x7fffffff});
            inst[in.name] = fields;
          }
        }
        instances.push_back(inst);
      }
      f << nlohmann::json({{"instances", instances}}).dump() << "\n";
    }
  }
  std::cout << "model published in " << out << "/published, weights in " << out << "/weights" << std::endl;
  return 0;
}
