// bench/data-io: the data path and checkpoints, side by side with PyTorch (peer.py): PyTorch 2.x
// from the project's pinned venv (scripts/install-bench-peers.sh, installed on first use; or
// --peer-python), and Debian's PyTorch 1.13 as a second column (--no-torch113 skips it).
//
//   build/bin/tandem-bench-data-io [--mib 256] [--repeats 3] [--json PATH] [--no-peer]
//
// Measures (best of --repeats rounds, each round our side then each peer's, so that all see the
// same machine load): loading Fashion-MNIST's training IDX files, inflating the gzip files
// (idx_load) and through a warm decoded cache (idx_load_cached: trainer/data/decoded_cache.h,
// what every trial of a sweep after the first does; the peer's figure is its load, which has no
// cache); one shuffled pass of
// batch-64 batches through the BatchReader (prefetch thread, a consumer that only touches the
// batch) against torch.utils.data.DataLoader over a TensorDataset; writing a --mib MiB float
// checkpoint (with fsync) and reading it back (verifying every checksum) against torch.save (with
// fsync) and torch.load (both into fresh memory), reading it into existing buffers
// (CheckpointFile::ReadInto, how a trainer restores; no PyTorch equivalent without an extra
// copy); and CRC-32C throughput. Reads come from the page cache on both sides.
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/checkpoint.h"
#include "common/cli.h"
#include "common/crc32c.h"
#include "nlohmann/json.hpp"
#include "trainer/data/batch_reader.h"
#include "trainer/data/idx_dataset.h"

