// `tandem run --placement`: the placement file's validation (every error names the field), the
// contracts it gives each process (addresses, TANDEM_HOST), and the `exec` prefix through a real
// LocalRun whose "launcher" is a script that records how it was called and then runs the command.
#include "cli/local/placement.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/worker_contract.h"
#include "cli/local/local_run.h"
#include "gtest/gtest.h"

namespace tandem::local {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kTwoHosts[] = R"({
  "hosts": [{"name": "h0", "address": "10.213.7.1", "exec": ["ip", "netns", "exec", "ns0"]},
            {"name": "h1", "address": "fd00::2"}]})";

TEST(PlacementTest, DefaultsPlaceWorkersRoundRobinAndPserversWithTheirWorker) {
  auto p = ParsePlacement(json::parse(kTwoHosts), 3, "p.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->hosts.size(), 2u);
  EXPECT_EQ(p->hosts[0].exec, (std::vector<std::string>{"ip", "netns", "exec", "ns0"}));
  EXPECT_TRUE(p->hosts[1].exec.empty());
  EXPECT_EQ(p->worker_hosts, (std::vector<int>{0, 1, 0}));
  EXPECT_EQ(p->pserver_hosts, p->worker_hosts);
}

TEST(PlacementTest, ExplicitWorkersAndPservers) {
  json doc = json::parse(kTwoHosts);
  doc["workers"] = {"h1", "h1"};
  doc["pservers"] = {"h0", "h1"};
  auto p = ParsePlacement(doc, 2, "p.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->worker_hosts, (std::vector<int>{1, 1}));
  EXPECT_EQ(p->pserver_hosts, (std::vector<int>{0, 1}));
  EXPECT_EQ(p->pserver_host(0).name, "h0");
}

TEST(PlacementTest, ErrorsNameTheField) {
  struct Case {
    const char* doc;
    const char* want;
  } cases[] = {
      {R"([])", "p.yaml: must be a mapping"},
      {R"({"hosts": []})", "p.yaml: hosts: a non-empty list is required"},
      {R"({"hosts": [{"name": "a", "address": "1.2.3.4"}], "nodes": []})", "unknown field 'nodes'"},
      {R"({"hosts": ["a"]})", "hosts[0]: must be a mapping"},
      {R"({"hosts": [{"address": "1.2.3.4"}]})", "hosts[0].name: ''"},
      {R"({"hosts": [{"name": "a b", "address": "1.2.3.4"}]})", "hosts[0].name: 'a b'"},
      {R"({"hosts": [{"name": "a", "address": "1.2.3.4"}, {"name": "a", "address": "1.2.3.5"}]})",
       "hosts[1].name: 'a' is already the name of hosts[0]"},
      {R"({"hosts": [{"name": "a", "address": "1.2.3.4:80"}]})", "hosts[0].address: '1.2.3.4:80'"},
      {R"({"hosts": [{"name": "a", "address": "[::1]"}]})", "hosts[0].address: '[::1]'"},
      {R"({"hosts": [{"name": "a"}]})", "hosts[0].address: ''"},
      {R"({"hosts": [{"name": "a", "address": "h", "port": 1}]})", "hosts[0]: unknown field 'port'"},
      {R"({"hosts": [{"name": "a", "address": "h", "exec": "ip netns exec x"}]})",
       "hosts[0].exec: must be a list"},
      {R"({"hosts": [{"name": "a", "address": "h", "exec": ["ip", ""]}]})",
       "hosts[0].exec[1]: must be a non-empty string"},
      {R"({"hosts": [{"name": "a", "address": "h"}], "workers": ["a"]})",
       "workers: has 1 entries, the job has 2 workers"},
      {R"({"hosts": [{"name": "a", "address": "h"}], "workers": ["a", "b"]})",
       "workers[1]: host 'b' is not one of hosts (a)"},
      {R"({"hosts": [{"name": "a", "address": "h"}], "pservers": ["a", 3]})",
       "pservers[1]: must be a host name"},
      {R"({"hosts": [{"name": "a", "address": "h"}], "pservers": "a"})",
       "pservers: must be a list of host names"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.doc);
    auto p = ParsePlacement(json::parse(c.doc), 2, "p.yaml");
    ASSERT_FALSE(p.ok());
    EXPECT_TRUE(absl::IsInvalidArgument(p.status()));
    EXPECT_NE(p.status().message().find(c.want), std::string::npos) << p.status();
  }
}

TEST(PlacementTest, LoadPlacementReadsYamlAndNamesTheFile) {
  const std::string dir = ::testing::TempDir() + "/placement_test_" + std::to_string(::getpid());
  fs::create_directories(dir);
  std::ofstream(dir + "/ok.yaml") << "hosts:\n  - {name: h0, address: 10.0.0.1, exec: [env]}\n";
  std::ofstream(dir + "/two.yaml") << "hosts: []\n---\nhosts: []\n";
  auto ok = LoadPlacement(dir + "/ok.yaml", 2);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->worker_hosts, (std::vector<int>{0, 0}));
  auto two = LoadPlacement(dir + "/two.yaml", 2);
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("two.yaml: holds 2 documents"), std::string::npos);
  auto missing = LoadPlacement(dir + "/missing.yaml", 2);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.yaml"), std::string::npos);
  fs::remove_all(dir);
}

