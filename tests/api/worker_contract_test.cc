// The worker contract on its own: what RenderWorker writes, ParseWorkerContract reads back, and a
// bad environment is refused with the variable named.
#include "api/worker_contract.h"

#include "gtest/gtest.h"

namespace tandem::api {
namespace {

WorkerContract Sample(WorkerRole role) {
  WorkerContract c;
  c.role = role;
  c.manifest_path = "/etc/tandem/job.json";
  c.job_name = "ctr";
  c.rank = 1;
  c.world_size = 2;
  c.peers = {{"w0.ctr.svc", 7000}, {"w1.ctr.svc", 7000}};
  c.pservers = {{"w0.ctr.svc", 7100}, {"::1", 7100}};
  c.token = "secret";
  c.tls = tls::TlsFiles::InFolder("/etc/tandem/tls");
  c.checkpoint_dir = "/ckpt/x-1";
  if (role == WorkerRole::kTrainer) {
    c.output_dir = "/ckpt/model";
    c.events = true;
    c.termination_log = "/dev/termination-log";
  }
  c.metrics_port = 9100;
  c.threads = 3;
  return c;
}

Environment EnvOf(const WorkerInvocation& inv) {
  Environment env;
  for (const EnvVar& e : inv.env) env[e.name] = e.value;
  return env;
}

TEST(WorkerContractTest, RendersAndParsesBackBothRoles) {
  for (WorkerRole role : {WorkerRole::kTrainer, WorkerRole::kPServer}) {
    const WorkerContract c = Sample(role);
    ASSERT_TRUE(ValidateWorkerContract(c).ok()) << ValidateWorkerContract(c);
    WorkerInvocation inv = RenderWorker(c, "/opt/bin");
    ASSERT_EQ(inv.argv.size(), 2u);
    EXPECT_EQ(inv.argv[0], role == WorkerRole::kTrainer ? "/opt/bin/tandem-trainer" : "/opt/bin/tandem-pserver");
    EXPECT_EQ(inv.argv[1], "/etc/tandem/job.json");
    Environment env = EnvOf(inv);
    EXPECT_EQ(env[kEnvPServers], "w0.ctr.svc:7100,[::1]:7100");
    EXPECT_EQ(env[kEnvOmpThreads], "3");
    EXPECT_EQ(env[kEnvTlsCa], "/etc/tandem/tls/ca.crt");
    EXPECT_EQ(env[kEnvTlsCert], "/etc/tandem/tls/tls.crt");
    EXPECT_EQ(env[kEnvTlsKey], "/etc/tandem/tls/tls.key");
    auto back = ParseWorkerContract(role, inv.argv[1], env);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, c) << RoleName(role);
    EXPECT_EQ(back->pserver_port(), 7100);
  }
}

TEST(WorkerContractTest, AnElasticTrainerCarriesItsMembershipFile) {
  WorkerContract c = Sample(WorkerRole::kTrainer);
  c.membership_file = "/etc/tandem/membership/membership.json";
  ASSERT_TRUE(ValidateWorkerContract(c).ok()) << ValidateWorkerContract(c);
  WorkerInvocation inv = RenderWorker(c, "");
  Environment env = EnvOf(inv);
  EXPECT_EQ(env[kEnvMembership], c.membership_file);
  auto back = ParseWorkerContract(WorkerRole::kTrainer, inv.argv[1], env);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, c);
  // A fixed job's trainer renders no such variable.
  EXPECT_EQ(EnvOf(RenderWorker(Sample(WorkerRole::kTrainer), "")).count(kEnvMembership), 0u);
  // The membership names trainers by their endpoint: without TANDEM_PEERS there is none.
  c.peers.clear();
  c.world_size = 1;
  c.rank = 0;
  c.pservers.clear();
  absl::Status no_peers = ValidateWorkerContract(c);
  EXPECT_NE(no_peers.message().find(kEnvPeers), std::string::npos) << no_peers;
  // The pserver has no membership.
  WorkerContract ps = Sample(WorkerRole::kPServer);
  ps.membership_file = "/x";
  EXPECT_NE(ValidateWorkerContract(ps).message().find(kEnvMembership), std::string::npos);
}

// A job without pservers (api::UsesPServers): its trainers get no TANDEM_PSERVERS at all, under
// `tandem run` and in the operator's pods, and read that back as "no pservers".
TEST(WorkerContractTest, ATrainerWithoutPServersGetsNoPServerVariable) {
  WorkerContract c = Sample(WorkerRole::kTrainer);
  c.pservers.clear();
  ASSERT_TRUE(ValidateWorkerContract(c).ok()) << ValidateWorkerContract(c);
  Environment env = EnvOf(RenderWorker(c, ""));
  EXPECT_EQ(env.count(kEnvPServers), 0u);
  EXPECT_EQ(env.count(kEnvPeers), 1u);
  auto back = ParseWorkerContract(WorkerRole::kTrainer, c.manifest_path, env);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->pservers.empty());
  EXPECT_EQ(back->peers.size(), 2u);
}

