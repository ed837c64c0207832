// The whole controller (informers -> work queue -> reconciler and scheduling pass) against the API
// server stand-in over HTTP: CRDs applied from crds/, a Queue and a Node, then a TrainingJob
// becomes pods + service + secret + configmap; its status goes Queued -> Admitted -> Running as
// the test marks pods running; a worker failure restarts the gang; deleting the job collects its
// children.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "operator/controller/controller.h"
#include "operator/kube/api_error.h"
#include "operator/kube/conflict_retry.h"
#include "operator/kube/kube_client.h"
#include "operator/testing/fake_api_server.h"
#include "tests/common/test_util.h"

namespace tandem::controller {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

using ::tandem::testing::Eventually;

class OperatorE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start("127.0.0.1", 0).ok());
    kube::KubeConfig cfg;
    cfg.server = server_.url();
    client_ = std::make_unique<kube::KubeClient>(cfg);
    ASSERT_TRUE(kube::testing::InstallCrds(client_.get(), tandem::testing::SourceDir() + "/crds").ok());
    json queue = {{"metadata", {{"name", "default"}}},
                  {"spec", {{"weight", 1}, {"guaranteed", {{"cpu", "8"}, {"memory", "32Gi"}, {"nvidia.com/gpu", 4}}}}}};
    ASSERT_TRUE(client_->Create(kube::kQueues, "", queue).ok());
    json node = {{"metadata", {{"name", "gpu-node-1"}}},
                 {"status", {{"allocatable", {{"cpu", "16"}, {"memory", "64Gi"}, {"nvidia.com/gpu", "4"}}},
                             {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
    ASSERT_TRUE(client_->Create(kube::kNodes, "", node).ok());
    // Rank 0's trainer, as far as the operator can tell: /metrics on 127.0.0.1 (the pods' IP
    // below) at the port the operator gives trainers in TANDEM_METRICS_PORT.
    trainer_.Handle("GET", "/metrics", [this](const HttpRequest&, HttpResponseWriter& w) {
      std::lock_guard<std::mutex> lock(trainer_mu_);
      w.Respond(200, "text/plain; version=0.0.4", trainer_body_);
    });
    ASSERT_TRUE(trainer_.Start("127.0.0.1", 0).ok());
    ControllerOptions o;
    o.reconciler.build.ports.trainer_metrics = trainer_.port();
    o.progress.interval_s = 0.1;
    o.progress.timeout_s = 1;
    o.workers = 2;
    o.reconciler.schedule_interval_s = 0.5;
    o.reconciler.build.termination_grace_s = 5;
    o.informer.backoff_initial_s = 0.05;
    o.informer.backoff_max_s = 0.5;
    controller_ = std::make_unique<Controller>(client_.get(), o);
    ASSERT_TRUE(controller_->Start().ok());
  }
  void TearDown() override {
    if (controller_) controller_->Stop();
    trainer_.Stop();
    server_.Stop();
  }
  // What the trainer's registry serializes (same names and labels as trainer/engine).
  void SetTrainerMetrics(const std::string& job, int steps, int pass, double loss, double accuracy) {
    metrics::Registry r;
    r.AddCounter("tandem_trainer_steps_total", "Training steps completed.", {"job"}).WithLabels({job})->Inc(steps);
    r.AddGauge("tandem_trainer_pass", "Current pass (0-based).", {"job"}).WithLabels({job})->Set(pass);
    r.AddGauge("tandem_trainer_loss", "loss", {"job"}).WithLabels({job})->Set(loss);
    r.AddGauge("tandem_trainer_accuracy", "accuracy", {"job"}).WithLabels({job})->Set(accuracy);
    r.AddGauge("tandem_trainer_examples_per_second", "throughput", {"job"}).WithLabels({job})->Set(2500);
    std::lock_guard<std::mutex> lock(trainer_mu_);
    trainer_body_ = r.Serialize();
  }
  std::string Phase(const std::string& name) {
    auto j = client_->Get(kube::kTrainingJobs, "default", name);
    if (!j.ok()) return absl::StrCat("<", j.status().message(), ">");
    const json* p = kube::FieldAt(*j, "status.phase");
    return p != nullptr && p->is_string() ? p->get<std::string>() : "";
  }
  // Marks a pod as the kubelet would: Running and Ready, or terminated with an exit code.
  void SetPod(const std::string& name, const std::string& phase, int exit_code = -1) {
    auto s = kube::UpdateWithRetry(
        client_.get(), kube::kPods, "default", name,
        [&](json& pod) {
          pod["status"]["phase"] = phase;
          pod["status"]["podIP"] = "127.0.0.1";
          bool ready = phase == "Running";
          pod["status"]["conditions"] = {{{"type", "Ready"}, {"status", ready ? "True" : "False"}}};
          json statuses = json::array();
          // One status per container the pod has (the trainer alone for a job without pservers).
          for (const json& container : pod["spec"]["containers"]) {
            const std::string c = container.value("name", "");
            json st = {{"name", c}, {"ready", ready}, {"restartCount", 0}};
            if (exit_code >= 0 && c == "trainer") {
              st["state"] = {{"terminated", {{"exitCode", exit_code}}}};
            } else {
              st["state"] = {{"running", json::object()}};
            }
            statuses.push_back(st);
          }
          pod["status"]["containerStatuses"] = statuses;
          return absl::OkStatus();
        },
        /*status_subresource=*/true);
    ASSERT_TRUE(s.ok()) << s.status();
  }
  std::vector<std::string> EventReasons(const std::string& job) {
    auto list = client_->List(kube::kEvents, "default", {.field_selector = "involvedObject.name=" + job});
    std::vector<std::string> out;
    if (list.ok()) {
      for (const auto& e : (*list)["items"]) out.push_back(e.value("reason", ""));
    }
    return out;
  }
  bool HasEvent(const std::string& job, const std::string& reason) {
    auto r = EventReasons(job);
    return std::find(r.begin(), r.end(), reason) != r.end();
  }

  kube::testing::FakeApiServer server_;
  HttpServer trainer_;
  std::mutex trainer_mu_;
  std::string trainer_body_ = "# nothing yet\n";
  std::unique_ptr<kube::KubeClient> client_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(OperatorE2eTest, JobBecomesWorkersAndRunsRestartsAndIsCollected) {
  auto docs = YamlFileToJson(tandem::testing::SourceDir() + "/tests/operator/testing/testdata/trainingjob.yaml");
  ASSERT_TRUE(docs.ok());
  json job = (*docs)[0];
  job["metadata"]["name"] = "mnist";
  job["spec"]["restartPolicy"] = {{"backoffLimit", 2}, {"backoffSeconds", 1}, {"retryableExitCodes", {137}}};
  job["spec"]["publish"] = {{"everySteps", 50}};
  job["spec"]["serving"] = {{"replicas", 2}};
  ASSERT_TRUE(client_->Create(kube::kTrainingJobs, "default", job).ok());

  // Queued -> Admitted; the children appear.
  ASSERT_TRUE(Eventually([&] { return Phase("mnist") == "Admitted"; })) << Phase("mnist");
  ASSERT_TRUE(Eventually([&] {
    return client_->Get(kube::kPods, "default", "mnist-worker-0").ok() &&
           client_->Get(kube::kPods, "default", "mnist-worker-1").ok();
  }));
  // Dense sync over the ring, no embedding tables: nothing lives on a pserver, so the pods hold
  // the trainer alone and the Service has no pserver port (api::UsesPServers).
  auto worker0 = client_->Get(kube::kPods, "default", "mnist-worker-0");
  ASSERT_TRUE(worker0.ok()) << worker0.status();
  ASSERT_EQ((*worker0)["spec"]["containers"].size(), 1u) << (*worker0)["spec"]["containers"].dump();
  EXPECT_EQ((*worker0)["spec"]["containers"][0]["name"], "trainer");
  auto svc = client_->Get(kube::kServices, "default", "mnist");
  ASSERT_TRUE(svc.ok());
  EXPECT_EQ((*svc)["spec"]["clusterIP"], "None");
  EXPECT_EQ((*svc)["spec"]["ports"].size(), 1u) << (*svc)["spec"]["ports"].dump();
  EXPECT_TRUE(client_->Get(kube::kSecrets, "default", "mnist-token").ok());
  EXPECT_TRUE(client_->Get(kube::kConfigMaps, "default", "mnist-config").ok());
  auto policy = client_->Get(kube::kNetworkPolicies, "default", "mnist");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ((*policy)["spec"]["podSelector"]["matchLabels"]["tandem.dev/job"], "mnist");
  EXPECT_EQ((*policy)["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["tandem.dev/job"], "mnist")
      << "the ring and pserver ports only from the job's own pods";
  // spec.serving: tandem-serve follows the published models, behind its own Service.
  auto serve = client_->Get(kube::kDeployments, "default", "mnist-serve");
  ASSERT_TRUE(serve.ok()) << serve.status();
  EXPECT_EQ((*serve)["spec"]["replicas"], 2);
  EXPECT_EQ((*serve)["spec"]["template"]["spec"]["containers"][0]["args"][1], "/var/lib/tandem/checkpoints/published");
  EXPECT_TRUE(client_->Get(kube::kServices, "default", "mnist-serve").ok());
  auto claim = client_->Get(kube::kPersistentVolumeClaims, "default", "mnist-checkpoints");
  ASSERT_TRUE(claim.ok()) << claim.status();
  EXPECT_EQ((*claim)["spec"]["accessModes"], json({"ReadWriteMany"}));
  auto pod0 = client_->Get(kube::kPods, "default", "mnist-worker-0");
  ASSERT_TRUE(pod0.ok());
  EXPECT_EQ((*pod0)["spec"]["nodeName"], "gpu-node-1");
  std::string first_uid = kube::UidOf(*pod0);
  auto admitted = client_->Get(kube::kTrainingJobs, "default", "mnist");
  ASSERT_TRUE(admitted.ok());
  EXPECT_EQ((*admitted)["status"]["placement"].size(), 2u);
  ASSERT_TRUE(Eventually([&] {
    auto q = client_->Get(kube::kQueues, "", "default");
    return q.ok() && q->value("status", json::object()).value("admittedJobs", 0) == 1;
  })) << "the queue's status counts the admitted job";
  EXPECT_TRUE(HasEvent("mnist", "Queued"));
  EXPECT_TRUE(HasEvent("mnist", "Admitted"));

  // The kubelet's part: both workers run.
  SetPod("mnist-worker-0", "Running");
  SetPod("mnist-worker-1", "Running");
  ASSERT_TRUE(Eventually([&] { return Phase("mnist") == "Running"; })) << Phase("mnist");
  EXPECT_TRUE(Eventually([&] { return HasEvent("mnist", "Running"); }));

  // A worker dies with a retryable code: the gang restarts from the checkpoint after 1 s.
  SetPod("mnist-worker-1", "Failed", 137);
  ASSERT_TRUE(Eventually([&] { return HasEvent("mnist", "WorkerFailed"); }));
  ASSERT_TRUE(Eventually([&] {
    auto p = client_->Get(kube::kPods, "default", "mnist-worker-0");
    return p.ok() && kube::UidOf(*p) != first_uid;
  })) << "recreated";
  ASSERT_TRUE(Eventually([&] { return HasEvent("mnist", "Restarted"); }));
  auto restarted = client_->Get(kube::kTrainingJobs, "default", "mnist");
  ASSERT_TRUE(restarted.ok());
  EXPECT_EQ((*restarted)["status"]["restarts"], 1);

  // Deleting the job collects every child through owner references.
  ASSERT_TRUE(client_->Delete(kube::kTrainingJobs, "default", "mnist").ok());
  EXPECT_TRUE(kube::IsNotFound(client_->Get(kube::kPods, "default", "mnist-worker-0").status()));
  EXPECT_TRUE(kube::IsNotFound(client_->Get(kube::kServices, "default", "mnist").status()));
  EXPECT_TRUE(kube::IsNotFound(client_->Get(kube::kSecrets, "default", "mnist-token").status()));
  // A worker still reconciling from a stale cache may re-create a child; it is collected too.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(kube::IsNotFound(client_->Get(kube::kPersistentVolumeClaims, "default", "mnist-checkpoints").status()));
  for (const kube::Resource* r : {&kube::kPods, &kube::kServices, &kube::kSecrets, &kube::kConfigMaps,
                                  &kube::kPersistentVolumeClaims, &kube::kNetworkPolicies, &kube::kDeployments}) {
    auto left = client_->List(*r, "default", {.label_selector = "tandem.dev/job=mnist"});
    ASSERT_TRUE(left.ok());
    EXPECT_TRUE((*left)["items"].empty()) << r->plural << ": " << (*left)["items"].dump();
  }
}

TEST_F(OperatorE2eTest, RunningJobShowsRank0TrainerProgress) {
  auto docs = YamlFileToJson(tandem::testing::SourceDir() + "/tests/operator/testing/testdata/trainingjob.yaml");
  ASSERT_TRUE(docs.ok());
  json job = (*docs)[0];
  job["metadata"]["name"] = "mnist";
  ASSERT_TRUE(client_->Create(kube::kTrainingJobs, "default", job).ok());
  ASSERT_TRUE(Eventually([&] { return client_->Get(kube::kPods, "default", "mnist-worker-1").ok(); }));
  SetPod("mnist-worker-0", "Running");
  SetPod("mnist-worker-1", "Running");
  ASSERT_TRUE(Eventually([&] { return Phase("mnist") == "Running"; })) << Phase("mnist");

  auto progress = [&]() -> json {
    auto j = client_->Get(kube::kTrainingJobs, "default", "mnist");
    return j.ok() ? j->value("status", json::object()).value("progress", json::object()) : json::object();
  };
  // The endpoint serves no trainer metrics yet: no progress, and no harm.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(progress().empty()) << progress().dump();

  SetTrainerMetrics("mnist", 300, 1, 0.42, 0.87);
  ASSERT_TRUE(Eventually([&] { return progress().value("step", 0) == 300; })) << progress().dump();
  json p = progress();
  EXPECT_EQ(p["pass"], 2);
  EXPECT_DOUBLE_EQ(p["loss"].get<double>(), 0.42);
  EXPECT_DOUBLE_EQ(p["accuracy"].get<double>(), 0.87) << "no evaluation yet: the training accuracy";
  EXPECT_DOUBLE_EQ(p["examplesPerSec"].get<double>(), 5000) << "2 workers at rank 0's rate";
  EXPECT_EQ(p["summary"], "pass 2/3 33%");

  // Training moves on; the status follows without any pod or job event.
  SetTrainerMetrics("mnist", 650, 2, 0.31, 0.9);
  ASSERT_TRUE(Eventually([&] { return progress().value("step", 0) == 650; })) << progress().dump();
  EXPECT_EQ(progress()["summary"], "pass 3/3 67%");

  // Garbage from the endpoint keeps the last progress.
  {
    std::lock_guard<std::mutex> lock(trainer_mu_);
    trainer_body_ = "\x01\x02 not { metrics";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(progress().value("step", 0), 650);

  // kubectl's PROGRESS column (the CRD's printer column over status.progress.summary).
  if (tandem::testing::RunCommand("kubectl version --client").exit_code == 0) {
    fs::path dir = fs::temp_directory_path() / absl::StrCat("tandem_e2e_", ::getpid());
    fs::create_directories(dir);
    std::string kubeconfig = (dir / "kubeconfig").string();
    {
      std::ofstream out(kubeconfig);
      out << "apiVersion: v1\nkind: Config\nclusters: [{name: fake, cluster: {server: \"" << server_.url()
          << "\"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: fake, user: u, "
             "namespace: default}}]\ncurrent-context: c\n";
    }
    auto r = tandem::testing::RunCommand(absl::StrCat("kubectl --kubeconfig ", kubeconfig, " --cache-dir ",
                                                      (dir / "cache").string(), " get tj mnist"));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("pass 3/3 67%"), std::string::npos) << r.output;
    fs::remove_all(dir);
  } else {
    std::cerr << "kubectl is not installed: the PROGRESS column check is skipped\n";
  }
}

TEST_F(OperatorE2eTest, ExistingClaimSurvivesTheJob) {
  ASSERT_TRUE(client_->Create(kube::kPersistentVolumeClaims, "default",
                              {{"metadata", {{"name", "team-ckpt"}}},
                               {"spec", {{"accessModes", {"ReadWriteMany"}},
                                         {"resources", {{"requests", {{"storage", "100Gi"}}}}}}}}).ok());
  auto docs = YamlFileToJson(tandem::testing::SourceDir() + "/tests/operator/testing/testdata/trainingjob.yaml");
  ASSERT_TRUE(docs.ok());
  json job = (*docs)[0];
  job["metadata"]["name"] = "shared";
  job["spec"]["checkpoint"] = {{"storage", "ExistingClaim"}, {"claimName", "team-ckpt"}};
  ASSERT_TRUE(client_->Create(kube::kTrainingJobs, "default", job).ok());
  ASSERT_TRUE(Eventually([&] { return client_->Get(kube::kPods, "default", "shared-worker-1").ok(); }));
  auto pod = client_->Get(kube::kPods, "default", "shared-worker-1");
  EXPECT_EQ((*pod)["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"], "team-ckpt");
  EXPECT_TRUE(kube::IsNotFound(client_->Get(kube::kPersistentVolumeClaims, "default", "shared-checkpoints").status()));
  ASSERT_TRUE(client_->Delete(kube::kTrainingJobs, "default", "shared").ok());
  EXPECT_TRUE(Eventually([&] { return kube::IsNotFound(client_->Get(kube::kPods, "default", "shared-worker-1").status()); }));
  EXPECT_TRUE(client_->Get(kube::kPersistentVolumeClaims, "default", "team-ckpt").ok()) << "the user's claim stays";
}

TEST_F(OperatorE2eTest, SecondJobWaitsWithAReasonUntilCapacityFrees) {
  auto docs = YamlFileToJson(tandem::testing::SourceDir() + "/tests/operator/testing/testdata/trainingjob.yaml");
  ASSERT_TRUE(docs.ok());
  json big = (*docs)[0];
  big["metadata"]["name"] = "big";
  big["spec"]["workers"] = {{"count", 4}};
  big["spec"]["trainer"]["resources"]["requests"]["nvidia.com/gpu"] = 1;
  ASSERT_TRUE(client_->Create(kube::kTrainingJobs, "default", big).ok());
  ASSERT_TRUE(Eventually([&] { return Phase("big") == "Admitted"; })) << Phase("big");
  json next = big;
  next["metadata"]["name"] = "next";
  next["spec"]["workers"] = {{"count", 1}};
  ASSERT_TRUE(client_->Create(kube::kTrainingJobs, "default", next).ok());
  ASSERT_TRUE(Eventually([&] {
    auto j = client_->Get(kube::kTrainingJobs, "default", "next");
    return j.ok() && !j->value("status", json::object()).value("pendingReason", "").empty();
  }));
  auto waiting = client_->Get(kube::kTrainingJobs, "default", "next");
  EXPECT_EQ((*waiting)["status"]["phase"], "Queued");
  EXPECT_FALSE((*waiting)["status"].contains("queuePosition")) << "positions are in the Queue's status";
  EXPECT_NE((*waiting)["status"]["pendingReason"].get<std::string>().find("nvidia.com/gpu"), std::string::npos)
      << (*waiting)["status"]["pendingReason"];
  // Its position, and the free capacity behind its reason, are in its Queue's status.waiting.
  ASSERT_TRUE(Eventually([&] {
    auto q = client_->Get(kube::kQueues, "", (*waiting)["spec"]["queue"].get<std::string>());
    if (!q.ok()) return false;
    const json* jobs = kube::FieldAt(*q, "status.waiting.jobs");
    return jobs != nullptr && jobs->is_array() && !jobs->empty() && (*jobs)[0].value("name", "") == "next" &&
           (*jobs)[0].value("position", 0) == 1 &&
           (*jobs)[0].value("detail", "").find("position 1 of 1") != std::string::npos;
  })) << client_->Get(kube::kQueues, "", (*waiting)["spec"]["queue"].get<std::string>())->dump();

  // Suspending the big job releases its GPUs; the waiting one is admitted.
  ASSERT_TRUE(client_->Patch(kube::kTrainingJobs, "default", "big", kube::PatchType::kMerge,
                             {{"spec", {{"suspend", true}}}}).ok());
  ASSERT_TRUE(Eventually([&] { return Phase("big") == "Suspended"; })) << Phase("big");
  ASSERT_TRUE(Eventually([&] { return Phase("next") == "Admitted"; })) << Phase("next");
}

}  // namespace
}  // namespace tandem::controller
