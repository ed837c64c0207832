// Time of a pserver reshard (docs/elastic.md "Pserver resharding") for one sparse table of
// --rows rows x --dim floats (with momentum, so each row also carries --dim floats of optimizer
// state), from shards {0, 1} to {0, 1, 2} (or --to-shards), all in-process on 127.0.0.1:
//
//   build/bin/tandem-bench-pserver-reshard [--rows 1000000] [--dim 16] [--repeats 3]
//                                           [--to-shards 3] [--json PATH]
//
// Per repeat: fresh shards, every row created by pulls through a PServerClient, then
// RunReshard (begin, send, commit) is timed. The side-by-side figure is the peer a job without
// resharding would use: restarting whole at the new size from checkpoints, of which this times
// only the floor (every old shard's snapshot written to a shard checkpoint file under /tmp and
// read back; the placement of the rows into the new shards would come on top). Reported: the
// best of --repeats for each, the rows, blocks and bytes moved, and the ratio.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/logging.h"
#include "nlohmann/json.hpp"
#include "pserver/client/pserver_client.h"
#include "pserver/placement.h"
#include "pserver/reshard.h"
#include "pserver/server.h"
#include "pserver/shard_checkpoint.h"

namespace {

using namespace tandem::pserver;

constexpr char kToken[] = "bench-reshard-token";

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::unique_ptr<PServer> Start(uint32_t id, std::vector<uint32_t> members, uint64_t epoch,
                               bool joining) {
  PServerOptions o;
  o.host = "127.0.0.1";
  o.token = kToken;
  o.shard.shard = id;
  o.shard.members = std::move(members);
  o.shard.placement_epoch = epoch;
  o.shard.joining = joining;
  o.shard.sync = false;
  auto ps = PServer::Start(o);
  if (!ps.ok()) {
    std::fprintf(stderr, "pserver %u: %s\n", id, ps.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*ps);
}

struct Result {
  double reshard_s = 0, checkpoint_s = 0;
  ReshardReport report;
};

Result RunOnce(uint64_t rows, uint32_t dim, uint32_t to_shards) {
  std::vector<uint32_t> from_ids = {0, 1}, to_ids;
  for (uint32_t i = 0; i < to_shards; ++i) to_ids.push_back(i);
  std::map<uint32_t, std::unique_ptr<PServer>> servers;
  for (uint32_t id : from_ids) servers[id] = Start(id, from_ids, 1, false);
  PServerClientOptions co;
  for (uint32_t id : from_ids)
    co.endpoints.push_back(absl::StrCat("127.0.0.1:", servers[id]->port()));
  co.shard_ids = from_ids;
  co.placement_epoch = 1;
  co.token = kToken;
  co.sync = false;
  auto client = PServerClient::Connect(co);
  if (!client.ok()) std::exit(1);
  TableConfig t;
  t.set_id(1);
  t.set_name("emb");
  t.set_kind(TableConfig::SPARSE);
  t.set_dim(dim);
  t.mutable_init()->set_kind(Initializer::UNIFORM);
  t.mutable_init()->set_low(-0.1f);
  t.mutable_init()->set_high(0.1f);
  t.mutable_optimizer()->set_kind(OptimizerConfig::MOMENTUM);
  t.mutable_optimizer()->set_learning_rate(0.1f);
  t.mutable_optimizer()->set_momentum(0.9f);
  if (absl::Status s = (*client)->RegisterTable(t); !s.ok()) std::exit(1);
  SparseBatch batch;
  std::vector<uint64_t> keys;
  for (uint64_t first = 0; first < rows; first += 65536) {
    keys.clear();
    for (uint64_t k = first; k < std::min(rows, first + 65536); ++k) keys.push_back(k * 7919 + 13);
    if (absl::Status s = (*client)->PullSparse(1, keys, &batch); !s.ok()) {
      std::fprintf(stderr, "populating: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  }
  client->reset();

  Result r;
  // The peer's floor: every old shard's state written to a checkpoint file and read back.
  const std::string dir = absl::StrCat("/tmp/tandem-bench-reshard-", getpid());
  {
    const auto start = std::chrono::steady_clock::now();
    for (uint32_t id : from_ids) {
      ShardCheckpointer ckpt(dir, id, 1);
      auto path = ckpt.Write(servers[id]->shard().Snapshot());
      auto back = ckpt.LoadLatest();
      if (!path.ok() || !back.ok() || !*back) {
        std::fprintf(stderr, "checkpoint round trip failed\n");
        std::exit(1);
      }
    }
    r.checkpoint_s = Seconds(start);
    std::filesystem::remove_all(dir);
  }

  for (uint32_t id : to_ids)
    if (!servers.count(id)) servers[id] = Start(id, to_ids, 2, true);
  ReshardPlan plan;
  plan.epoch = 2;
  for (uint32_t id : from_ids)
    plan.from.push_back({id, absl::StrCat("127.0.0.1:", servers[id]->port())});
  for (uint32_t id : to_ids)
    plan.to.push_back({id, absl::StrCat("127.0.0.1:", servers[id]->port())});
  const auto start = std::chrono::steady_clock::now();
  auto report = RunReshard(plan, {.token = kToken});
  r.reshard_s = Seconds(start);
  if (!report.ok()) {
    std::fprintf(stderr, "reshard: %s\n", report.status().ToString().c_str());
    std::exit(1);
  }
  r.report = *report;
  for (auto& [id, s] : servers) (void)s->Stop(false);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time of an elastic job's pserver reshard beside a checkpoint round trip"};
  app.name("tandem-bench-pserver-reshard");
  tandem::AddVersionFlag(app, "tandem-bench-pserver-reshard");
  uint64_t rows = 1000000;
  uint32_t dim = 16, to_shards = 3;
  int repeats = 3;
  std::string json_path;
  app.add_option("--rows", rows, "Rows of the sparse table")->check(CLI::Range(1, 1 << 26));
  app.add_option("--dim", dim, "Row width (floats)")->check(CLI::Range(1, 4096));
  app.add_option("--to-shards", to_shards, "Shards after the reshard (from 2)")
      ->check(CLI::Range(1, 16));
  app.add_option("--repeats", repeats, "Measurements (the best is reported)")
      ->check(CLI::Range(1, 100));
  app.add_option("--json", json_path, "Also write the figures as JSON");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  tandem::InitLogging("bench");
  spdlog::set_level(spdlog::level::warn);

  Result best;
  best.reshard_s = best.checkpoint_s = 1e30;
  for (int i = 0; i < repeats; ++i) {
    Result r = RunOnce(rows, dim, to_shards);
    std::printf("repeat %d: reshard %.3f s (begin %.3f, send %.3f, commit %.3f), checkpoint "
                "round trip %.3f s\n",
                i + 1, r.reshard_s, absl::ToDoubleSeconds(r.report.begin),
                absl::ToDoubleSeconds(r.report.send), absl::ToDoubleSeconds(r.report.commit),
                r.checkpoint_s);
    if (r.reshard_s < best.reshard_s) {
      best.reshard_s = r.reshard_s;
      best.report = r.report;
    }
    best.checkpoint_s = std::min(best.checkpoint_s, r.checkpoint_s);
  }
  const auto& rep = best.report;
  const double moved = static_cast<double>(rep.rows_moved) / static_cast<double>(rows);
  uint64_t modulo_moved = 0;  // what the fixed jobs' placement would move, same keys
  const uint64_t salt = TableSalt("emb");
  for (uint64_t k = 0; k < rows; ++k)
    modulo_moved +=
        ShardOfKey(k * 7919 + 13, salt, 2) != ShardOfKey(k * 7919 + 13, salt, to_shards);
  std::printf("table: %llu rows x %u floats (+%u floats of momentum), 2 -> %u shards\n",
              static_cast<unsigned long long>(rows), dim, dim, to_shards);
  std::printf("moved: %llu rows (%.4f of them; rendezvous ideal %.4f, modulo would move %.4f), "
              "%.1f MB\n",
              static_cast<unsigned long long>(rep.rows_moved), moved,
              to_shards > 2 ? (to_shards - 2.0) / to_shards : 0.5,
              static_cast<double>(modulo_moved) / static_cast<double>(rows),
              rep.bytes_moved / 1e6);
  std::printf("best of %d: reshard %.3f s, checkpoint write+read (restart floor) %.3f s, "
              "ratio reshard/checkpoint %.2f\n",
              repeats, best.reshard_s, best.checkpoint_s, best.reshard_s / best.checkpoint_s);
  if (!json_path.empty()) {
    nlohmann::json j = {{"rows", rows},
                        {"dim", dim},
                        {"to_shards", to_shards},
                        {"rows_moved", rep.rows_moved},
                        {"bytes_moved", rep.bytes_moved},
                        {"reshard_seconds", best.reshard_s},
                        {"checkpoint_roundtrip_seconds", best.checkpoint_s}};
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  return 0;
}
