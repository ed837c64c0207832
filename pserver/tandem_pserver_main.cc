// tandem-pserver: serves one parameter-server shard over gRPC.
//
//   tandem-pserver JOB.yaml            a worker's pserver: the worker contract
//                                      (api/worker_contract.h) and the manifest say everything
//   tandem-pserver --port 0 --shard 0 --num-shards 2 --mode async ...   standalone (tests, benches)
//
// In a job (a manifest given) the shard is TANDEM_RANK of TANDEM_WORLD_SIZE, it listens on the
// port of its own TANDEM_PSERVERS entry, and the sync mode, staleness and checkpoint settings
// are the manifest's (spec.sync, spec.checkpoint), read through api/ with the validation every
// binary uses; flags given explicitly override them. The job token is TANDEM_JOB_TOKEN (the
// operator fills it from a Kubernetes Secret). Mutual TLS: TANDEM_TLS_CA/CERT/KEY in a job,
// --tls-dir standalone (docs/pserver.md); without TLS the token is required. --check-contract prints the
// parsed settings and exits. SIGTERM or SIGINT stops serving, writes a final checkpoint (with a
// checkpoint folder) and exits 0. A failed allocation exits 3 (common/out_of_memory.h). Exit codes:
// api/exit_codes.h.
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <string>

#include "api/manifest.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "api/worker_contract.h"
#include "common/cli.h"
#include "common/environment.h"
#include "common/logging.h"
#include "common/metrics_endpoint.h"
#include "nlohmann/json.hpp"
#include "common/out_of_memory.h"
#include "pserver/metrics.h"
#include "pserver/server.h"
#include "trainer/model/trainer_spec.h"