TEST(PlacementTest, ContractsUseHostAddressesAndNames) {
  json doc = json::parse(kTwoHosts);
  doc["pservers"] = {"h1", "h0"};
  auto p = ParsePlacement(doc, 2, "p.yaml");
  ASSERT_TRUE(p.ok()) << p.status();
  LocalJob job;
  job.name = "j";
  job.manifest_path = "/m.yaml";
  job.workers = 2;
  const std::vector<int> ports = {1001, 1002, 2001, 2002, 3001, 3002, 4001, 4002};
  auto contracts = BuildContracts(job, "/run", ports, "tok", {}, &*p);
  ASSERT_EQ(contracts.size(), 4u);  // pserver 0, trainer 0, pserver 1, trainer 1
  const std::vector<Endpoint> peers = {{"10.213.7.1", 1001}, {"fd00::2", 1002}};
  const std::vector<Endpoint> pservers = {{"fd00::2", 2001}, {"10.213.7.1", 2002}};
  for (const api::WorkerContract& c : contracts) {
    EXPECT_EQ(c.peers, peers);
    EXPECT_EQ(c.pservers, pservers);
    EXPECT_TRUE(api::ValidateWorkerContract(c).ok());
  }
  EXPECT_EQ(contracts[0].host, "h1");  // pserver 0
  EXPECT_EQ(contracts[1].host, "h0");  // trainer 0
  EXPECT_EQ(contracts[2].host, "h0");  // pserver 1
  EXPECT_EQ(contracts[3].host, "h1");  // trainer 1
  // TANDEM_HOST is rendered and parsed back; without a placement it is not rendered at all.
  api::WorkerInvocation inv = api::RenderWorker(contracts[3], "/bin");
  Environment env;
  bool rendered = false;
  for (const api::EnvVar& e : inv.env) {
    env[e.name] = e.value;
    rendered |= e.name == api::kEnvHost && e.value == "h1";
  }
  EXPECT_TRUE(rendered);
  auto back = api::ParseWorkerContract(api::WorkerRole::kTrainer, "/m.yaml", env);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, contracts[3]);
  for (const api::WorkerContract& c : BuildContracts(job, "/run", ports, "tok", {})) {
    EXPECT_EQ(c.host, "");
    EXPECT_EQ(c.peers[0].host, "127.0.0.1");
    for (const api::EnvVar& e : api::RenderWorker(c, "/bin").env) EXPECT_NE(e.name, api::kEnvHost);
  }
}

// A GPU job under `tandem run`: each trainer gets its own GPU ordinal on its host (its local rank
// times the GPUs it requests), through TANDEM_GPU_ORDINAL; the pservers and CPU jobs get none.
TEST(PlacementTest, GpuTrainersGetTheirOwnOrdinalsPerHost) {
  auto p = ParsePlacement(json::parse(kTwoHosts), 3, "p.yaml");  // workers on h0, h1, h0
  ASSERT_TRUE(p.ok()) << p.status();
  LocalJob job;
  job.name = "j";
  job.manifest_path = "/m.yaml";
  job.workers = 3;
  job.device = {api::TrainerDeviceKind::kCuda, 2};
  EXPECT_EQ(TrainerGpuOrdinals(job, &*p), (std::vector<int>{0, 0, 2}));
  EXPECT_EQ(TrainerGpuOrdinals(job, nullptr), (std::vector<int>{0, 2, 4}));
  std::vector<int> ports(12);
  for (size_t i = 0; i < ports.size(); ++i) ports[i] = 1000 + static_cast<int>(i);
  std::vector<int> trainer_ordinals;
  for (const api::WorkerContract& c : BuildContracts(job, "/run", ports, "tok", {}, &*p)) {
    if (c.role == api::WorkerRole::kPServer) {
      EXPECT_EQ(c.gpu_ordinal, -1);
      continue;
    }
    trainer_ordinals.push_back(c.gpu_ordinal);
    Environment env;
    for (const api::EnvVar& e : api::RenderWorker(c, "/bin").env) env[e.name] = e.value;
    EXPECT_EQ(env[api::kEnvGpuOrdinal], std::to_string(c.gpu_ordinal));
  }
  EXPECT_EQ(trainer_ordinals, (std::vector<int>{0, 0, 2}));
  job.device = {};  // a CPU job: no ordinal anywhere
  EXPECT_EQ(TrainerGpuOrdinals(job, &*p), (std::vector<int>{-1, -1, -1}));
  for (const api::WorkerContract& c : BuildContracts(job, "/run", ports, "tok", {}, &*p))
    for (const api::EnvVar& e : api::RenderWorker(c, "/bin").env)
      EXPECT_NE(e.name, api::kEnvGpuOrdinal);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteScript(const std::string& path, const std::string& body) {
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), 0755);
}

