// Sparse pull/push throughput of the parameter server through its real path (client dedupe and
// placement, gRPC over loopback, server hash table and optimizer), for 1, 2 and 4 shards.
//
//   build/bin/tandem-bench-pserver-throughput [--rows 8192] [--dim 64] [--iters 20]
//                                              [--repeats 3] [--shards 1,2,4] [--json PATH]
//                                              [--transport plain,tls]
//
// Per shard count it starts that many in-process pservers on 127.0.0.1 (async mode, one trainer)
// and one PServerClient, then times, per batch of --rows distinct random 64-bit keys:
//   first_touch: pulls of keys never seen (rows created with a uniform initializer),
//   pull:        pulls of existing rows,
//   push:        pushes of one gradient row per key (SGD applied on the server),
//   step:        a pull followed by a push (one async training step's pserver traffic).
// It reports rows/s (best of --repeats) and MB/s of parameter payload. Everything shares this
// machine's cores, so more shards mean more server threads on the same CPUs, not more hardware.
// There is no peer binary: ps-lite/BytePS are not installed here (see docs/pserver.md).
// --transport tls runs the same with mutual TLS (a job's certificates, as every job uses since
// issue 13; plain: the token alone), so the two rows give TLS's cost; repeats alternate them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <filesystem>
#include <random>

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"
#include "common/logging.h"
#include "nlohmann/json.hpp"
#include "pserver/client/pserver_client.h"
#include "pserver/server.h"
#include "common/job_certificates.h"

