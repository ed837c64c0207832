// bench/stream-read: one trainer reading a directory of libsvm click files to its end through the
// StreamReader (trainer/data/stream_reader.h: listing, complete lines, parsing into batches),
// side by side with PyTorch 2.x from the project's pinned venv (peer.py: an IterableDataset over
// the files' lines and a DataLoader, the faster of per-example and per-batch collation).
//
//   build/bin/tandem-bench-stream-read [--files 8] [--records-per-file 25000] [--repeats 3]
//                                      [--json PATH] [--no-peer] [--peer-python PY]
//
// The files are the synthetic click model's (26 fields, qid per record, as tandem-ctr-stream-gen
// writes them), written once into a temporary directory with the end marker; every round reads
// them from the page cache, our side then the peer, best of --repeats. Prints records/s and MiB/s
// for both, the ratio, and with --json the records {"name", "unit", "tandem", "peer", "ratio"}.
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli.h"
#include "nlohmann/json.hpp"
#include "trainer/data/stream_reader.h"
#include "trainer/data/synthetic_ctr_dataset.h"

namespace {

namespace fs = std::filesystem;
namespace data = tandem::trainer::data;

// Writes the click files; returns their total size in bytes.
int64_t WriteStream(const std::string& dir, int files, int64_t per_file, int fields) {
  data::SyntheticCtrOptions o;
  o.num_fields = fields;
  o.seed = 7;
  const data::SyntheticCtrGenerator gen(o);
  std::vector<uint64_t> ids(static_cast<size_t>(fields));
  int64_t record = 0, bytes = 0;
  for (int f = 0; f < files; ++f) {
    std::string text;
    for (int64_t k = 0; k < per_file; ++k, ++record) {
      float p = 0, click = 0;
      gen.Example(record, ids.data(), &p, &click);
      absl::StrAppend(&text, click > 0.5f ? "1" : "0", " qid:", record);
      for (int i = 0; i < fields; ++i) absl::StrAppend(&text, " ", i, ":", ids[i], ":1");
      text.push_back('\n');
    }
    std::ofstream(absl::StrFormat("%s/clicks-%06d.svm", dir, f), std::ios::binary) << text;
    bytes += static_cast<int64_t>(text.size());
  }
  std::ofstream(dir + "/_END").close();
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Stream reading benchmark, Tandem's StreamReader vs a PyTorch IterableDataset"};
  int files = 8, repeats = 3, fields = 26, batch = 256;
  int64_t per_file = 25000;
  std::string json_path, peer_python;
  bool no_peer = false;
  app.add_option("--files", files, "Files in the stream")->capture_default_str();
  app.add_option("--records-per-file", per_file, "Records per file")->capture_default_str();
  app.add_option("--batch", batch, "Records per batch")->capture_default_str();
  app.add_option("--repeats", repeats, "Rounds (best is reported)")->capture_default_str();
  app.add_option("--json", json_path, "Also write the figures as JSON records");
  app.add_flag("--no-peer", no_peer, "Skip PyTorch");
  app.add_option("--peer-python", peer_python,
                 "Python of the PyTorch 2.x peer (default: scripts/install-bench-peers.sh)");
  tandem::AddVersionFlag(app, "tandem-bench-stream-read");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;

  const std::string dir = absl::StrCat(fs::temp_directory_path().string(), "/tandem-bench-stream-",
                                       ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const int64_t bytes = WriteStream(dir, files, per_file, fields);
  const int64_t records = files * per_file;
  std::printf("stream: %d files, %lld records, %.1f MiB in %s\n", files,
              static_cast<long long>(records), bytes / 1048576.0, dir.c_str());

  auto ours = [&]() -> double {
    data::StreamReaderOptions o;
    o.config.dir = dir;
    o.config.pattern = "*.svm";
    o.config.end_marker = "_END";
    o.num_fields = fields;
    data::StreamReader reader(o);
    data::Batch b;
    b.Allocate(reader.layout(), batch);
    int64_t n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (!reader.finished()) {
      b.Clear();
      auto got = reader.Read(&b);
      if (!got.ok()) {
        std::fprintf(stderr, "stream read: %s\n", std::string(got.status().message()).c_str());
        std::exit(1);
      }
      n += *got;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (n != records) {
      std::fprintf(stderr, "read %lld records of %lld\n", static_cast<long long>(n),
                   static_cast<long long>(records));
      std::exit(1);
    }
    return s;
  };
  if (!no_peer && peer_python.empty()) {
    const std::string install =
        std::string(TANDEM_BENCH_DIR) + "/../../scripts/install-bench-peers.sh";
    FILE* p = ::popen(install.c_str(), "r");
    char buf[4096];
    while (p && std::fgets(buf, sizeof(buf), p)) peer_python = buf;
    while (!peer_python.empty() && std::isspace(static_cast<unsigned char>(peer_python.back())))
      peer_python.pop_back();
    if (p == nullptr || ::pclose(p) != 0 || peer_python.empty()) {
      std::fprintf(stderr, "%s failed: no PyTorch 2.x peer (or pass --peer-python)\n",
                   install.c_str());
      return 1;
    }
  }
  double best_ours = 1e30, best_peer_rps = 0;
  nlohmann::json peer;
  for (int round = 0; round < repeats; ++round) {
    best_ours = std::min(best_ours, ours());
    if (no_peer) continue;
    const std::string cmd = absl::StrCat("OMP_NUM_THREADS=1 ", peer_python, " ", TANDEM_BENCH_DIR,
                                         "/peer.py --dir ", dir, " --fields ", fields, " --batch ",
                                         batch);
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (p && std::fgets(buf, sizeof(buf), p)) out += buf;
    if (p == nullptr || ::pclose(p) != 0) {
      std::fprintf(stderr, "peer failed: %s\n", out.c_str());
      return 1;
    }
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded() || !j.contains("records_per_s")) {
      std::fprintf(stderr, "peer printed no JSON: %s\n", out.c_str());
      return 1;
    }
    if (j["records"].get<int64_t>() != records) {
      std::fprintf(stderr, "peer read %s records of %lld\n", j["records"].dump().c_str(),
                   static_cast<long long>(records));
      return 1;
    }
    if (j["records_per_s"].get<double>() > best_peer_rps) {
      best_peer_rps = j["records_per_s"].get<double>();
      peer = j;
    }
  }
  fs::remove_all(dir);
  const double rps = records / best_ours, mibps = bytes / best_ours / 1048576.0;
  std::printf("%-44s %14s %14s %8s\n", "", "Tandem", "PyTorch", "ratio");
  nlohmann::json out = nlohmann::json::array();
  auto row = [&](const char* name, const char* unit, double ours_v, double peer_v) {
    const double ratio = peer_v > 0 ? ours_v / peer_v : 0;
    std::printf("%-44s %14.0f %14.0f %7.2fx\n", absl::StrCat(name, " (", unit, ")").c_str(), ours_v,
                peer_v, ratio);
    out.push_back({{"name", name}, {"unit", unit}, {"tandem", ours_v},
                   {"peer", peer_v > 0 ? nlohmann::json(peer_v) : nlohmann::json()},
                   {"ratio", peer_v > 0 ? nlohmann::json(ratio) : nlohmann::json()}});
  };
  row("stream read, batch of libsvm records", "records/s", rps,
      peer.is_null() ? 0 : peer["records_per_s"].get<double>());
  row("stream read, bytes", "MiB/s", mibps, peer.is_null() ? 0 : peer["mib_per_s"].get<double>());
  if (!peer.is_null())
    std::printf("peer: PyTorch %s (%s), setting %s\n", peer.value("torch", "?").c_str(),
                peer_python.c_str(), peer.value("setting", "?").c_str());
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}
