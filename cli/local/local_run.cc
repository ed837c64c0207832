#include "cli/local/local_run.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iterator>
#include <fstream>
#include <algorithm>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/local/elastic_coordinator.h"
#include "cli/local/progress.h"
#include "cli/local/report.h"
#include "common/socket.h"
#include "common/job_certificates.h"
#include "common/status.h"

namespace tandem::local {
namespace fs = std::filesystem;

absl::StatusOr<std::string> NewJobToken() {
  unsigned char bytes[24];
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open /dev/urandom");
  ssize_t n = ::read(fd, bytes, sizeof(bytes));
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof(bytes))) return absl::InternalError("short read of /dev/urandom");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 15]);
  }
  return out;
}

LocalJob LocalJobFor(const api::TrainingJob& job, const std::string& manifest_path, int workers) {
  LocalJob lj;
  lj.name = job.metadata.name;
  lj.manifest_path = fs::absolute(manifest_path).string();
  lj.workers = static_cast<int>(workers > 0 ? workers : job.spec.workers.count);
  // threads 0 means "as many as the machine allows": under tandem run the W trainers share this
  // machine's cores, so each gets an equal part (oversubscribing slows every one of them).
  lj.trainer_threads = static_cast<int>(job.spec.trainer.threads);
  if (lj.trainer_threads <= 0) {
    lj.trainer_threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / lj.workers);
  }
  lj.pserver_threads = static_cast<int>(api::EffectiveThreads(job.spec.pserver));
  lj.device = api::SelectTrainerDevice(job.spec);
  // One rule (api::UsesPServers), the operator's too: no pserver where nothing lives on it.
  lj.pservers = api::UsesPServers(job.spec);
  lj.elastic = job.spec.elastic.has_value();
  lj.elastic_pservers = lj.elastic && lj.pservers;
  lj.min_workers = static_cast<int>(std::min<int64_t>(job.spec.workers.min_count, lj.workers));
  lj.max_workers = static_cast<int>(std::max<int64_t>(job.spec.workers.max_count, lj.workers));
  lj.restart.backoff_limit = static_cast<int>(job.spec.restart_policy.backoff_limit);
  lj.restart.backoff_seconds = static_cast<double>(job.spec.restart_policy.backoff_seconds);
  lj.restart.retryable_exit_codes.clear();
  for (int64_t c : job.spec.restart_policy.retryable_exit_codes) {
    lj.restart.retryable_exit_codes.push_back(static_cast<int>(c));
  }
  return lj;
}

absl::StatusOr<tls::TlsFiles> WriteJobCertificates(const std::string& dir, const std::string& job) {
  tls::RotationPolicy policy;
  policy.cert_lifetime = absl::Hours(24 * 365);  // a local run never renews
  TANDEM_ASSIGN_OR_RETURN(tls::JobCertificates certs,
                          tls::CreateJobCertificates(job, absl::Now(), policy));
  return tls::WriteWorkerFiles(dir, certs);
}

std::vector<int> TrainerGpuOrdinals(const LocalJob& job, const Placement* placement) {
  std::vector<int> out;
  std::map<std::string, int> on_host;  // trainers placed so far per host name
  for (int i = 0; i < job.workers; ++i) {
    const std::string host = placement ? placement->worker_host(i).name : "";
    out.push_back(api::TrainerGpuOrdinal(job.device, on_host[host]++));
  }
  return out;
}

