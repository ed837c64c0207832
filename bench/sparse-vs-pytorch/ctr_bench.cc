// tandem-bench-sparse: trains the benchmark CTR model with Tandem's trainer for one pass and prints
// one JSON line {examples_per_sec, peak_rss_mib, train_s, test_auc, best_auc, rows_pulled_per_sec,
// rows_pushed_per_sec}. --shards 0: the embedding table is local (single process); --shards N: it
// lives on N in-process pservers (real gRPC over loopback, sync mode, one trainer).
// Model (the issue's): 26 fields hashed into one 1,451,594 x 64 table, one id per field, summed
// per field, concatenated into an MLP 1664-256-128-1, binary cross-entropy, SGD lr 0.05, batch 128.
#include <sys/resource.h>

#include <cmath>
#include <iostream>

#include "CLI/CLI.hpp"
#include "common/cli.h"
#include "pserver/server.h"
#include "trainer/engine/sparse_path.h"
#include "trainer/engine/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"Tandem side of bench/sparse-vs-pytorch"};
  int threads = 1, shards = 0, test_examples = 0;
  int64_t examples = 200000;
  uint64_t seed = 7;
  app.add_option("--threads", threads, "Trainer threads")->capture_default_str();
  app.add_option("--examples", examples, "Training examples (one pass)")->capture_default_str();
  app.add_option("--test-examples", test_examples, "Held-out examples (0: no evaluation)");
  app.add_option("--shards", shards, "0: local table; N: tables on N in-process pservers");
  app.add_option("--seed", seed, "Data seed (tandem-ctr-gen --seed)")->capture_default_str();
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;

  nlohmann::json spec = {
      {"passes", 1},
      {"data",
       {{"train",
         {{"format", "synthetic-ctr"}, {"examples", examples}, {"numFields", 26}, {"seed", seed}}},
        {"batchSize", 128},
        {"shuffle", false},
        {"prefetch", 2}}},
      {"model", nlohmann::json::parse(R"({
        "inputs": [{"name": "ids", "source": "fields", "shape": [26]},
                   {"name": "click", "source": "targets"}],
        "layers": [
          {"name": "emb", "type": "embedding", "input": "ids", "vocabSize": 1451594, "size": 64},
          {"name": "fc1", "type": "fc", "input": "emb", "size": 256},
          {"name": "relu1", "type": "relu", "input": "fc1"},
          {"name": "fc2", "type": "fc", "input": "relu1", "size": 128},
          {"name": "relu2", "type": "relu", "input": "fc2"},
          {"name": "logit", "type": "fc", "input": "relu2", "size": 1},
          {"name": "cost", "type": "binary_cross_entropy", "inputs": ["logit", "click"]}]})")},
      {"optimizer", {{"type", "sgd"}, {"learningRate", 0.05}}}};
  if (test_examples > 0) {
    spec["data"]["test"] = {{"format", "synthetic-ctr"}, {"examples", test_examples},
                            {"numFields", 26}, {"seed", seed}};
  }
  auto parsed = tandem::trainer::ParseTrainerSpec(spec, {.check_files = false});
  if (!parsed.ok()) {
    std::cerr << parsed.status().message() << std::endl;
    return 2;
  }
  std::vector<std::unique_ptr<tandem::pserver::PServer>> servers;
  std::unique_ptr<tandem::trainer::SparsePath> sparse;
  tandem::trainer::TrainOptions options;
  options.threads = threads;
  options.seed = 1;
  options.keep_final_parameters = false;  // as the trainer binary: no copy of the table
  if (shards > 0) {
    tandem::pserver::PServerClientOptions co;
    co.token = "bench";
    for (int s = 0; s < shards; ++s) {
      tandem::pserver::PServerOptions o;
      o.host = "127.0.0.1";
      o.token = "bench";
      o.shard.shard = static_cast<uint32_t>(s);
      o.shard.num_shards = static_cast<uint32_t>(shards);
      o.shard.num_trainers = 1;
      auto ps = tandem::pserver::PServer::Start(o);
      if (!ps.ok()) {
        std::cerr << ps.status().message() << std::endl;
        return 1;
      }
      co.endpoints.push_back("127.0.0.1:" + std::to_string((*ps)->port()));
      servers.push_back(std::move(*ps));
    }
    auto client = tandem::pserver::PServerClient::Connect(co);
    if (!client.ok()) {
      std::cerr << client.status().message() << std::endl;
      return 1;
    }
    sparse = std::make_unique<tandem::trainer::SparsePath>(std::move(*client),
                                                           tandem::trainer::PServerSyncOptions{});
    options.sparse = sparse.get();
  }
  auto r = tandem::trainer::Train(*parsed, options);
  if (!r.ok()) {
    std::cerr << r.status().message() << std::endl;
    return 1;
  }
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  std::cout << nlohmann::json{{"examples_per_sec", r->examples_per_sec},
                              {"peak_rss_mib", static_cast<double>(ru.ru_maxrss) / 1024.0},
                              {"train_s", r->train_seconds},
                              {"examples", r->examples},
                              {"threads", r->threads},
                              {"shards", shards},
                              {"test_auc", number(r->test_auc)},
                              {"best_auc", number(r->best_auc)},
                              {"rows_pulled_per_sec",
                               r->train_seconds > 0 ? r->rows_pulled / r->train_seconds : 0},
                              {"rows_pushed_per_sec",
                               r->train_seconds > 0 ? r->rows_pushed / r->train_seconds : 0}}
                   .dump()
            << std::endl;
  return 0;
}