namespace {

using tandem::pserver::PServer;
using tandem::pserver::PServerClient;
using tandem::pserver::SparseBatch;

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Result {
  double first_touch = 0, pull = 0, push = 0, step = 0;  // rows/s
};

Result RunOnce(uint32_t shards, int rows, uint32_t dim, int iters, uint64_t seed,
               const tandem::tls::TlsFiles& tls) {
  std::vector<std::unique_ptr<PServer>> servers;
  tandem::pserver::PServerClientOptions co;
  for (uint32_t s = 0; s < shards; ++s) {
    tandem::pserver::PServerOptions o;
    o.host = "127.0.0.1";
    o.shard.shard = s;
    o.shard.num_shards = shards;
    o.shard.num_trainers = 1;
    o.shard.sync = false;
    o.shard.staleness = 1u << 30;
    o.token = "bench";
    o.tls = tls;
    auto ps = PServer::Start(o);
    if (!ps.ok()) {
      std::fprintf(stderr, "cannot start pserver: %s\n", ps.status().ToString().c_str());
      std::exit(1);
    }
    co.endpoints.push_back(absl::StrCat("127.0.0.1:", (*ps)->port()));
    servers.push_back(std::move(*ps));
  }
  co.token = "bench";
  co.tls = tls;
  co.sync = false;
  auto client = std::move(*PServerClient::Connect(co));
  tandem::pserver::TableConfig t;
  t.set_id(1);
  t.set_name("emb");
  t.set_kind(tandem::pserver::TableConfig::SPARSE);
  t.set_dim(dim);
  t.mutable_init()->set_kind(tandem::pserver::Initializer::UNIFORM);
  t.mutable_init()->set_low(-0.01f);
  t.mutable_init()->set_high(0.01f);
  t.mutable_optimizer()->set_kind(tandem::pserver::OptimizerConfig::SGD);
  t.mutable_optimizer()->set_learning_rate(0.05f);
  if (!client->RegisterTable(t).ok()) std::exit(1);

  std::mt19937_64 rng(seed);
  std::vector<std::vector<uint64_t>> batches(iters, std::vector<uint64_t>(rows));
  for (auto& b : batches)
    for (auto& k : b) k = rng();
  SparseBatch batch;
  std::vector<float> grads(static_cast<size_t>(rows) * dim, 0.001f);
  auto check = [](const absl::Status& s) {
    if (!s.ok()) {
      std::fprintf(stderr, "pserver call failed: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  };
  Result r;
  double total_rows = 0;
  auto start = std::chrono::steady_clock::now();
  for (const auto& b : batches) {
    check(client->PullSparse(1, b, &batch));
    total_rows += batch.unique_keys().size();
  }
  r.first_touch = total_rows / Seconds(start);
  start = std::chrono::steady_clock::now();
  for (const auto& b : batches) check(client->PullSparse(1, b, &batch));
  r.pull = total_rows / Seconds(start);
  // Pushes reuse the last pulled batch layout per batch: pull outside the timed region.
  double push_s = 0;
  for (const auto& b : batches) {
    check(client->PullSparse(1, b, &batch));
    const auto t0 = std::chrono::steady_clock::now();
    check(client->PushSparse(
        batch, absl::MakeConstSpan(grads.data(), batch.unique_keys().size() * dim), 0));
    push_s += Seconds(t0);
  }
  r.push = total_rows / push_s;
  start = std::chrono::steady_clock::now();
  uint64_t step = 1;
  for (const auto& b : batches) {
    check(client->PullSparse(1, b, &batch));
    check(client->PushSparse(
        batch, absl::MakeConstSpan(grads.data(), batch.unique_keys().size() * dim), step++));
  }
  r.step = total_rows / Seconds(start);
  for (auto& s : servers) (void)s->Stop(false);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Sparse pull/push throughput of the Tandem parameter server for 1, 2, 4 shards"};
  app.name("tandem-bench-pserver-throughput");
  tandem::AddVersionFlag(app, "tandem-bench-pserver-throughput");
  int rows = 8192, iters = 20, repeats = 3;
  uint32_t dim = 64;
  std::string shard_list = "1,2,4", json_path, transports = "plain,tls";
  app.add_option("--rows", rows, "Distinct keys per batch")->check(CLI::Range(1, 1 << 20));
  app.add_option("--dim", dim, "Row width (floats)")->check(CLI::Range(1, 4096));
  app.add_option("--iters", iters, "Batches per measurement")->check(CLI::Range(1, 100000));
  app.add_option("--repeats", repeats, "Measurements per shard count (best is reported)")
      ->check(CLI::Range(1, 100));
  app.add_option("--shards", shard_list, "Comma-separated shard counts");
  app.add_option("--json", json_path, "Also write the figures as JSON records");
  app.add_option("--transport", transports,
                 "Comma-separated: plain (token only), tls (mutual TLS with a job's certificates)")
      ->capture_default_str();
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  tandem::InitLogging("bench");
  spdlog::set_level(spdlog::level::warn);

  // Each transport's files: none (plain) or a job's certificates in a temporary folder.
  std::vector<std::pair<std::string, tandem::tls::TlsFiles>> modes;
  const std::string tls_dir = absl::StrCat("/tmp/tandem-bench-pserver-tls-", getpid());
  for (absl::string_view t : absl::StrSplit(transports, ',')) {
    if (t == "plain") {
      modes.emplace_back("plain", tandem::tls::TlsFiles{});
    } else if (t == "tls") {
      auto certs = tandem::tls::CreateJobCertificates("bench", absl::Now(), {});
      auto files = certs.ok() ? tandem::tls::WriteWorkerFiles(tls_dir, *certs) : certs.status();
      if (!files.ok()) {
        std::fprintf(stderr, "--transport tls: %s\n", files.status().ToString().c_str());
        return 1;
      }
      modes.emplace_back("tls", *files);
    } else {
      std::fprintf(stderr, "--transport: unknown '%s' (plain, tls)\n", std::string(t).c_str());
      return 2;
    }
  }
  nlohmann::json records = nlohmann::json::array();
  std::printf("%-7s %-9s %16s %16s %16s %16s %12s\n", "shards", "transport", "first_touch r/s",
              "pull r/s", "push r/s", "step r/s", "pull MB/s");
  for (absl::string_view part : absl::StrSplit(shard_list, ',')) {
    uint32_t shards = 0;
    if (!absl::SimpleAtoi(part, &shards) || shards == 0 || shards > 64) {
      std::fprintf(stderr, "--shards: bad count '%s'\n", std::string(part).c_str());
      return 2;
    }
    std::vector<Result> best(modes.size());
    // Repeats alternate the transports, so a burst of load elsewhere hits both alike.
    for (int rep = 0; rep < repeats; ++rep) {
      for (size_t m = 0; m < modes.size(); ++m) {
        const Result r = RunOnce(shards, rows, dim, iters, 1234 + rep, modes[m].second);
        best[m].first_touch = std::max(best[m].first_touch, r.first_touch);
        best[m].pull = std::max(best[m].pull, r.pull);
        best[m].push = std::max(best[m].push, r.push);
        best[m].step = std::max(best[m].step, r.step);
      }
    }
    for (size_t m = 0; m < modes.size(); ++m) {
      const Result& b = best[m];
      std::printf("%-7u %-9s %16.0f %16.0f %16.0f %16.0f %12.1f\n", shards, modes[m].first.c_str(),
                  b.first_touch, b.pull, b.push, b.step, b.pull * dim * 4 / 1e6);
      const std::string suffix = modes[m].first == "plain" ? "" : "_" + modes[m].first;
      for (auto [name, value] :
           {std::pair{"first_touch", b.first_touch}, std::pair{"pull", b.pull},
            std::pair{"push", b.push}, std::pair{"step", b.step}})
        records.push_back({{"name", absl::StrCat("pserver_", name, "_s", shards, suffix)},
                           {"unit", "rows/s"},
                           {"tandem", value},
                           {"peer", nullptr},
                           {"ratio", nullptr}});
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(tls_dir, ec);
  if (!json_path.empty()) std::ofstream(json_path) << records.dump(2) << "\n";
  return 0;
}
