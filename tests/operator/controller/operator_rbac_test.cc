// Least privilege, checked both ways: tandem-operator (the shipped binary) runs a full flow
// against the API server stand-in, which records every request it makes (told apart from the
// test's own requests by its bearer token). Each request, as an RBAC (verb, group, resource,
// subresource, namespace), must be allowed by deploy/rbac.yaml as bound to the operator's
// ServiceAccount; and every grant in deploy/rbac.yaml must have been used, except the ones
// listed in kNotApiCalls with the reason.
//
// The flow: take the Lease; a job admitted, run and finished with ttlSecondsAfterFinished: 0
// (deleted); a job whose worker fails with a retryable code (gang restart); a job whose
// checkpoint claim name is taken by a user's claim (refused; repeated Events are patched); a
// job on an existing claim; a Sweep one of whose trials a user deletes (the other trial is
// stopped and the sweep fails); SIGTERM (the Lease handed back).
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/manifest.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "operator/kube/api_error.h"
#include "operator/kube/conflict_retry.h"
#include "operator/kube/kube_client.h"
#include "operator/testing/fake_api_server.h"
#include "tests/common/test_util.h"

extern char** environ;

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kOperatorNamespace[] = "tandem-system";
constexpr char kOperatorToken[] = "operator-sa-token";

// One API request in RBAC terms.
struct Access {
  std::string verb, group, resource, subresource, ns;
  std::string Resource() const { return subresource.empty() ? resource : resource + "/" + subresource; }
  std::string String() const {
    return absl::StrCat(verb, " ", group.empty() ? "core" : group, "/", Resource(), ns.empty() ? "" : " in " + ns);
  }
  bool operator<(const Access& o) const {
    return std::tie(verb, group, resource, subresource, ns) < std::tie(o.verb, o.group, o.resource, o.subresource, o.ns);
  }
};

// "GET /apis/tandem.dev/v1alpha1/namespaces/default/trainingjobs?watch=true" -> watch tandem.dev/trainingjobs.
// Returns false for non-resource URLs (/version, /healthz, discovery), which are returned in `other`.
bool ToAccess(const std::string& method, const std::string& path, const std::string& query, Access* a) {
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  size_t i = 0;
  if (parts.size() >= 2 && parts[0] == "api") {
    i = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    a->group = parts[1];
    i = 3;
  } else {
    return false;
  }
  if (i >= parts.size()) return false;  // discovery
  if (parts[i] == "namespaces" && parts.size() >= i + 3) {
    a->ns = parts[i + 1];
    i += 2;
  }
  a->resource = parts[i];
  bool collection = parts.size() == i + 1;
  if (parts.size() >= i + 3) a->subresource = parts[i + 2];
  bool watch = query.find("watch=true") != std::string::npos || query.find("watch=1") != std::string::npos;
  if (method == "GET") a->verb = collection ? (watch ? "watch" : "list") : "get";
  else if (method == "POST") a->verb = "create";
  else if (method == "PUT") a->verb = "update";
  else if (method == "PATCH") a->verb = "patch";
  else if (method == "DELETE") a->verb = collection ? "deletecollection" : "delete";
  else a->verb = method;
  return true;
}

struct Rule {
  std::set<std::string> groups, resources, verbs;
};

std::vector<Rule> RulesOf(const json& role) {
  std::vector<Rule> out;
  for (const auto& r : role.value("rules", json::array())) {
    Rule rule;
    for (const auto& g : r.value("apiGroups", json::array())) rule.groups.insert(g.get<std::string>());
    for (const auto& x : r.value("resources", json::array())) rule.resources.insert(x.get<std::string>());
    for (const auto& v : r.value("verbs", json::array())) rule.verbs.insert(v.get<std::string>());
    EXPECT_FALSE(rule.groups.count("*") || rule.resources.count("*") || rule.verbs.count("*"))
        << "wildcards are not least privilege: " << r.dump();
    EXPECT_FALSE(r.contains("resourceNames")) << "the test does not model resourceNames";
    out.push_back(rule);
  }
  return out;
}

bool Allows(const std::vector<Rule>& rules, const Access& a) {
  for (const auto& r : rules) {
    if (r.groups.count(a.group) && r.resources.count(a.Resource()) && r.verbs.count(a.verb)) return true;
  }
  return false;
}