std::vector<api::WorkerContract> BuildContracts(const LocalJob& job, const std::string& run_dir,
                                                const std::vector<int>& ports,
                                                const std::string& token, const tls::TlsFiles& tls,
                                                const Placement* placement) {
  const int w = job.workers;
  std::vector<Endpoint> peers, pservers;
  for (int i = 0; i < w; ++i) {
    peers.push_back({placement ? placement->worker_host(i).address : "127.0.0.1", ports[i]});
    pservers.push_back({placement ? placement->pserver_host(i).address : "127.0.0.1", ports[w + i]});
  }
  const std::vector<int> gpu_ordinals = TrainerGpuOrdinals(job, placement);
  std::vector<api::WorkerContract> out;
  for (int i = 0; i < w; ++i) {
    api::WorkerContract c;
    c.manifest_path = job.manifest_path;
    c.job_name = job.name;
    c.rank = i;
    c.world_size = w;
    c.peers = peers;
    if (job.pservers) c.pservers = pservers;  // none: the trainer keeps everything local
    c.token = token;
    c.tls = tls;
    api::WorkerContract ps = c;
    ps.role = api::WorkerRole::kPServer;
    ps.checkpoint_dir = absl::StrCat(run_dir, "/checkpoints/pserver-", i);
    ps.metrics_port = ports[3 * w + i];
    ps.threads = job.pserver_threads;
    if (placement) ps.host = placement->pserver_host(i).name;
    if (job.pservers) out.push_back(std::move(ps));
    c.role = api::WorkerRole::kTrainer;
    c.checkpoint_dir = absl::StrCat(run_dir, "/checkpoints/trainer-", i);
    c.output_dir = run_dir + "/model";
    c.metrics_port = ports[2 * w + i];
    c.threads = job.trainer_threads;
    c.events = true;
    // What a pod's trainer leaves for the kubelet (api/worker_result.h), beside its log.
    c.termination_log = absl::StrCat(run_dir, "/logs/trainer-", i, ".result.json");
    if (placement) c.host = placement->worker_host(i).name;
    c.gpu_ordinal = gpu_ordinals[static_cast<size_t>(i)];
    out.push_back(std::move(c));
  }
  return out;
}

namespace {

// The supervised process of worker `worker` that contract `c` describes: `prefix` (a placement
// host's exec prefix), then the binary and its arguments, and its environment, as the contract
// renders them (api/worker_contract.h: one rendering for `tandem run` and the operator's pods).
SupervisedProcess ProcessFor(const api::WorkerContract& c, int worker, const std::string& bin_dir,
                             std::vector<std::string> prefix = {}) {
  SupervisedProcess p;
  p.role = c.role == api::WorkerRole::kTrainer ? Role::kTrainer : Role::kPServer;
  p.worker = worker;
  p.spec.name = absl::StrCat("worker-", worker, "/", api::RoleName(c.role));
  api::WorkerInvocation inv = api::RenderWorker(c, bin_dir);
  p.spec.argv = std::move(prefix);
  p.spec.argv.insert(p.spec.argv.end(), std::make_move_iterator(inv.argv.begin()),
                     std::make_move_iterator(inv.argv.end()));
  for (api::EnvVar& e : inv.env) p.spec.env.emplace_back(std::move(e.name), std::move(e.value));
  return p;
}

}  // namespace

std::vector<SupervisedProcess> BuildProcesses(const LocalJob& job, const LocalRunOptions& options,
                                              const std::string& run_dir,
                                              const std::vector<int>& ports,
                                              const std::string& token, const tls::TlsFiles& tls) {
  std::vector<SupervisedProcess> out;
  const Placement* placement = options.placement ? &*options.placement : nullptr;
  for (const api::WorkerContract& c : BuildContracts(job, run_dir, ports, token, tls, placement)) {
    const bool trainer = c.role == api::WorkerRole::kTrainer;
    std::vector<std::string> prefix;
    if (placement)
      prefix = (trainer ? placement->worker_host(c.rank) : placement->pserver_host(c.rank)).exec;
    SupervisedProcess p = ProcessFor(c, c.rank, options.bin_dir, std::move(prefix));
    if (trainer)
      p.spec.argv.insert(p.spec.argv.end(), options.trainer_args.begin(), options.trainer_args.end());
    out.push_back(std::move(p));
  }
  return out;
}

SupervisedProcess BuildElasticTrainer(const LocalJob& job, const LocalRunOptions& options,
                                      const std::string& run_dir, const std::vector<int>& ports,
                                      const api::Membership& membership, int slot,
                                      const std::string& token, const tls::TlsFiles& tls) {
  const Endpoint self{"127.0.0.1", ports[static_cast<size_t>(slot)]};
  api::WorkerContract c;
  c.role = api::WorkerRole::kTrainer;
  c.manifest_path = job.manifest_path;
  c.job_name = job.name;
  c.rank = membership.RankOf(self);
  c.world_size = membership.world_size();
  c.peers = membership.peers;
  c.token = token;
  c.tls = tls;
  c.checkpoint_dir = absl::StrCat(run_dir, "/checkpoints/trainer-", slot);
  c.output_dir = run_dir + "/model";
  c.metrics_port = ports[static_cast<size_t>(job.max_workers + slot)];
  c.threads = job.trainer_threads;
  c.events = true;
  c.membership_file = absl::StrCat(run_dir, "/", kMembershipFile);
  c.gpu_ordinal = api::TrainerGpuOrdinal(job.device, slot);  // one machine: slot = local rank
  for (const api::PServerShard& s : membership.pservers) c.pservers.push_back(s.endpoint);
  return ProcessFor(c, slot, options.bin_dir);
}