TEST(WorkerContractTest, ATrainerAloneNeedsNoEnvironment) {
  auto c = ParseWorkerContract(WorkerRole::kTrainer, "job.yaml", {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->world_size, 1);
  EXPECT_EQ(c->metrics_port, -1);
  EXPECT_TRUE(c->pservers.empty());
}

TEST(WorkerContractTest, ErrorsNameTheVariable) {
  const Environment good = EnvOf(RenderWorker(Sample(WorkerRole::kTrainer), ""));
  struct Case {
    const char* name;
    const char* value;  // nullptr: unset
    const char* expect;
  } cases[] = {
      {kEnvRank, "two", "TANDEM_RANK='two'"},
      {kEnvRank, "2", "TANDEM_RANK=2: must be in [0, TANDEM_WORLD_SIZE=2)"},
      {kEnvWorldSize, "0", "TANDEM_WORLD_SIZE='0'"},
      {kEnvPeers, "a:1", "TANDEM_PEERS: has 1 entries"},
      {kEnvPeers, "a:1,b", "TANDEM_PEERS: entry 1 'b': missing ':port'"},
      {kEnvPServers, "a:0,b:1", "TANDEM_PSERVERS: entry 0 'a:0'"},
      {kEnvTlsCa, nullptr, "TANDEM_TLS_CA: required with the other TLS files"},
      {kEnvTlsCert, "", "TANDEM_TLS_CERT: required with the other TLS files"},
      {kEnvTlsKey, nullptr, "TANDEM_TLS_KEY: required with the other TLS files"},
      {kEnvMetricsPort, "70000", "TANDEM_METRICS_PORT='70000'"},
      {kEnvThreads, "-1", "TANDEM_THREADS='-1'"},
      {kEnvEvents, "maybe", "TANDEM_EVENTS='maybe'"},
  };
  for (const Case& c : cases) {
    Environment env = good;
    if (c.value == nullptr) {
      env.erase(c.name);
    } else {
      env[c.name] = c.value;
    }
    auto parsed = ParseWorkerContract(WorkerRole::kTrainer, "job.yaml", env);
    ASSERT_FALSE(parsed.ok()) << c.name << "=" << (c.value ? c.value : "(unset)");
    EXPECT_NE(parsed.status().message().find(c.expect), std::string::npos) << parsed.status();
  }
  EXPECT_NE(ParseWorkerContract(WorkerRole::kTrainer, "", good).status().message().find("manifest"),
            std::string::npos);
}

// Plain mode needs the token; mutual TLS alone is enough; with both, both are kept.
TEST(WorkerContractTest, TheTokenIsRequiredOnlyWithoutTls) {
  for (WorkerRole role : {WorkerRole::kTrainer, WorkerRole::kPServer}) {
    WorkerContract c = Sample(role);
    c.token.clear();
    auto tls_only = ParseWorkerContract(role, c.manifest_path, EnvOf(RenderWorker(c, "")));
    ASSERT_TRUE(tls_only.ok()) << tls_only.status();
    EXPECT_EQ(tls_only->tls, c.tls);
    EXPECT_TRUE(tls_only->token.empty());
    c.tls = {};
    auto neither = ParseWorkerContract(role, c.manifest_path, EnvOf(RenderWorker(c, "")));
    ASSERT_FALSE(neither.ok()) << RoleName(role);
    EXPECT_NE(neither.status().message().find("TANDEM_JOB_TOKEN: required"), std::string::npos)
        << neither.status();
    EXPECT_NE(neither.status().message().find("TANDEM_TLS_CA"), std::string::npos);
  }
}

TEST(WorkerContractTest, ThePServerNeedsItsEntryAndToken) {
  Environment env = EnvOf(RenderWorker(Sample(WorkerRole::kPServer), ""));
  env.erase(kEnvPServers);
  auto parsed = ParseWorkerContract(WorkerRole::kPServer, "job.yaml", env);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("TANDEM_PSERVERS: required"), std::string::npos);
}

TEST(WorkerContractTest, TheTerminationLogIsTheTrainers) {
  WorkerContract c = Sample(WorkerRole::kPServer);
  c.termination_log = "/dev/termination-log";
  absl::Status s = ValidateWorkerContract(c);
  EXPECT_NE(s.message().find("TANDEM_TERMINATION_LOG"), std::string::npos) << s;
  // Optional for a trainer: not rendered when empty.
  WorkerContract t = Sample(WorkerRole::kTrainer);
  t.termination_log.clear();
  EXPECT_EQ(EnvOf(RenderWorker(t, "")).count(kEnvTerminationLog), 0u);
}

TEST(WorkerContractTest, ExitCodesAndTheirMeaning) {
  EXPECT_EQ(kExitPeerFailure, 75);
  EXPECT_EQ(kExitKilled, 137);
  EXPECT_EQ(kExitStopped, 143);
  // The default retryable codes are exactly the retryable ones.
  EXPECT_EQ(std::vector<int>(std::begin(kDefaultRetryableExitCodes), std::end(kDefaultRetryableExitCodes)),
            (std::vector<int>{kExitPeerFailure, kExitKilled, kExitStopped}));
}

}  // namespace
}  // namespace tandem::api
