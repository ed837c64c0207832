#include "api/worker_contract.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::api {

const char* RoleName(WorkerRole role) { return role == WorkerRole::kTrainer ? "trainer" : "pserver"; }

absl::Status ValidateWorkerContract(const WorkerContract& c) {
  const bool trainer = c.role == WorkerRole::kTrainer;
  if (c.manifest_path.empty())
    return absl::InvalidArgumentError("a TrainingJob manifest is required (the first argument)");
  if (c.world_size < 1)
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvWorldSize, "=", c.world_size, ": must be >= 1"));
  if (c.rank < 0 || c.rank >= c.world_size)
    return absl::InvalidArgumentError(absl::StrCat(kEnvRank, "=", c.rank, ": must be in [0, ",
                                                   kEnvWorldSize, "=", c.world_size, ")"));
  if (trainer && c.world_size > 1 && static_cast<int>(c.peers.size()) != c.world_size)
    return absl::InvalidArgumentError(absl::StrCat(kEnvPeers, ": has ", c.peers.size(), " entries, ",
                                                   kEnvWorldSize, " is ", c.world_size));
  if (!c.pservers.empty() && static_cast<int>(c.pservers.size()) != c.world_size)
    return absl::InvalidArgumentError(absl::StrCat(kEnvPServers, ": has ", c.pservers.size(),
                                                   " entries, ", kEnvWorldSize, " is ", c.world_size,
                                                   " (one shard per worker)"));
  if (!trainer && c.pservers.empty())
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvPServers, ": required (the pserver listens on its own entry's port)"));
  const std::pair<const char*, const std::string*> tls_files[] = {
      {kEnvTlsCa, &c.tls.ca_file}, {kEnvTlsCert, &c.tls.cert_file}, {kEnvTlsKey, &c.tls.key_file}};
  if (c.tls.enabled())
    for (const auto& [name, file] : tls_files)
      if (file->empty())
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": required with the other TLS files (", kEnvTlsCa, ", ", kEnvTlsCert, ", ",
            kEnvTlsKey, ": all three or none)"));
  if (c.token.empty() && !c.tls.enabled() && (!trainer || !c.pservers.empty()))
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvJobToken, ": required: every pserver request carries the job's token "
                                   "(or give ", kEnvTlsCa, ", ", kEnvTlsCert, " and ", kEnvTlsKey,
                     " for mutual TLS)"));
  if (c.metrics_port < -1 || c.metrics_port > 65535)
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvMetricsPort, "=", c.metrics_port, ": must be in [-1, 65535]"));
  if (c.threads < 0 || c.threads > 1024)
    return absl::InvalidArgumentError(absl::StrCat(kEnvThreads, "=", c.threads, ": must be in [0, 1024]"));
  if (!trainer && (!c.output_dir.empty() || c.events || !c.termination_log.empty() ||
                   !c.membership_file.empty() || c.gpu_ordinal >= 0))
    return absl::InvalidArgumentError(absl::StrCat(kEnvOutputDir, ", ", kEnvEvents, ", ", kEnvTerminationLog,
                                                   ", ", kEnvGpuOrdinal, " and ", kEnvMembership,
                                                   " are the trainer's, not the pserver's"));
  if (c.host.size() > 63 ||
      c.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos)
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvHost, "='", c.host, "': at most 63 characters of [A-Za-z0-9._-]"));
  if (c.gpu_ordinal < -1 || c.gpu_ordinal > 1023)
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvGpuOrdinal, "=", c.gpu_ordinal, ": must be in [0, 1023]"));
  if (!c.membership_file.empty() && c.peers.empty())
    return absl::InvalidArgumentError(
        absl::StrCat(kEnvMembership, ": an elastic trainer needs ", kEnvPeers,
                     " (its own entry is how the membership names it)"));
  return absl::OkStatus();
}