SupervisedProcess BuildElasticPServer(const LocalJob& job, const LocalRunOptions& options,
                                      const std::vector<int>& ports,
                                      const api::Membership& membership, int slot, bool joining,
                                      const std::string& token, const tls::TlsFiles& tls) {
  const size_t max = static_cast<size_t>(job.max_workers);
  api::WorkerContract c;
  c.role = api::WorkerRole::kPServer;
  c.manifest_path = job.manifest_path;
  c.job_name = job.name;
  c.rank = slot;  // TANDEM_PSERVERS holds every slot's endpoint: its own is entry `slot`
  c.world_size = job.max_workers;
  for (size_t i = 0; i < max; ++i) c.pservers.push_back({"127.0.0.1", ports[2 * max + i]});
  c.token = token;
  c.tls = tls;
  c.metrics_port = ports[3 * max + static_cast<size_t>(slot)];
  c.threads = job.pserver_threads;
  SupervisedProcess p = ProcessFor(c, slot, options.bin_dir);
  std::string layout;
  for (const api::PServerShard& s : membership.pservers)
    absl::StrAppend(&layout, layout.empty() ? "" : ",", s.slot);
  for (std::string arg : {std::string("--layout"), layout, std::string("--layout-epoch"),
                          std::to_string(membership.pserver_epoch), std::string("--shard"),
                          std::to_string(slot), std::string("--trainers"),
                          std::to_string(membership.world_size())})
    p.spec.argv.push_back(std::move(arg));
  if (joining) p.spec.argv.push_back("--joining");
  return p;
}

