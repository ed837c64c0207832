// tandem-pserver: serves one parameter-server shard over gRPC.
//
// The job token comes from TANDEM_JOB_TOKEN (the operator fills it from a Kubernetes Secret);
// flags default from the environment a Tandem worker receives. SIGTERM or SIGINT stops serving,
// writes a final checkpoint (with --checkpoint-dir) and exits 0. A failed allocation exits 3
// (common/out_of_memory.h: not retried by the default restart policy).
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/metrics_endpoint.h"
#include "common/out_of_memory.h"
#include "pserver/metrics.h"
#include "pserver/server.h"

namespace {

std::string Env(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

int EnvInt(const char* name, int fallback) {
  int v = 0;
  return absl::SimpleAtoi(Env(name), &v) ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  tandem::InstallOutOfMemoryHandler("tandem-pserver");
  CLI::App app{"tandem-pserver: serves one parameter-server shard over gRPC"};
  app.name("tandem-pserver");
  tandem::AddVersionFlag(app, "tandem-pserver");
  tandem::pserver::PServerOptions o;
  int port = 7070;
  int metrics_port = EnvInt("TANDEM_METRICS_PORT", -1);
  int shard = EnvInt("TANDEM_RANK", 0);
  int num_shards = EnvInt("TANDEM_WORLD_SIZE", 1);
  // In a job, TANDEM_PSERVERS lists every shard's host:port in shard order: this shard listens on
  // the port of its own entry, and the list's length is the shard count.
  const std::vector<std::string> pservers =
      absl::StrSplit(Env("TANDEM_PSERVERS"), ',', absl::SkipEmpty());
  if (!pservers.empty()) {
    num_shards = static_cast<int>(pservers.size());
    if (shard >= 0 && shard < num_shards) {
      const std::string& mine = pservers[shard];
      int p = 0;
      if (absl::SimpleAtoi(mine.substr(mine.rfind(':') + 1), &p)) port = p;
    }
  }
  int trainers = -1;
  std::string mode = "sync";
  int staleness = 4;
  int max_request_mib = 64;
  int barrier_timeout_s = 30;
  o.checkpoint_dir = Env("TANDEM_CHECKPOINT_DIR");
  app.add_option("--host", o.host, "Address to listen on")->capture_default_str();
  app.add_option("--port", port,
                 "gRPC port (default: this shard's entry in $TANDEM_PSERVERS, else 7070; 0: pick a "
                 "free one and print it)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--shard", shard, "This shard's index (default $TANDEM_RANK)")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--num-shards", num_shards,
                 "Number of shards (default: entries in $TANDEM_PSERVERS, else $TANDEM_WORLD_SIZE)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--trainers", trainers,
                 "Number of trainers W pushing to this shard (default: --num-shards)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--mode", mode,
                 "sync: apply step t when all W trainers pushed it; async: apply "
                 "on arrival with bounded staleness")
      ->check(CLI::IsMember({"sync", "async"}))
      ->capture_default_str();
  app.add_option("--staleness", staleness,
                 "Async: drop a gradient computed on parameters more than this many steps old")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  app.add_option("--checkpoint-dir", o.checkpoint_dir,
                 "Directory for shard checkpoints (default $TANDEM_CHECKPOINT_DIR; empty: none)");
  app.add_option("--checkpoint-interval", o.checkpoint_interval,
                 "Checkpoint every N steps (0: only on SIGTERM and on request); off once "
                 "trainers drive consistent checkpoints (docs/pserver.md)")
      ->capture_default_str();
  app.add_option("--checkpoint-keep", o.checkpoint_keep, "Checkpoints kept per shard")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--max-request-mib", max_request_mib, "Largest request accepted, in MiB")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--barrier-timeout", barrier_timeout_s,
                 "Seconds a sync barrier waits for the other trainers before the client retries")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--metrics-port", metrics_port,
                 "Port for /metrics, /healthz, /readyz (default $TANDEM_METRICS_PORT; -1: off)")
      ->check(CLI::Range(-1, 65535));
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  tandem::InitLogging("pserver");

  o.token = Env("TANDEM_JOB_TOKEN");
  if (o.token.empty()) {
    std::cerr << "tandem-pserver: TANDEM_JOB_TOKEN is not set; every RPC must carry the job's "
                 "token, so the pserver refuses to start without one"
              << std::endl;
    return tandem::kExitUsage;
  }
  if (shard >= num_shards) {
    std::cerr << "tandem-pserver: --shard " << shard << " must be below --num-shards " << num_shards
              << std::endl;
    return tandem::kExitUsage;
  }
  o.port = port;
  o.shard.shard = static_cast<uint32_t>(shard);
  o.shard.num_shards = static_cast<uint32_t>(num_shards);
  o.shard.num_trainers = static_cast<uint32_t>(trainers > 0 ? trainers : num_shards);
  o.shard.sync = mode == "sync";
  o.shard.staleness = static_cast<uint64_t>(staleness);
  o.max_request_bytes = static_cast<size_t>(max_request_mib) << 20;
  o.barrier_timeout = absl::Seconds(barrier_timeout_s);

  // Signals are taken synchronously by this thread; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  tandem::pserver::PServerMetrics::Get();
  tandem::HealthState health;
  tandem::MetricsEndpoint endpoint(tandem::metrics::Registry::Default(), &health);
  if (absl::Status s = endpoint.Start("0.0.0.0", metrics_port); !s.ok()) {
    TANDEM_LOG(error, "metrics endpoint: {}", s.ToString());
    return 1;
  }
  auto server = tandem::pserver::PServer::Start(o);
  if (!server.ok()) {
    TANDEM_LOG(error, "cannot start shard {}: {}", shard, server.status().ToString());
    return 1;
  }
  health.SetReady(true);
  // One line on stdout that scripts and tests can wait for.
  std::cout << "tandem-pserver: shard " << shard << " listening on port " << (*server)->port();
  if (metrics_port >= 0) std::cout << " metrics port " << endpoint.port();
  std::cout << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  TANDEM_LOG(info, "signal {}: stopping shard {}", sig, shard);
  health.SetReady(false, "stopping");
  absl::Status stopped = (*server)->Stop(/*final_checkpoint=*/true);
  endpoint.Stop();
  if (!stopped.ok()) {
    TANDEM_LOG(error, "final checkpoint failed: {}", stopped.ToString());
    return 1;
  }
  return 0;
}