// Grants that are not API calls, so no run can show them used.
const std::set<std::string> kNotApiCalls = {
    // OwnerReferencesPermissionEnforcement admission: setting blockOwnerDeletion on a child's
    // owner reference requires update on the owner's finalizers.
    "update tandem.dev/trainingjobs/finalizers",
    "update tandem.dev/sweeps/finalizers",
};

pid_t Spawn(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0].c_str(), nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

using ::tandem::testing::Eventually;

class OperatorRbacTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kube::testing::FakeApiServerOptions o;
    o.namespaces.push_back(kOperatorNamespace);
    o.on_request = [this](const HttpRequest& req) {
      if (req.Header("authorization") != absl::StrCat("Bearer ", kOperatorToken)) return;
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back({req.method, req.path, req.query});
    };
    server_ = std::make_unique<kube::testing::FakeApiServer>(o);
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
    kube::KubeConfig cfg;
    cfg.server = server_->url();
    cfg.token = "admin";
    client_ = std::make_unique<kube::KubeClient>(cfg);
    dir_ = fs::temp_directory_path() / absl::StrCat("tandem_rbac_", ::getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    StopOperator();
    server_->Stop();
    fs::remove_all(dir_);
  }
  void StopOperator() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  json Manifest(const std::string& name) {
    auto docs = YamlFileToJson(tandem::testing::SourceDir() + "/tests/operator/testing/testdata/trainingjob.yaml");
    EXPECT_TRUE(docs.ok());
    json job = (*docs)[0];
    job["metadata"]["name"] = name;
    job["spec"]["workers"] = {{"count", 1}};
    return job;
  }
  void SetPod(const std::string& name, const std::string& phase, int exit_code = -1) {
    auto s = kube::UpdateWithRetry(
        client_.get(), kube::kPods, "default", name,
        [&](json& pod) {
          pod["status"]["phase"] = phase;
          pod["status"]["podIP"] = "127.0.0.1";
          bool ready = phase == "Running";
          pod["status"]["conditions"] = {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}};
          if (exit_code >= 0) {
            pod["status"]["containerStatuses"] = {
                {{"name", "trainer"}, {"state", {{"terminated", {{"exitCode", exit_code}}}}}}};
          }
          return absl::OkStatus();
        },
        /*status_subresource=*/true);
    ASSERT_TRUE(s.ok()) << s.status();
  }
  std::string Uid(const kube::Resource& r, const std::string& name) {
    auto o = client_->Get(r, "default", name);
    return o.ok() ? kube::UidOf(*o) : "";
  }
  std::vector<Access> Accesses(std::vector<std::string>* other) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Access> out;
    for (const auto& [method, path, query] : requests_) {
      Access a;
      if (ToAccess(method, path, query, &a)) out.push_back(a);
      else other->push_back(method + " " + path);
    }
    return out;
  }
  bool Requested(const std::string& method, const std::string& path_fragment) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [m, p, q] : requests_) {
      if (m == method && p.find(path_fragment) != std::string::npos) return true;
    }
    return false;
  }

  std::unique_ptr<kube::testing::FakeApiServer> server_;
  std::unique_ptr<kube::KubeClient> client_;
  fs::path dir_;
  pid_t pid_ = -1;
  std::mutex mu_;
  std::vector<std::tuple<std::string, std::string, std::string>> requests_;
};