namespace {

using tandem::trainer::data::BatchReader;
using tandem::trainer::data::IdxDataset;

double Best(int repeats, const std::function<void()>& fn) {
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Data path and checkpoint benchmark, Tandem vs PyTorch"};
  int mib = 256, repeats = 3;
  std::string json_path;
  bool no_peer = false;
  std::string dir = "/usr/share/datasets/fashion-mnist";
  app.add_option("--mib", mib, "Checkpoint size in MiB");
  app.add_option("--repeats", repeats, "Runs per measurement (best is reported)");
  app.add_option("--json", json_path, "Also write the figures as JSON records");
  app.add_option("--dir", dir, "Fashion-MNIST directory");
  app.add_flag("--no-peer", no_peer, "Skip PyTorch");
  std::string peer_python;
  bool no_torch113 = false;
  app.add_option("--peer-python", peer_python,
                 "Python of the PyTorch 2.x peer (default: scripts/install-bench-peers.sh)");
  app.add_flag("--no-torch113", no_torch113, "Skip the Debian PyTorch 1.13 column");
  tandem::AddVersionFlag(app, "tandem-bench-data-io");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;

  // Our side once; the loop below alternates it with the peers' runs, so that every side sees
  // the same machine load, and keeps each figure's best.
  const std::string cache_dir = "/tmp/tandem-bench-decoded-" + std::to_string(::getpid());
  struct Times {
    double load_s, cached_load_s, reader_s, write_s, read_s, read_into_s, crc_s, crc_portable_s;
  };
  double checksum = 0;
  auto measure = [&]() -> Times {
    // 1. IDX load.
    std::shared_ptr<const IdxDataset> train;
    const double load_s = Best(1, [&] {
      auto ds = IdxDataset::Load(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
      if (!ds.ok()) {
        std::fprintf(stderr, "%s\n", std::string(ds.status().message()).c_str());
        std::exit(1);
      }
      train = *ds;
    });
    // 1b. IDX load through the decoded cache, warm (the first load writes the entries).
    for (int warm = 0; warm < 2; ++warm) {
      auto ds = IdxDataset::Load(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz", 0, cache_dir);
      if (!ds.ok() || (*ds)->size() != 60000) std::exit(6);
    }
    const double cached_load_s = Best(1, [&] {
      auto ds = IdxDataset::Load(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz", 0, cache_dir);
      if (!ds.ok()) std::exit(6);
      checksum += (*ds)->label(59999);
    });

    // 2. One shuffled pass through the reader.
    BatchReader reader(train, {.batch_size = 64, .shuffle = true, .seed = 1, .prefetch = 2,
                               .name = "bench"});
    int64_t pass = 0;
    const double reader_s = Best(1, [&] {
      reader.StartPass(pass++);
      int64_t n = 0;
      while (const auto* b = reader.Next()) {
        n += b->size;
        checksum += b->features[0] + b->labels[0];
      }
      if (n != 60000) std::exit(2);
    });

    // 3. Checkpoint write and read.
    std::vector<float> weights(static_cast<size_t>(mib) * (1 << 20) / 4);
    std::iota(weights.begin(), weights.end(), 0.0f);
    const std::string path = "/tmp/tandem-bench-" + std::to_string(::getpid()) + ".ckpt";
    const double write_s = Best(1, [&] {
      std::vector<tandem::NamedFloats> arrays = {{"w", {static_cast<int64_t>(weights.size())}, weights}};
      auto s = tandem::WriteCheckpoint(path, {{"step", 1}}, arrays);
      if (!s.ok()) std::exit(3);
    });
    const double read_s = Best(1, [&] {
      auto c = tandem::ReadCheckpoint(path);
      if (!c.ok()) std::exit(4);
      checksum += c->arrays[0].Floats()[1];
    });
    std::vector<float> restored(weights.size(), 0.0f);  // parameters that already exist
    const double read_into_s = Best(1, [&] {
      auto f = tandem::CheckpointFile::Open(path);
      if (!f.ok() || !(*f)->ReadInto<float>("w", restored).ok()) std::exit(5);
    });
    ::unlink(path.c_str());
    const double crc_s = Best(1, [&] {
      checksum += tandem::crc32c::Value(weights.data(), weights.size() * 4);
    });
    const double crc_portable_s = Best(1, [&] {
      checksum += tandem::crc32c::ExtendPortable(0, weights.data(), weights.size() * 4);
    });
    return {load_s, cached_load_s, reader_s, write_s, read_s, read_into_s, crc_s, crc_portable_s};
  };

  const double gib = mib / 1024.0;
  // Runs peer.py under `python`; the parsed JSON line, or null (with a message) on failure.
  auto run_peer = [&](const std::string& python) -> nlohmann::json {
    const std::string cmd = "OMP_NUM_THREADS=1 " + python + " " + std::string(TANDEM_BENCH_DIR) +
                            "/peer.py --mib " + std::to_string(mib) + " --repeats 1 --dir " + dir;
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (p && std::fgets(buf, sizeof(buf), p)) out += buf;
    if (p == nullptr || ::pclose(p) != 0) {
      std::fprintf(stderr, "peer %s failed: %s\n", python.c_str(), out.c_str());
      return nullptr;
    }
    auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) std::fprintf(stderr, "peer %s printed no JSON: %s\n", python.c_str(), out.c_str());
    return j.is_discarded() ? nlohmann::json() : j;
  };
  nlohmann::json peer, peer113;
  if (!no_peer) {
    if (peer_python.empty()) {
      const std::string install = std::string(TANDEM_BENCH_DIR) + "/../../scripts/install-bench-peers.sh";
      FILE* p = ::popen(install.c_str(), "r");
      char buf[4096];
      while (p && std::fgets(buf, sizeof(buf), p)) peer_python = buf;
      while (!peer_python.empty() && std::isspace(static_cast<unsigned char>(peer_python.back())))
        peer_python.pop_back();
      if (p == nullptr || ::pclose(p) != 0 || peer_python.empty()) {
        std::fprintf(stderr, "%s failed: no PyTorch 2.x peer (or pass --peer-python)\n", install.c_str());
        return 1;
      }
    }
  }
  // Keeps the better of each figure (the load time lower, every rate higher).
  auto merge = [](nlohmann::json& best, const nlohmann::json& run) {
    if (best.is_null()) {
      best = run;
      return;
    }
    for (auto it = run.begin(); it != run.end(); ++it) {
      if (!it.value().is_number() || !best.contains(it.key())) continue;
      const double v = it.value(), b = best[it.key()];
      if (it.key() == "idx_load_s" ? v < b : v > b) best[it.key()] = v;
    }
    if (run.contains("reader_examples_per_s") &&
        run["reader_examples_per_s"] == best["reader_examples_per_s"]) {
      best["reader_setting"] = run["reader_setting"];
    }
  };
  // The 1-minute load average, printed beside the figures: the machine may be shared.
  auto load_now = [] {
    double load = -1;
    std::ifstream("/proc/loadavg") >> load;
    return load;
  };
  const double load_start = load_now();
  Times t{1e30, 1e30, 1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
  for (int r = 0; r < repeats; ++r) {
    const Times m = measure();
    t = {std::min(t.load_s, m.load_s), std::min(t.cached_load_s, m.cached_load_s), std::min(t.reader_s, m.reader_s),
         std::min(t.write_s, m.write_s), std::min(t.read_s, m.read_s),
         std::min(t.read_into_s, m.read_into_s), std::min(t.crc_s, m.crc_s),
         std::min(t.crc_portable_s, m.crc_portable_s)};
    if (no_peer) continue;
    const nlohmann::json p2 = run_peer(peer_python);
    if (p2.is_null()) return 1;
    merge(peer, p2);
    if (!no_torch113) {
      const nlohmann::json p113 = run_peer("/usr/bin/python3");
      if (!p113.is_null()) merge(peer113, p113);
    }
  }
  if (!no_peer) {
    std::printf("peer: PyTorch %s (%s), reader setting %s\n", peer.value("torch", "?").c_str(),
                peer_python.c_str(), peer.value("reader_setting", "?").c_str());
    if (!peer113.is_null()) {
      std::printf("second column: PyTorch %s (/usr/bin/python3, Debian), reader setting %s\n",
                  peer113.value("torch", "?").c_str(), peer113.value("reader_setting", "?").c_str());
    }
  }
  struct Row {
    std::string name, unit;
    double tandem;
    const char* peer_key;
    bool lower_is_better;
  };
  std::vector<Row> rows = {
      {"idx_load", "s", t.load_s, "idx_load_s", true},
      {"idx_load_cached", "s", t.cached_load_s, "idx_load_s", true},
      {"reader_b64", "examples/s", 60000 / t.reader_s, "reader_examples_per_s", false},
      {"ckpt_write", "GiB/s", gib / t.write_s, "ckpt_write_gib_per_s", false},
      {"ckpt_read", "GiB/s", gib / t.read_s, "ckpt_read_gib_per_s", false},
      {"ckpt_read_into", "GiB/s", gib / t.read_into_s, nullptr, false},
      {"crc32c", "GiB/s", gib / t.crc_s, nullptr, false},
      {"crc32c_portable", "GiB/s", gib / t.crc_portable_s, nullptr, false},
  };
  nlohmann::json records = nlohmann::json::array();
  std::printf("%-16s %-11s %12s %12s %8s %12s %8s\n", "name", "unit", "tandem", "pytorch2",
              "ratio", "pytorch1.13", "ratio");
  for (const Row& r : rows) {
    nlohmann::json rec = {{"name", r.name}, {"unit", r.unit}, {"tandem", r.tandem}};
    std::printf("%-16s %-11s %12.3f", r.name.c_str(), r.unit.c_str(), r.tandem);
    for (const auto* side : {&peer, &peer113}) {
      const bool main_peer = side == &peer;
      if (r.peer_key && side->contains(r.peer_key)) {
        const double pv = (*side)[r.peer_key];
        // ratio > 1 means Tandem is better, whichever way the unit points.
        const double ratio = r.lower_is_better ? pv / r.tandem : r.tandem / pv;
        rec[main_peer ? "peer" : "torch113"] = pv;
        rec[main_peer ? "ratio" : "ratio_torch113"] = ratio;
        std::printf(" %12.3f %7.2fx", pv, ratio);
      } else {
        if (main_peer) rec["peer"] = rec["ratio"] = nullptr;
        std::printf(" %12s %8s", "-", "-");
      }
    }
    std::printf("\n");
    if (!peer.is_null()) rec["peer_version"] = peer.value("torch", "");
    records.push_back(rec);
  }
  std::error_code ec;
  std::filesystem::remove_all(cache_dir, ec);
  std::printf("best of %d interleaved rounds; load average %.1f at the start, %.1f at the end\n",
              repeats, load_start, load_now());
  std::printf("crc32c hardware: %s (checksum %g)\n", tandem::crc32c::IsHardwareAccelerated() ? "yes" : "no", checksum);
  if (!json_path.empty()) std::ofstream(json_path) << records.dump(2) << "\n";
  return 0;
}