absl::StatusOr<std::string> RequestResize(const std::string& run_dir, int workers,
                                          double timeout_s) {
  if (!fs::exists(fs::path(run_dir) / kMembershipFile))
    return absl::NotFoundError(absl::StrCat(
        run_dir, " is not the run folder of an elastic job (no ", kMembershipFile,
        "): only jobs with spec.elastic can be resized"));
  const fs::path request = fs::path(run_dir) / kResizeRequestFile;
  const fs::path result = fs::path(run_dir) / kResizeResultFile;
  std::error_code ec;
  fs::remove(result, ec);
  {
    const std::string temp = request.string() + ".tmp";
    std::ofstream(temp) << nlohmann::json({{"workers", workers}}).dump() << '\n';
    fs::rename(temp, request, ec);
    if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot write ", request.string(), ": ", ec.message()));
  }
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(result);
    if (in) {
      nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (j.is_object()) {
        const std::string message = j.value("message", "");
        if (j.value("ok", false)) return message;
        return absl::FailedPreconditionError(message);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  fs::remove(request, ec);
  return absl::DeadlineExceededError(absl::StrCat(
      "no answer from the run in ", run_dir, " within ", timeout_s, " s: is it still running?"));
}

LocalRun::LocalRun(LocalJob job, LocalRunOptions options)
    : job_(std::move(job)), options_(std::move(options)) {}

void LocalRun::Stop() {
  Supervisor* s = supervisor_.load();
  if (s != nullptr) {
    s->RequestStop();
  } else {
    early_stops_.fetch_add(1);
  }
}

namespace {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string DefaultRunDir(const std::string& name) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return absl::StrCat("runs/", name, "-", buf);
}

namespace {

// A GPU job's trainers would each fail on a machine without their GPU, one after the other and
// amid the pservers' start: ask `tandem-trainer --check-device` (the trainer's own way of opening
// its device, so the rule and the message are the trainer's) once per GPU the job needs, first.
absl::Status CheckTrainerGpus(const LocalJob& job, const LocalRunOptions& options) {
  std::vector<int> ordinals = job.elastic ? std::vector<int>{} :
      TrainerGpuOrdinals(job, options.placement ? &*options.placement : nullptr);
  if (job.elastic)
    for (int slot = 0; slot < job.max_workers; ++slot)
      ordinals.push_back(api::TrainerGpuOrdinal(job.device, slot));
  std::sort(ordinals.begin(), ordinals.end());
  ordinals.erase(std::unique(ordinals.begin(), ordinals.end()), ordinals.end());
  for (int ordinal : ordinals) {
    ProcessSpec spec;
    spec.name = absl::StrCat("gpu-check-", ordinal);
    spec.argv = {options.bin_dir.empty() ? std::string(api::kTrainerBinary)
                                         : absl::StrCat(options.bin_dir, "/", api::kTrainerBinary),
                 "--check-device", job.manifest_path};
    spec.env = {{api::kEnvGpuOrdinal, std::to_string(ordinal)}};
    ChildProcess child;
    TANDEM_RETURN_IF_ERROR(child.Start(spec), "checking the trainers' GPU");
    std::vector<std::string> lines;
    int code = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (!child.Poll(&code)) {
      child.ReadOutput(&lines);
      if (std::chrono::steady_clock::now() > deadline)
        return absl::DeadlineExceededError(absl::StrCat(
            api::kTrainerBinary, " --check-device did not answer within 2 minutes (GPU ", ordinal,
            ")"));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    while (child.ReadOutput(&lines)) {}
    if (code != 0) {
      std::string why;
      for (const std::string& l : lines)
        if (l.rfind("tandem-trainer: ", 0) == 0) absl::StrAppend(&why, why.empty() ? "" : "; ", l.substr(16));
      if (why.empty()) why = lines.empty() ? "no output" : lines.back();
      return absl::FailedPreconditionError(absl::StrCat(
          "the job's trainers train on GPUs, and this machine cannot give one its GPU ", ordinal,
          " (", api::kTrainerBinary, " --check-device exited ", code, "): ", why));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LocalRunResult> LocalRun::Run(std::FILE* out) {
  const auto start = std::chrono::steady_clock::now();
  if (job_.device.kind == api::TrainerDeviceKind::kCuda)
    TANDEM_RETURN_IF_ERROR(CheckTrainerGpus(job_, options_));
  std::string run_dir = options_.run_dir.empty()
                            ? DefaultRunDir(job_.name)
                            : options_.run_dir;
  std::error_code ec;
  for (const char* sub : {"logs", "checkpoints", "model"}) {
    fs::create_directories(fs::path(run_dir) / sub, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create run folder ", run_dir, "/", sub, ": ", ec.message()));
    }
  }
  run_dir = fs::absolute(run_dir).lexically_normal().string();
  fs::copy_file(job_.manifest_path, fs::path(run_dir) / "job.yaml",
                fs::copy_options::overwrite_existing, ec);

  TANDEM_ASSIGN_OR_RETURN(
      std::vector<int> ports,
      net::PickFreeLoopbackPorts(job_.elastic ? (job_.elastic_pservers ? 4 : 2) * job_.max_workers
                                              : 4 * job_.workers));
  TANDEM_ASSIGN_OR_RETURN(std::string token, NewJobToken());
  TANDEM_ASSIGN_OR_RETURN(tls::TlsFiles tls, WriteJobCertificates(run_dir + "/tls", job_.name));
  std::unique_ptr<ElasticCoordinator> elastic;
  std::vector<SupervisedProcess> procs;
  if (job_.elastic) {
    std::vector<Endpoint> slots, pserver_slots;
    for (int i = 0; i < job_.max_workers; ++i) {
      slots.push_back({"127.0.0.1", ports[static_cast<size_t>(i)]});
      if (job_.elastic_pservers)
        pserver_slots.push_back(
            {"127.0.0.1", ports[static_cast<size_t>(2 * job_.max_workers + i)]});
    }
    elastic = std::make_unique<ElasticCoordinator>(
        ElasticCoordinatorOptions{.membership_path = absl::StrCat(run_dir, "/", kMembershipFile),
                                  .min_workers = job_.min_workers,
                                  .max_workers = job_.max_workers,
                                  .pserver_slots = pserver_slots},
        slots, job_.workers);
    std::error_code rm;
    fs::remove(fs::path(run_dir) / kResizeRequestFile, rm);
    TANDEM_RETURN_IF_ERROR(elastic->Start());
    for (int i = 0; i < job_.workers; ++i) {
      if (job_.elastic_pservers)
        procs.push_back(BuildElasticPServer(job_, options_, ports, elastic->membership(), i,
                                            /*joining=*/false, token, tls));
      procs.push_back(BuildElasticTrainer(job_, options_, run_dir, ports, elastic->membership(), i,
                                          token, tls));
    }
  } else {
    procs = BuildProcesses(job_, options_, run_dir, ports, token, tls);
  }

  std::map<std::string, std::unique_ptr<std::ofstream>> logs;
  for (const auto& p : procs) {
    std::string file = p.spec.name;
    std::replace(file.begin(), file.end(), '/', '-');
    logs[p.spec.name] = std::make_unique<std::ofstream>(run_dir + "/logs/" + file + ".log",
                                                        std::ios::app);
  }
  std::ofstream metrics(run_dir + "/metrics.jsonl", std::ios::app);

  std::fprintf(out, "tandem run: job %s, %d worker%s (%s); run folder %s\n", job_.name.c_str(),
               job_.workers, job_.workers == 1 ? "" : "s",
               job_.elastic || job_.pservers ? "trainer + pserver each"
                                             : "a trainer each; no pserver: nothing lives on one",
               run_dir.c_str());
  if (options_.placement) {
    for (int i = 0; i < job_.workers; ++i) {
      const PlacementHost& t = options_.placement->worker_host(i);
      const PlacementHost& ps = options_.placement->pserver_host(i);
      std::fprintf(out, "tandem run: worker %d: trainer on %s (%s:%d), pserver on %s (%s:%d)\n", i,
                   t.name.c_str(), t.address.c_str(), ports[i], ps.name.c_str(),
                   ps.address.c_str(), ports[job_.workers + i]);
    }
  }
  std::fflush(out);

  ProgressTracker tracker;
  Supervisor* running = nullptr;  // set before it runs; the callbacks below use it
  std::vector<nlohmann::json> resizes;  // the trainers' `resized` events
  std::vector<nlohmann::json> reshards;  // elastic with pservers: rank 0's `resharded` events
  std::map<int, int64_t> final_epochs;  // elastic: by slot, the epoch of its summary event
  ProgressDisplay display(out, options_.tty);
  SupervisorCallbacks cb;
  cb.on_line = [&](const SupervisedProcess& p, const std::string& line) {
    auto& log_ptr = logs[p.spec.name];
    if (log_ptr == nullptr) {  // a worker an elastic job added
      std::string file = p.spec.name;
      std::replace(file.begin(), file.end(), '/', '-');
      log_ptr = std::make_unique<std::ofstream>(run_dir + "/logs/" + file + ".log", std::ios::app);
    }
    auto& log = *log_ptr;
    log << line << '\n' << std::flush;  // followable live (tail -f)
    if (auto event = ParseEventLine(line)) {
      if (p.role == Role::kTrainer) {
        tracker.OnEvent(p.worker, *event);
        nlohmann::json rec = *event;
        rec["worker"] = p.worker;
        rec["time"] = NowSeconds();
        metrics << rec.dump() << '\n' << std::flush;
        if ((*event)["event"] == "summary" && elastic != nullptr)
          final_epochs[p.worker] = event->value("epoch", int64_t{-1});
        if ((*event)["event"] == "ready" && elastic != nullptr) {
          auto published = elastic->OnReady(p.worker);
          if (!published.ok()) {
            display.Log(absl::StrCat("[tandem] elastic: ", published.status().message()));
          } else if (*published) {
            display.Log(absl::StrCat("[tandem] membership epoch ", elastic->membership().epoch,
                                     ": ", elastic->membership().reason));
          }
        }
        if ((*event)["event"] == "resized") {
          display.Log(absl::StrCat("[", p.spec.name, "] resized ", event->value("from", 0), " -> ",
                                   event->value("to", 0), " trainers at step ",
                                   event->value("step", 0), " (paused ",
                                   absl::StrFormat("%.2f", event->value("pauseSeconds", 0.0)),
                                   " s)"));
          resizes.push_back(rec);
        }
        if ((*event)["event"] == "resharded" && elastic != nullptr) {
          // The shards that left the layout handed everything off: they may stop now.
          display.Log(absl::StrCat(
              "[", p.spec.name, "] resharded the pservers to layout epoch ",
              event->value("layoutEpoch", int64_t{0}), ": ", event->value("rowsMoved", int64_t{0}),
              " rows moved, ", event->value("rowsKept", int64_t{0}), " kept (",
              absl::StrFormat("%.2f", event->value("seconds", 0.0)), " s)"));
          reshards.push_back(rec);
          if (event->contains("left") && (*event)["left"].is_array())
            for (const auto& slot : (*event)["left"])
              if (slot.is_number_integer())
                running->StopProcess(absl::StrCat("worker-", slot.get<int>(), "/pserver"));
        }
        if ((*event)["event"] == "resumed") {
          display.Log(absl::StrCat("[", p.spec.name, "] resumed from checkpoint at step ",
                                   event->value("step", 0), ", ", event->value("lostSteps", 0),
                                   " steps lost"));
        }
        display.Update(tracker.Aggregate());
      }
      return;
    }
    // On a terminal, the bar shows progress and only warnings and errors are echoed (the full
    // output is in the logs); otherwise every line is streamed with its prefix.
    bool important = line.find(" W [") != std::string::npos ||
                     line.find(" E [") != std::string::npos ||
                     line.find(" C [") != std::string::npos;
    if (!options_.tty || options_.verbose || important) {
      display.Log(absl::StrCat("[", p.spec.name, "] ", line));
    }
  };
  cb.on_event = [&](const std::string& e) {
    display.Log(absl::StrCat("[tandem] ", e));
    metrics << nlohmann::json({{"event", "supervisor"}, {"message", e}, {"time", NowSeconds()}})
                   .dump()
            << '\n' << std::flush;  // followable live, like the trainers' events
  };

  SupervisorOptions sopts;
  sopts.restart = job_.restart;
  sopts.live_cpu_seconds = &cpu_seconds_;
  sopts.stop_grace_seconds = options_.stop_grace_seconds;
  if (elastic != nullptr) {
    // `tandem resize`: a request file in the run folder, answered with a result file.
    cb.on_tick = [&] {
      const fs::path request = fs::path(run_dir) / kResizeRequestFile;
      std::ifstream in(request);
      if (!in) return;
      nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      in.close();
      std::error_code rm;
      fs::remove(request, rm);
      nlohmann::json answer;
      if (!j.is_object() || !j.contains("workers") || !j["workers"].is_number_integer()) {
        answer = {{"ok", false}, {"message", absl::StrCat(kResizeRequestFile, ": expected {\"workers\": N}")}};
      } else {
        auto change = elastic->Resize(j["workers"].get<int>(), "tandem resize");
        if (!change.ok()) {
          answer = {{"ok", false}, {"message", std::string(change.status().message())}};
        } else if (!change->changed && !change->pending) {
          answer = {{"ok", true}, {"message", absl::StrCat("already ", change->to, " workers")}};
        } else {
          cb.on_event(change->pending
                          ? absl::StrCat(change->reason, ": starting ", change->started.size(),
                                         " trainers; the new epoch follows once they are ready")
                          : absl::StrCat("membership epoch ", elastic->membership().epoch, ": ",
                                         change->reason));
          for (int slot : change->removed) tracker.Forget(slot);
          absl::Status started = absl::OkStatus();
          for (int slot : change->started) {
            // The new shard first (joining: it serves nothing until the reshard's commit).
            if (job_.elastic_pservers)
              started.Update(running->AddProcess(BuildElasticPServer(
                  job_, options_, ports, elastic->Planned(), slot, /*joining=*/true, token, tls)));
            started.Update(running->AddProcess(BuildElasticTrainer(
                job_, options_, run_dir, ports, elastic->Planned(), slot, token, tls)));
          }
          answer = {{"ok", started.ok()},
                    {"message", started.ok() ? (change->pending
                                                    ? absl::StrCat(change->reason, " (starting ",
                                                                   change->started.size(),
                                                                   " trainers)")
                                                    : absl::StrCat(change->reason, " (epoch ",
                                                                   elastic->membership().epoch, ")"))
                                             : std::string(started.message())}};
        }
      }
      const std::string result = (fs::path(run_dir) / kResizeResultFile).string();
      std::ofstream(result + ".tmp") << answer.dump() << '\n';
      fs::rename(result + ".tmp", result, rm);
    };
    cb.on_exit = [&](const SupervisedProcess& p, int code, bool restartable) {
      if (p.role != Role::kTrainer) {
        if (!job_.elastic_pservers) return ExitAction::kPolicy;
        // Stopped shards (left the layout, or the job's end) do not come here.
        cb.on_event(absl::StrCat(p.spec.name, " exited with code ", code, ": an elastic shard's "
                                 "rows are neither replicated nor checkpointed, so the job "
                                 "cannot go on without losing them"));
        return ExitAction::kFail;
      }
      if (code == 0) {  // finished, or left at a boundary
        elastic->MarkStopped(p.worker);
        if (!elastic->IsMember(p.worker)) {
          tracker.Forget(p.worker);
        } else {
          // The job is over. Trainers getting ready for a grow, or made members in an epoch
          // this one never entered (it was in its last steps), have no ring to join: they hold
          // no state yet, so they are killed.
          std::vector<int> stuck = elastic->CancelGrow();
          if (auto it = final_epochs.find(p.worker); it != final_epochs.end() && it->second >= 0)
            for (int slot : elastic->JoinedAfter(it->second)) stuck.push_back(slot);
          for (int slot : stuck) {
            cb.on_event(absl::StrCat("the job finished before worker-", slot,
                                     "/trainer could join: not growing"));
            elastic->Abandon(slot);
            running->StopProcess(absl::StrCat("worker-", slot, "/trainer"), SIGKILL);
            if (job_.elastic_pservers)
              running->StopProcess(absl::StrCat("worker-", slot, "/pserver"));
          }
        }
        return ExitAction::kPolicy;
      }
      auto decision = elastic->OnTrainerFailed(p.worker, code, restartable);
      if (!decision.ok()) {
        cb.on_event(absl::StrCat("elastic: ", decision.status().message()));
        return ExitAction::kPolicy;
      }
      if (*decision == ExitDecision::kFail && elastic->has_pservers()) {
        cb.on_event(absl::StrCat(
            p.spec.name, " exited with code ", code, ": with tables on the pservers a lost "
            "worker cannot be recovered in place (the step in flight is spread over shards that "
            "are neither replicated nor checkpointed); the job fails instead of training on with "
            "rows lost (docs/elastic.md)"));
        return ExitAction::kFail;
      }
      if (*decision == ExitDecision::kRetire && elastic->has_pservers())
        running->StopProcess(absl::StrCat("worker-", p.worker, "/pserver"));  // a grow called off
      if (*decision == ExitDecision::kRetire) {
        tracker.Forget(p.worker);
        cb.on_event(absl::StrCat("membership epoch ", elastic->membership().epoch, ": ",
                                 elastic->membership().reason));
        return ExitAction::kRetire;
      }
      if (*decision == ExitDecision::kRestart && code != kExitPeerFailure)
        cb.on_event(absl::StrCat("membership epoch ", elastic->membership().epoch, ": ",
                                 elastic->membership().reason));
      return ExitAction::kPolicy;
    };
  }
  Supervisor supervisor(std::move(procs), sopts, cb);
  running = &supervisor;
  supervisor_.store(&supervisor);
  if (early_stops_.load() > 0) supervisor.RequestStop();
  RunResult run = supervisor.Run();
  supervisor_.store(nullptr);
  display.Finish();
  for (auto& [name, log] : logs) log->flush();
  metrics.close();  // report.html below reads metrics.jsonl back: every buffered event must be in it

  LocalRunResult result;
  result.run = run;
  result.run_dir = run_dir;
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.cpu_s = supervisor.ReapedCpuSeconds();
  cpu_seconds_.store(result.cpu_s);
  result.lost_steps = tracker.lost_steps();
  result.summary = tracker.summary().is_null() ? nlohmann::json::object() : tracker.summary();
  result.summary.erase("event");
  result.summary["wall_s"] = result.wall_s;
  result.summary["cpu_s"] = result.cpu_s;
  result.summary["restarts"] = run.restarts;
  result.summary["lost_steps"] = result.lost_steps;
  result.summary["workers"] = elastic ? elastic->membership().world_size() : job_.workers;
  if (elastic) result.summary["resizes"] = resizes;
  if (elastic && job_.elastic_pservers) result.summary["reshards"] = reshards;
  result.summary["succeeded"] = run.succeeded;
  std::ofstream(run_dir + "/summary.json") << result.summary.dump(2) << '\n';
  if (absl::Status r = WriteRunReport(run_dir); !r.ok()) std::fprintf(out, "tandem run: %s\n", r.ToString().c_str());
  return result;
}

}  // namespace tandem::local