WorkerInvocation RenderWorker(const WorkerContract& c, const std::string& bin_dir) {
  const bool trainer = c.role == WorkerRole::kTrainer;
  const std::string binary = trainer ? kTrainerBinary : kPServerBinary;
  WorkerInvocation inv;
  inv.argv = {bin_dir.empty() ? binary : absl::StrCat(bin_dir, "/", binary), c.manifest_path};
  auto add = [&](const char* name, std::string value) { inv.env.push_back({name, std::move(value)}); };
  add(kEnvJobName, c.job_name);
  add(kEnvRank, std::to_string(c.rank));
  add(kEnvWorldSize, std::to_string(c.world_size));
  add(kEnvPeers, EndpointListToString(c.peers));
  // A trainer of a job without pservers (api::UsesPServers) gets no TANDEM_PSERVERS at all, the
  // same under `tandem run` and in the operator's pods.
  if (!c.pservers.empty()) add(kEnvPServers, EndpointListToString(c.pservers));
  add(kEnvJobToken, c.token);
  add(kEnvTlsCa, c.tls.ca_file);
  add(kEnvTlsCert, c.tls.cert_file);
  add(kEnvTlsKey, c.tls.key_file);
  add(kEnvCheckpointDir, c.checkpoint_dir);
  add(kEnvMetricsPort, std::to_string(c.metrics_port));
  add(kEnvThreads, std::to_string(c.threads));
  if (c.threads > 0) add(kEnvOmpThreads, std::to_string(c.threads));
  if (!c.host.empty()) add(kEnvHost, c.host);
  if (trainer) {
    add(kEnvOutputDir, c.output_dir);
    add(kEnvEvents, c.events ? "1" : "0");
    if (!c.termination_log.empty()) add(kEnvTerminationLog, c.termination_log);
    if (!c.membership_file.empty()) add(kEnvMembership, c.membership_file);
    if (c.gpu_ordinal >= 0) add(kEnvGpuOrdinal, std::to_string(c.gpu_ordinal));
  }
  return inv;
}

namespace {

absl::Status ReadEndpoints(const Environment& env, const char* name, std::vector<Endpoint>* out) {
  std::optional<std::string> v = EnvValue(env, name);
  if (!v) return absl::OkStatus();
  auto list = ParseEndpointList(*v);
  if (!list.ok()) return Annotate(list.status(), name);
  *out = *std::move(list);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WorkerContract> ParseWorkerContract(WorkerRole role, const std::string& manifest_path,
                                                   const Environment& env) {
  WorkerContract c;
  c.role = role;
  c.manifest_path = manifest_path;
  c.job_name = EnvValue(env, kEnvJobName).value_or("");
  int64_t rank = 0, world = 1, metrics_port = -1, threads = 0;
  TANDEM_RETURN_IF_ERROR(ReadEnvInt(env, kEnvWorldSize, 1, 1 << 20, &world));
  TANDEM_RETURN_IF_ERROR(ReadEnvInt(env, kEnvRank, 0, 1 << 20, &rank));
  TANDEM_RETURN_IF_ERROR(ReadEnvInt(env, kEnvMetricsPort, -1, 65535, &metrics_port));
  TANDEM_RETURN_IF_ERROR(ReadEnvInt(env, kEnvThreads, 0, 1024, &threads));
  c.rank = static_cast<int>(rank);
  c.world_size = static_cast<int>(world);
  c.metrics_port = static_cast<int>(metrics_port);
  c.threads = static_cast<int>(threads);
  TANDEM_RETURN_IF_ERROR(ReadEndpoints(env, kEnvPeers, &c.peers));
  TANDEM_RETURN_IF_ERROR(ReadEndpoints(env, kEnvPServers, &c.pservers));
  c.token = EnvValue(env, kEnvJobToken).value_or("");
  c.tls.ca_file = EnvValue(env, kEnvTlsCa).value_or("");
  c.tls.cert_file = EnvValue(env, kEnvTlsCert).value_or("");
  c.tls.key_file = EnvValue(env, kEnvTlsKey).value_or("");
  c.checkpoint_dir = EnvValue(env, kEnvCheckpointDir).value_or("");
  c.host = EnvValue(env, kEnvHost).value_or("");
  if (role == WorkerRole::kTrainer) {
    c.output_dir = EnvValue(env, kEnvOutputDir).value_or("");
    TANDEM_RETURN_IF_ERROR(ReadEnvBool(env, kEnvEvents, &c.events));
    c.termination_log = EnvValue(env, kEnvTerminationLog).value_or("");
    c.membership_file = EnvValue(env, kEnvMembership).value_or("");
    if (EnvValue(env, kEnvGpuOrdinal)) {
      int64_t ordinal = -1;
      TANDEM_RETURN_IF_ERROR(ReadEnvInt(env, kEnvGpuOrdinal, 0, 1023, &ordinal));
      c.gpu_ordinal = static_cast<int>(ordinal);
    }
  }
  TANDEM_RETURN_IF_ERROR(ValidateWorkerContract(c));
  return c;
}

}  // namespace tandem::api