int main(int argc, char** argv) {
  tandem::InstallOutOfMemoryHandler("tandem-pserver");
  CLI::App app{"tandem-pserver: serves one parameter-server shard over gRPC"};
  app.name("tandem-pserver");
  tandem::AddVersionFlag(app, "tandem-pserver");
  tandem::pserver::PServerOptions o;
  std::string job_path;
  int port = 7070;
  int metrics_port = -1;
  int shard = 0;
  int num_shards = 1;
  int trainers = -1;
  std::string mode = "sync";
  int staleness = 4;
  int max_request_mib = 64;
  int barrier_timeout_s = 30;
  bool check_contract = false;
  std::string layout;
  uint64_t layout_epoch = 0;
  bool joining = false;
  std::string tls_dir;
  app.add_option("job", job_path,
                 "TrainingJob manifest: run as a worker's pserver (see the file comment)");
  app.add_option("--host", o.host, "Address to listen on")->capture_default_str();
  auto* port_opt = app.add_option("--port", port,
                 "gRPC port (a job: this shard's entry in $TANDEM_PSERVERS; 0: pick a free one and "
                 "print it)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  auto* shard_opt = app.add_option("--shard", shard, "This shard's index (a job: $TANDEM_RANK)")
      ->check(CLI::Range(0, 1 << 20));
  auto* shards_opt = app.add_option("--num-shards", num_shards,
                 "Number of shards (a job: $TANDEM_WORLD_SIZE)")
      ->check(CLI::Range(1, 1 << 20));
  auto* trainers_opt = app.add_option("--trainers", trainers,
                 "Number of trainers W pushing to this shard (default: --num-shards)")
      ->check(CLI::Range(1, 1 << 20));
  auto* mode_opt = app.add_option("--mode", mode,
                 "sync: apply step t when all W trainers pushed it; async: apply "
                 "on arrival with bounded staleness (a job: spec.sync.mode)")
      ->check(CLI::IsMember({"sync", "async"}))
      ->capture_default_str();
  auto* staleness_opt = app.add_option("--staleness", staleness,
                 "Async: drop a gradient computed on parameters more than this many steps old "
                 "(a job: spec.sync.staleness)")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  auto* dir_opt = app.add_option("--checkpoint-dir", o.checkpoint_dir,
                 "Directory for shard checkpoints (a job: $TANDEM_CHECKPOINT_DIR; empty: none)");
  auto* interval_opt = app.add_option("--checkpoint-interval", o.checkpoint_interval,
                 "Checkpoint every N steps (0: only on SIGTERM and on request); off once "
                 "trainers drive consistent checkpoints (docs/pserver.md; a job: "
                 "spec.checkpoint.intervalSteps)")
      ->capture_default_str();
  auto* keep_opt = app.add_option("--checkpoint-keep", o.checkpoint_keep,
                 "Checkpoints kept per shard (a job: spec.checkpoint.keep)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--max-request-mib", max_request_mib, "Largest request accepted, in MiB")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--barrier-timeout", barrier_timeout_s,
                 "Seconds a sync barrier waits for the other trainers before the client retries")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  auto* metrics_opt = app.add_option("--metrics-port", metrics_port,
                 "Port for /metrics, /healthz, /readyz (a job: $TANDEM_METRICS_PORT; -1: off)")
      ->check(CLI::Range(-1, 65535));
  auto* tls_opt = app.add_option("--tls-dir", tls_dir,
                 "Mutual TLS with the job's ca.crt, tls.crt and tls.key in this folder (a job: "
                 "$TANDEM_TLS_CA, $TANDEM_TLS_CERT, $TANDEM_TLS_KEY); re-read every 60 s");
  app.add_option("--layout", layout,
                 "Elastic jobs: the comma-separated shard ids (worker slots) of the current "
                 "layout; "
                 "--shard is then this shard's id. Rows and blocks are placed by rendezvous "
                 "hashing and move between shards at a reshard (docs/elastic.md); no checkpoints");
  app.add_option("--layout-epoch", layout_epoch, "Elastic jobs: the membership epoch of --layout")
      ->capture_default_str();
  app.add_flag("--joining", joining,
               "Elastic jobs: started for the reshard to --layout at --layout-epoch; serves "
               "nothing until that reshard commits");
  app.add_flag("--check-contract", check_contract,
               "Parse and validate the worker contract and the manifest, print them, exit");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  const tandem::Environment env = tandem::ProcessEnvironment();
  tandem::InitLogging("pserver");

  o.token = tandem::EnvValue(env, tandem::api::kEnvJobToken).value_or("");
  std::string contract_host;  // TANDEM_HOST: only reported (the pserver shares no memory)
  if (!tls_dir.empty()) o.tls = tandem::tls::TlsFiles::InFolder(tls_dir);
  if (!job_path.empty()) {
    auto contract = tandem::api::ParseWorkerContract(tandem::api::WorkerRole::kPServer, job_path, env);
    if (!contract.ok()) {
      std::cerr << "tandem-pserver: " << contract.status().message() << std::endl;
      return tandem::api::kExitInvalid;
    }
    auto job = tandem::api::LoadTrainingJob(job_path, tandem::trainer::TrainerSectionValidators());
    if (!job.ok()) {
      std::cerr << "tandem-pserver: invalid TrainingJob:\n" << job.status().message() << std::endl;
      return tandem::api::kExitInvalid;
    }
    // Explicit flags win over the contract and the manifest.
    if (port_opt->count() == 0) port = contract->pserver_port();
    if (shard_opt->count() == 0) shard = contract->rank;
    if (shards_opt->count() == 0) num_shards = contract->world_size;
    if (trainers_opt->count() == 0) trainers = contract->world_size;
    if (dir_opt->count() == 0) o.checkpoint_dir = contract->checkpoint_dir;
    if (metrics_opt->count() == 0) metrics_port = contract->metrics_port;
    if (mode_opt->count() == 0) mode = job->spec.sync.mode;
    if (staleness_opt->count() == 0) staleness = static_cast<int>(job->spec.sync.staleness);
    if (interval_opt->count() == 0)
      o.checkpoint_interval = static_cast<uint64_t>(job->spec.checkpoint.interval_steps);
    if (keep_opt->count() == 0) o.checkpoint_keep = static_cast<int>(job->spec.checkpoint.keep);
    if (job->spec.publish.has_value() && !o.checkpoint_dir.empty())
      o.publish_dir = tandem::api::PublishDirectory(o.checkpoint_dir, *job->spec.publish);
    o.token = contract->token;
    contract_host = contract->host;
    if (tls_opt->count() == 0) o.tls = contract->tls;
  }
  if (o.token.empty() && !o.tls.enabled()) {
    std::cerr << "tandem-pserver: TANDEM_JOB_TOKEN is not set and TLS is off (--tls-dir, "
                 "TANDEM_TLS_*); every RPC must carry the job's token or certificate, so the "
                 "pserver refuses to start without one"
              << std::endl;
    return tandem::api::kExitInvalid;
  }
  std::vector<uint32_t> members;
  for (absl::string_view id : absl::StrSplit(layout, ',', absl::SkipEmpty())) {
    uint32_t v = 0;
    if (!absl::SimpleAtoi(id, &v)) {
      std::cerr << "tandem-pserver: --layout: \"" << id << "\" is not a shard id" << std::endl;
      return tandem::api::kExitInvalid;
    }
    members.push_back(v);
  }
  if (!members.empty()) {
    num_shards = static_cast<int>(members.size());
    if (std::find(members.begin(), members.end(), static_cast<uint32_t>(shard)) == members.end()) {
      std::cerr << "tandem-pserver: --shard " << shard << " is not in --layout " << layout
                << std::endl;
      return tandem::api::kExitInvalid;
    }
  } else if (joining) {
    std::cerr << "tandem-pserver: --joining needs --layout" << std::endl;
    return tandem::api::kExitInvalid;
  } else if (shard >= num_shards) {
    std::cerr << "tandem-pserver: --shard " << shard << " must be below --num-shards " << num_shards
              << std::endl;
    return tandem::api::kExitInvalid;
  }
  if (check_contract) {
    std::cout << nlohmann::json({{"role", "pserver"},
                                 {"manifest", job_path},
                                 {"port", port},
                                 {"shard", shard},
                                 {"numShards", num_shards},
                                 {"trainers", trainers > 0 ? trainers : num_shards},
                                 {"syncMode", mode},
                                 {"staleness", staleness},
                                 {"checkpointDir", o.checkpoint_dir},
                                 {"checkpointInterval", o.checkpoint_interval},
                                 {"checkpointKeep", o.checkpoint_keep},
                                 {"publishDir", o.publish_dir},
                                 {"metricsPort", metrics_port},
                                 {"tokenBytes", o.token.size()},
                                 {"tlsCa", o.tls.ca_file},
                                 {"tlsCert", o.tls.cert_file},
                                 {"tlsKey", o.tls.key_file},
                                 {"host", contract_host}})
                     .dump()
              << std::endl;
    return 0;
  }
  o.port = port;
  o.shard.shard = static_cast<uint32_t>(shard);
  o.shard.num_shards = static_cast<uint32_t>(num_shards);
  o.shard.members = members;
  o.shard.placement_epoch = layout_epoch;
  o.shard.joining = joining;
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
