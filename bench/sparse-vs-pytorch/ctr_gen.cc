// tandem-ctr-gen: writes the synthetic click log of `format: synthetic-ctr` (the same examples the
// trainer generates in memory for the same options) as raw little-endian arrays, for peers:
//   PREFIX.ids     uint64 [examples, fields]   raw feature ids (hash them into the table: % vocab)
//   PREFIX.labels  float32 [examples]          clicks (0/1)
// and prints {"examples", "fields", "best_auc", "click_rate"} as one JSON line.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "CLI/CLI.hpp"
#include "common/cli.h"
#include "nlohmann/json.hpp"
#include "trainer/data/synthetic_ctr_dataset.h"

int main(int argc, char** argv) {
  CLI::App app{"Writes a synthetic click log (the trainer's format: synthetic-ctr) for peers"};
  tandem::AddVersionFlag(app, "tandem-ctr-gen");
  tandem::trainer::data::SyntheticCtrOptions o;
  std::string prefix;
  app.add_option("--examples", o.examples, "Examples")->capture_default_str();
  app.add_option("--fields", o.num_fields, "Fields (one id each)")->capture_default_str();
  app.add_option("--zipf", o.zipf, "Zipf exponent of the ids")->capture_default_str();
  app.add_option("--seed", o.seed, "Model seed")->capture_default_str();
  app.add_flag("--test", o.test, "The held-out stream of the same model");
  app.add_option("--out", prefix, "Output prefix (PREFIX.ids, PREFIX.labels)")->required();
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  auto ds = tandem::trainer::data::SyntheticCtrDataset::Generate(o);
  if (!ds.ok()) {
    std::cerr << "tandem-ctr-gen: " << ds.status().message() << std::endl;
    return 2;
  }
  std::ofstream ids(prefix + ".ids", std::ios::binary), labels(prefix + ".labels", std::ios::binary);
  ids.write(reinterpret_cast<const char*>((*ds)->ids().data()),
            static_cast<std::streamsize>((*ds)->ids().size() * sizeof(uint64_t)));
  labels.write(reinterpret_cast<const char*>((*ds)->labels().data()),
               static_cast<std::streamsize>((*ds)->labels().size() * sizeof(float)));
  if (!ids || !labels) {
    std::cerr << "tandem-ctr-gen: cannot write " << prefix << ".ids/.labels" << std::endl;
    return 1;
  }
  std::cout << nlohmann::json{{"examples", o.examples},
                              {"fields", o.num_fields},
                              {"best_auc", (*ds)->BestAuc()},
                              {"click_rate", (*ds)->ClickRate()}}
                   .dump()
            << std::endl;
  return 0;
}