// The exec prefix runs in front of every process of its host, in the same process (the
// supervisor's pid is the worker's), with the contract in its environment.
TEST(PlacementTest, LocalRunStartsEachProcessThroughItsHostsExecPrefix) {
  const std::string root =
      fs::path(::testing::TempDir() + "/placement_run_" + std::to_string(::getpid())).lexically_normal();
  fs::remove_all(root);
  fs::create_directories(root + "/bin");
  // The launcher: records its argument and its pid, then becomes the command (exec).
  WriteScript(root + "/bin/launch",
              "tag=$1; shift\necho \"launch $tag pid=$$ host=$TANDEM_HOST\" >> " + root +
                  "/launches\nexec \"$@\"\n");
  WriteScript(root + "/bin/tandem-pserver",
              "echo \"pserver pid=$$ host=$TANDEM_HOST pservers=$TANDEM_PSERVERS\"\n"
              "trap 'exit 0' TERM\nwhile :; do sleep 0.05; done\n");
  WriteScript(root + "/bin/tandem-trainer",
              "echo \"trainer pid=$$ host=$TANDEM_HOST peers=$TANDEM_PEERS\"\n"
              "echo '@tandem {\"event\":\"summary\",\"test_accuracy\":0.5}'\n");
  std::ofstream(root + "/job.yaml") << "kind: TrainingJob\n";
  auto p = ParsePlacement(json::parse(R"({"hosts": [
      {"name": "a", "address": "10.9.0.1", "exec": [")" + root + R"(/bin/launch", "A"]},
      {"name": "b", "address": "10.9.0.2", "exec": [")" + root + R"(/bin/launch", "B"]}],
      "pservers": ["b", "a"]})"),
                          2, "p");
  ASSERT_TRUE(p.ok()) << p.status();
  LocalJob job;
  job.name = "placed";
  job.manifest_path = root + "/job.yaml";
  job.workers = 2;
  LocalRunOptions opts;
  opts.bin_dir = root + "/bin";
  opts.run_dir = root + "/run";
  opts.stop_grace_seconds = 5;
  opts.placement = *p;
  LocalRun run(job, opts);
  std::FILE* out = std::tmpfile();
  auto result = run.Run(out);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->run.succeeded) << result->run.failure;
  const std::string launches = ReadAll(root + "/launches");
  const std::string t0 = ReadAll(root + "/run/logs/worker-0-trainer.log");
  const std::string t1 = ReadAll(root + "/run/logs/worker-1-trainer.log");
  const std::string p0 = ReadAll(root + "/run/logs/worker-0-pserver.log");
  EXPECT_NE(t0.find("host=a peers=10.9.0.1:"), std::string::npos) << t0;
  EXPECT_NE(t0.find(",10.9.0.2:"), std::string::npos) << t0;
  EXPECT_NE(t1.find("host=b peers=10.9.0.1:"), std::string::npos) << t1;
  EXPECT_NE(p0.find("host=b pservers=10.9.0.2:"), std::string::npos) << p0;
  // Four launches, each through its host's launcher, and the launcher became the process.
  for (const std::string* log : {&t0, &t1, &p0}) {
    const size_t at = log->find("pid=");
    ASSERT_NE(at, std::string::npos);
    const std::string pid = log->substr(at, log->find(' ', at) - at);
    EXPECT_NE(launches.find(pid), std::string::npos) << pid << " not in\n" << launches;
  }
  EXPECT_NE(launches.find("launch A pid="), std::string::npos) << launches;
  EXPECT_NE(launches.find("launch B pid="), std::string::npos) << launches;
  std::fclose(out);
  fs::remove_all(root);
}

}  // namespace
}  // namespace tandem::local