TEST_F(OperatorRbacTest, EveryCallIsGrantedAndEveryGrantIsUsed) {
  // The manifest: the ServiceAccount, its bindings, and what they grant.
  auto docs = YamlFileToJson(tandem::testing::SourceDir() + "/deploy/rbac.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status();
  json cluster_role, role, cluster_binding, role_binding, account;
  for (const auto& d : *docs) {
    std::string kind = d.value("kind", "");
    if (kind == "ClusterRole") cluster_role = d;
    if (kind == "Role") role = d;
    if (kind == "ClusterRoleBinding") cluster_binding = d;
    if (kind == "RoleBinding") role_binding = d;
    if (kind == "ServiceAccount") account = d;
  }
  ASSERT_TRUE(cluster_role.is_object() && role.is_object() && cluster_binding.is_object() && role_binding.is_object() &&
              account.is_object());
  EXPECT_EQ(account["metadata"]["namespace"], kOperatorNamespace);
  EXPECT_EQ(role["metadata"]["namespace"], kOperatorNamespace) << "the Lease Role lives in the operator's namespace";
  for (const json* b : {&cluster_binding, &role_binding}) {
    const json& subject = (*b)["subjects"][0];
    EXPECT_EQ(subject["kind"], "ServiceAccount");
    EXPECT_EQ(subject["name"], account["metadata"]["name"]);
    EXPECT_EQ(subject["namespace"], kOperatorNamespace);
  }
  EXPECT_EQ(cluster_binding["roleRef"]["kind"], "ClusterRole");
  EXPECT_EQ(cluster_binding["roleRef"]["name"], cluster_role["metadata"]["name"]);
  EXPECT_EQ(role_binding["roleRef"]["kind"], "Role");
  EXPECT_EQ(role_binding["roleRef"]["name"], role["metadata"]["name"]);
  EXPECT_EQ(role_binding["metadata"]["namespace"], kOperatorNamespace);
  const std::vector<Rule> cluster_rules = RulesOf(cluster_role), ns_rules = RulesOf(role);

  // The world, written by the test (as "admin").
  ASSERT_TRUE(kube::testing::InstallCrds(client_.get(), tandem::testing::SourceDir() + "/crds").ok());
  // The default Queue is the operator's to create (--default-queue), as the chart and
  // deploy/operator.yaml run it.
  std::string default_queue = (dir_ / "default-queue.yaml").string();
  {
    std::ofstream out(default_queue);
    out << "apiVersion: tandem.dev/v1alpha1\nkind: Queue\nmetadata: {name: default}\n"
           "spec: {weight: 1, guaranteed: {cpu: \"64\", memory: 256Gi, nvidia.com/gpu: 0}}\n";
  }
  ASSERT_TRUE(client_->Create(kube::kNodes, "",
                              {{"metadata", {{"name", "node-1"}}},
                               {"status", {{"allocatable", {{"cpu", "64"}, {"memory", "256Gi"}}},
                                           {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}})
                  .ok());

  // The operator, as its ServiceAccount would run it (token, namespace tandem-system).
  std::string kubeconfig = (dir_ / "kubeconfig").string();
  {
    std::ofstream out(kubeconfig);
    out << "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"" << server_->url()
        << "\"}}]\nusers: [{name: sa, user: {token: " << kOperatorToken
        << "}}]\ncontexts: [{name: c, context: {cluster: c, user: sa, namespace: " << kOperatorNamespace
        << "}}]\ncurrent-context: c\n";
  }
  pid_ = Spawn({tandem::testing::BinDir() + "/tandem-operator", "--kubeconfig", kubeconfig, "--metrics-port", "-1",
                "--schedule-interval", "0.2", "--termination-grace", "1", "--retry-period", "0.2",
                "--lease-duration", "3", "--renew-deadline", "2", "--progress-interval", "0.2",
                "--default-queue", default_queue});
  ASSERT_GT(pid_, 0);
  ASSERT_TRUE(Eventually([&] { return client_->Get(kube::kLeases, kOperatorNamespace, "tandem-operator").ok(); }))
      << "the operator took its Lease in " << kOperatorNamespace;
  ASSERT_TRUE(Eventually([&] { return client_->Get(kube::kQueues, "", "default").ok(); }))
      << "the operator created the default Queue";

  // 1. Admitted, run, finished, deleted by its TTL.
  json done = Manifest("done");
  done["spec"]["ttlSecondsAfterFinished"] = 0;
  // With a tandem-serve Deployment beside the workers (spec.serving).
  done["spec"]["publish"] = {{"everySteps", 100}};
  done["spec"]["serving"] = {{"replicas", 1}};
  ASSERT_TRUE(client_->Create(kube::kTrainingJobs, "default", done).ok());
  ASSERT_TRUE(Eventually([&] { return client_->Get(kube::kPods, "default", "done-worker-0").ok(); }))
      << client_->Get(kube::kTrainingJobs, "default", "done")->dump();
  SetPod("done-worker-0", "Running");
  SetPod("done-worker-0", "Succeeded");
  ASSERT_TRUE(Eventually([&] { return kube::IsNotFound(client_->Get(kube::kTrainingJobs, "default", "done").status()); }))
      << "TTL deletion";

  // 2. A retryable failure: the gang is deleted and recreated.
  json retry = Manifest("retry");
  retry["spec"]["restartPolicy"] = {{"backoffLimit", 2}, {"backoffSeconds", 0}, {"retryableExitCodes", {137}}};
  ASSERT_TRUE(client_->Create(kube::kTrainingJobs, "default", retry).ok());
  ASSERT_TRUE(Eventually([&] { return !Uid(kube::kPods, "retry-worker-0").empty(); }));
  std::string first = Uid(kube::kPods, "retry-worker-0");
  SetPod("retry-worker-0", "Running");
  SetPod("retry-worker-0", "Failed", 137);
  ASSERT_TRUE(Eventually([&] {
    std::string now = Uid(kube::kPods, "retry-worker-0");
    return !now.empty() && now != first;
  })) << "restarted";

  // 3. The checkpoint claim's name is a user's claim: refused over and over (events patched).
  ASSERT_TRUE(client_->Create(kube::kPersistentVolumeClaims, "default",
                              {{"metadata", {{"name", "clash-checkpoints"}}},
                               {"spec", {{"accessModes", {"ReadWriteMany"}}}}})
                  .ok());
  ASSERT_TRUE(client_->Create(kube::kTrainingJobs, "default", Manifest("clash")).ok());
  ASSERT_TRUE(Eventually([&] { return Requested("PATCH", "/events/"); })) << "a repeated Event is patched";
  EXPECT_TRUE(kube::IsNotFound(client_->Get(kube::kPods, "default", "clash-worker-0").status()));
  EXPECT_TRUE(client_->Get(kube::kPersistentVolumeClaims, "default", "clash-checkpoints").ok());

  // 4. An existing claim: looked up, mounted.
  ASSERT_TRUE(client_->Create(kube::kPersistentVolumeClaims, "default",
                              {{"metadata", {{"name", "team"}}}, {"spec", {{"accessModes", {"ReadWriteMany"}}}}})
                  .ok());
  json shared = Manifest("shared");
  shared["spec"]["checkpoint"] = {{"storage", "ExistingClaim"}, {"claimName", "team"}};
  ASSERT_TRUE(client_->Create(kube::kTrainingJobs, "default", shared).ok());
  ASSERT_TRUE(Eventually([&] { return client_->Get(kube::kPods, "default", "shared-worker-0").ok(); }));

  // 5. A Sweep of two trials tolerating no failure: one is deleted, the other is stopped.
  auto sweep = YamlToJson(R"(
apiVersion: tandem.dev/v1alpha1
kind: Sweep
metadata: {name: hp}
spec:
  template:
    spec:
      workers: {count: 1}
      model:
        inputs:
          - {name: image, source: features, shape: [1, 28, 28]}
          - {name: label, source: labels}
        layers:
          - {name: fc1, type: fc, input: image, size: 10}
          - {name: cost, type: softmax_cross_entropy, inputs: [fc1, label]}
      optimizer: {type: sgd, learningRate: 0.1}
      restartPolicy: {backoffLimit: 0}
  parameters: [{name: lr, path: spec.optimizer.learningRate, type: float, min: 0.01, max: 0.1}]
  parallelism: 2
  maxTrials: 2
  maxFailedTrials: 0
)", "sweep.yaml");
  ASSERT_TRUE(sweep.ok()) << sweep.status();
  ASSERT_TRUE(client_->Create(kube::kSweeps, "default", (*sweep)[0]).ok());
  ASSERT_TRUE(Eventually([&] { return client_->Get(kube::kPods, "default", "hp-0-worker-0").ok(); }));
  ASSERT_TRUE(Eventually([&] { return client_->Get(kube::kTrainingJobs, "default", "hp-1").ok(); }));
  // A user deletes trial hp-1: the operator asks whether it is gone (get), fails it, and with no
  // failure tolerated, stops the other trial.
  ASSERT_TRUE(client_->Delete(kube::kTrainingJobs, "default", "hp-1").ok());
  ASSERT_TRUE(Eventually([&] {
    auto t = client_->Get(kube::kTrainingJobs, "default", "hp-0");
    return t.ok() && t->value("spec", json::object()).value("suspend", false);
  })) << "the other trial is stopped";
  ASSERT_TRUE(Eventually([&] {
    auto s = client_->Get(kube::kSweeps, "default", "hp");
    return s.ok() && s->value("status", json::object()).value("phase", "") == "Failed";
  }));

  // 6. SIGTERM: the Lease is handed back.
  StopOperator();
  auto lease = client_->Get(kube::kLeases, kOperatorNamespace, "tandem-operator");
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->value("spec", json::object()).value("holderIdentity", ""), "") << lease->dump();

  // Every call allowed: cluster-wide by the ClusterRole, in tandem-system also by the Role.
  std::vector<std::string> non_resource;
  std::vector<Access> accesses = Accesses(&non_resource);
  ASSERT_FALSE(accesses.empty());
  EXPECT_TRUE(non_resource.empty()) << "non-resource URLs need nonResourceURLs rules: "
                                    << absl::StrJoin(non_resource, ", ");
  std::set<std::string> used, denied;
  for (const Access& a : accesses) {
    used.insert(absl::StrCat(a.verb, " ", a.group, a.group.empty() ? "" : "/", a.Resource()));
    bool ok = Allows(cluster_rules, a) || (a.ns == kOperatorNamespace && Allows(ns_rules, a));
    if (!ok) denied.insert(a.String());
  }
  EXPECT_TRUE(denied.empty()) << "calls deploy/rbac.yaml does not allow:\n  " << absl::StrJoin(denied, "\n  ");

  // Every grant used (or a documented non-call).
  std::set<std::string> unused;
  for (const auto* rules : {&cluster_rules, &ns_rules}) {
    for (const Rule& r : *rules) {
      for (const auto& g : r.groups) {
        for (const auto& res : r.resources) {
          for (const auto& v : r.verbs) {
            std::string grant = absl::StrCat(v, " ", g, g.empty() ? "" : "/", res);
            if (!used.count(grant) && !kNotApiCalls.count(grant)) unused.insert(grant);
          }
        }
      }
    }
  }
  std::cerr << "calls made by tandem-operator, as RBAC grants:\n  " << absl::StrJoin(used, "\n  ") << "\n";
  EXPECT_TRUE(unused.empty()) << "granted but never used:\n  " << absl::StrJoin(unused, "\n  ")
                              << "\nused:\n  " << absl::StrJoin(used, "\n  ");
  // The Lease is only touched in the operator's namespace.
  for (const Access& a : accesses) {
    if (a.resource == "leases") {
      EXPECT_EQ(a.ns, kOperatorNamespace) << a.String();
    }
  }
  // And what must never appear.
  for (const char* forbidden : {"get secrets", "list secrets", "watch secrets", "update pods", "patch pods"}) {
    EXPECT_FALSE(used.count(forbidden)) << forbidden;
  }
}

// deploy/operator.yaml runs the operator as that ServiceAccount, in that namespace, unprivileged.
TEST(DeployManifestTest, TheDeploymentUsesTheAccountAndRunsUnprivileged) {
  auto rbac = YamlFileToJson(tandem::testing::SourceDir() + "/deploy/rbac.yaml");
  auto deploy = YamlFileToJson(tandem::testing::SourceDir() + "/deploy/operator.yaml");
  ASSERT_TRUE(rbac.ok() && deploy.ok());
  std::string account;
  for (const auto& d : *rbac) {
    if (d.value("kind", "") == "ServiceAccount") account = d["metadata"]["name"];
  }
  const json* found = nullptr;
  const json* default_queue = nullptr;
  for (const json& doc : *deploy) {
    if (doc.value("kind", "") == "Deployment") found = &doc;
    if (doc.value("kind", "") == "ConfigMap") default_queue = &doc;
  }
  ASSERT_EQ(deploy->size(), 2u) << "a Deployment and the default Queue's ConfigMap";
  ASSERT_TRUE(found != nullptr && default_queue != nullptr);
  const json& d = *found;
  EXPECT_EQ(d["metadata"]["namespace"], kOperatorNamespace);
  const json& pod = d["spec"]["template"]["spec"];
  EXPECT_EQ(pod["serviceAccountName"], account);
  EXPECT_EQ(pod["securityContext"]["runAsNonRoot"], true);
  const json& c = pod["containers"][0];
  EXPECT_EQ(c["securityContext"]["allowPrivilegeEscalation"], false);
  EXPECT_EQ(c["securityContext"]["readOnlyRootFilesystem"], true);
  EXPECT_EQ(c["securityContext"]["capabilities"]["drop"], json({"ALL"}));
  std::set<std::string> args;
  for (const auto& a : c["args"]) args.insert(a.get<std::string>());
  EXPECT_TRUE(args.count(absl::StrCat("--lease-namespace=", kOperatorNamespace)))
      << "the Lease must live where the Role grants it";
  // --default-queue names a file of the mounted ConfigMap, and that file is a valid Queue.
  const std::string flag = "--default-queue=";
  std::string queue_path;
  for (const std::string& a : args)
    if (a.rfind(flag, 0) == 0) queue_path = a.substr(flag.size());
  ASSERT_FALSE(queue_path.empty()) << "deploy/operator.yaml creates no default Queue";
  std::string volume, mount;
  for (const auto& m : c["volumeMounts"])
    if (queue_path.rfind(m["mountPath"].get<std::string>() + "/", 0) == 0) {
      volume = m["name"];
      mount = m["mountPath"];
    }
  ASSERT_FALSE(volume.empty()) << queue_path << " is on no mounted volume";
  std::string config_map;
  for (const auto& v : pod["volumes"])
    if (v["name"] == volume) config_map = v["configMap"]["name"];
  EXPECT_EQ(config_map, (*default_queue)["metadata"]["name"]);
  EXPECT_EQ((*default_queue)["metadata"]["namespace"], kOperatorNamespace);
  const std::string key = queue_path.substr(mount.size() + 1);
  ASSERT_TRUE((*default_queue)["data"].contains(key)) << key;
  auto problems = api::ValidateManifestText((*default_queue)["data"][key].get<std::string>(), key, {});
  EXPECT_TRUE(problems.empty()) << problems.front().error.ToString();
  auto docs = YamlToJson((*default_queue)["data"][key].get<std::string>(), key);
  ASSERT_TRUE(docs.ok());
  EXPECT_EQ((*docs)[0]["kind"], "Queue");
  EXPECT_EQ((*docs)[0]["metadata"]["name"], "default");
  EXPECT_EQ(d["spec"]["template"]["metadata"]["labels"], d["spec"]["selector"]["matchLabels"]);
}

TEST(RbacMappingTest, RequestsMapToRbacVerbsAndResources) {
  struct Case {
    const char* method;
    const char* path;
    const char* query;
    const char* want;
  };
  const Case cases[] = {
      {"GET", "/api/v1/pods", "", "list core/pods"},
      {"GET", "/api/v1/pods", "watch=true&resourceVersion=5", "watch core/pods"},
      {"GET", "/api/v1/namespaces/default/pods/w-0", "", "get core/pods in default"},
      {"POST", "/api/v1/namespaces/default/pods", "", "create core/pods in default"},
      {"DELETE", "/api/v1/namespaces/default/pods/w-0", "", "delete core/pods in default"},
      {"DELETE", "/api/v1/namespaces/default/pods", "", "deletecollection core/pods in default"},
      {"PUT", "/apis/tandem.dev/v1alpha1/namespaces/default/trainingjobs/a/status", "",
       "update tandem.dev/trainingjobs/status in default"},
      {"PUT", "/apis/tandem.dev/v1alpha1/queues/q/status", "", "update tandem.dev/queues/status"},
      {"PATCH", "/api/v1/namespaces/default/events/e1", "", "patch core/events in default"},
      {"GET", "/api/v1/namespaces/default", "", "get core/namespaces"},
      {"GET", "/apis/coordination.k8s.io/v1/namespaces/tandem-system/leases/tandem-operator", "",
       "get coordination.k8s.io/leases in tandem-system"},
  };
  for (const auto& c : cases) {
    Access a;
    ASSERT_TRUE(ToAccess(c.method, c.path, c.query, &a)) << c.path;
    EXPECT_EQ(a.String(), c.want) << c.method << " " << c.path;
  }
  Access a;
  EXPECT_FALSE(ToAccess("GET", "/version", "", &a));
  EXPECT_FALSE(ToAccess("GET", "/apis/tandem.dev/v1alpha1", "", &a));
  // The checker itself notices a missing grant.
  std::vector<Rule> rules = {{{""}, {"pods"}, {"list", "watch"}}};
  EXPECT_TRUE(Allows(rules, {"list", "", "pods", "", ""}));
  EXPECT_FALSE(Allows(rules, {"delete", "", "pods", "", "default"}));
  EXPECT_FALSE(Allows(rules, {"list", "apps", "pods", "", ""}));
  EXPECT_FALSE(Allows(rules, {"list", "", "pods", "log", ""}));
}

}  // namespace
}  // namespace tandem
