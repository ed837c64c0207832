// tandem-operator as shipped, against tandem-fake-apiserver as a process: it takes the Lease,
// admits a job, serves tandem_operator_* metrics that promtool accepts, and hands the Lease back
// on SIGTERM.
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/socket.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "operator/kube/kube_client.h"
#include "tests/common/test_util.h"

extern char** environ;

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

pid_t Spawn(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0].c_str(), nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

int FreePort() {
  auto ports = net::PickFreeLoopbackPorts(1);
  EXPECT_TRUE(ports.ok()) << ports.status();
  return ports.ok() ? (*ports)[0] : 0;
}

using ::tandem::testing::Eventually;

int Stop(pid_t pid) {
  if (pid <= 0) return -1;
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Stops the processes a test started, also when an assertion returns early.
struct Children {
  std::vector<pid_t> pids;
  ~Children() {
    for (pid_t p : pids) Stop(p);
  }
  pid_t Add(pid_t p) {
    if (p > 0) pids.push_back(p);
    return p;
  }
};

TEST(OperatorMainTest, LeadsAdmitsServesMetricsAndReleasesTheLease) {
  Children children;
  fs::path dir = fs::temp_directory_path() / absl::StrCat("tandem_operator_main_", ::getpid());
  fs::create_directories(dir);
  std::string bin = tandem::testing::BinDir();
  pid_t api = children.Add(Spawn({bin + "/tandem-fake-apiserver", "--port", "0", "--port-file", (dir / "port").string(),
                     "--kubeconfig-out", (dir / "kubeconfig").string()}));
  ASSERT_GT(api, 0);
  ASSERT_TRUE(Eventually([&] { return fs::exists(dir / "port"); }));
  int api_port = 0;
  std::ifstream(dir / "port") >> api_port;
  kube::KubeConfig cfg;
  cfg.server = absl::StrCat("http://127.0.0.1:", api_port);
  kube::KubeClient client(cfg);
  for (const auto& e : fs::directory_iterator(fs::path(tandem::testing::SourceDir()) / "crds")) {
    auto docs = YamlFileToJson(e.path().string());
    ASSERT_TRUE(docs.ok());
    for (const auto& d : *docs) ASSERT_TRUE(client.Create(kube::kCustomResourceDefinitions, "", d).ok());
  }
  ASSERT_TRUE(client.Create(kube::kQueues, "", {{"metadata", {{"name", "default"}}}, {"spec", {{"weight", 1}}}}).ok());
  ASSERT_TRUE(client.Create(kube::kNodes, "", {{"metadata", {{"name", "n1"}}},
                                               {"status", {{"allocatable", {{"cpu", "8"}, {"memory", "32Gi"}}}}}}).ok());
  auto job = YamlFileToJson(tandem::testing::SourceDir() + "/tests/operator/testing/testdata/trainingjob.yaml");
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE(client.Create(kube::kTrainingJobs, "default", (*job)[0]).ok());

  int metrics_port = FreePort();
  pid_t op = Spawn({bin + "/tandem-operator", "--kubeconfig", (dir / "kubeconfig").string(), "--metrics-host",
                    "127.0.0.1", "--metrics-port", std::to_string(metrics_port), "--identity", "replica-1",
                    "--schedule-interval", "0.5"});
  ASSERT_GT(op, 0);
  children.pids.insert(children.pids.begin(), op);  // stopped first
  bool admitted = Eventually([&] {
    auto j = client.Get(kube::kTrainingJobs, "default", "fashion-mnist");
    return j.ok() && j->value("status", json::object()).value("phase", "") == "Admitted";
  });
  EXPECT_TRUE(admitted);
  auto lease = client.Get(kube::kLeases, "default", "tandem-operator");
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "replica-1");

  auto ready = tandem::testing::HttpRequestTo(metrics_port, "GET", "/readyz");
  EXPECT_EQ(ready.status, 200);
  // A job that cannot fit waits: /pending lists it with its position, reason and message.
  json big = (*job)[0];
  big["metadata"]["name"] = "too-big";
  big["spec"]["workers"] = {{"count", 64}};
  ASSERT_TRUE(client.Create(kube::kTrainingJobs, "default", big).ok());
  tandem::testing::HttpResult pending;
  EXPECT_TRUE(Eventually([&] {
    pending = tandem::testing::HttpRequestTo(metrics_port, "GET", "/pending");
    return pending.status == 200 && absl::StrContains(pending.body, "\"too-big\"");
  })) << pending.status << " " << pending.body;
  json view = json::parse(pending.body, nullptr, false);
  ASSERT_TRUE(view.is_object()) << pending.body;
  ASSERT_TRUE(view["queues"]["default"].is_array()) << pending.body;
  EXPECT_EQ(view["queues"]["default"][0]["name"], "too-big");
  EXPECT_EQ(view["queues"]["default"][0]["position"], 1);
  EXPECT_FALSE(view["queues"]["default"][0].value("message", "").empty()) << pending.body;
  auto scrape = tandem::testing::HttpRequestTo(metrics_port, "GET", "/metrics");
  ASSERT_EQ(scrape.status, 200);
  for (const char* name :
       {"tandem_operator_jobs{", "tandem_operator_admissions_total{queue=\"default\"} 1",
        "tandem_operator_scheduling_pass_duration_seconds_bucket", "tandem_operator_reconcile_duration_seconds_bucket",
        "tandem_operator_workqueue_depth", "tandem_operator_api_requests_total", "tandem_operator_queue_usage",
        "tandem_operator_queue_weighted_share", "tandem_operator_preemptions_total"}) {
    EXPECT_NE(scrape.body.find(name), std::string::npos) << name;
  }
  std::ofstream(dir / "metrics.txt") << scrape.body;
  auto promtool = tandem::testing::RunCommand("command -v promtool");
  if (promtool.exit_code == 0) {
    auto check = tandem::testing::RunCommand("promtool check metrics < " + (dir / "metrics.txt").string());
    EXPECT_EQ(check.exit_code, 0) << check.output;
  } else {
    ADD_FAILURE() << "promtool is not installed (scripts/install-deps.sh installs it)";
  }

  EXPECT_EQ(Stop(op), 0) << "SIGTERM is a clean shutdown";
  children.pids.erase(children.pids.begin());
  auto released = client.Get(kube::kLeases, "default", "tandem-operator");
  ASSERT_TRUE(released.ok());
  EXPECT_EQ((*released)["spec"]["holderIdentity"], "") << "the Lease is handed back";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tandem
