// Regression test for the admission stall seen at scale (bench/cluster-scale: 583 of 10,000 jobs
// admitted, then none for ten minutes with 5,379 GPUs free). The scheduling pass was one key in
// the same FIFO work queue as the jobs: behind a backlog of job reconciles (each admitted job
// creating its children and workers, ~100 ms per request through a loaded apiserver) the next
// pass waited for the whole backlog, and each pass queued one more no-op reconcile per pending
// job whose queue position it rewrote. Here: a backlog of admitted jobs whose workers are still
// to be created, and one queued job that fits. The pass must admit it before the backlog is
// worked off, and must not queue reconciles of jobs it only re-ranked.
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "operator/controller/controller.h"
#include "operator/kube/kube_client.h"
#include "operator/testing/fake_api_server.h"
#include "tests/common/test_util.h"

namespace tandem::controller {
namespace {

using nlohmann::json;
using ::tandem::testing::Eventually;

json JobSpec(int workers) {
  return {{"queue", "q"},
          {"image", "tandem/tandem:0.1.0"},
          {"workers", {{"count", workers}}},
          {"trainer", {{"resources", {{"requests", {{"cpu", "1"}, {"memory", "1Gi"}, {"nvidia.com/gpu", 1}}}}}}},
          {"pserver", {{"resources", {{"requests", {{"cpu", "500m"}, {"memory", "1Gi"}}}}}}},
          {"checkpoint", {{"storage", "HostPath"}}},
          {"passes", 1},
          {"model", {{"inputs", {{{"name", "image"}, {"source", "features"}, {"shape", {1, 28, 28}}},
                                 {{"name", "label"}, {"source", "labels"}}}},
                     {"layers", {{{"name", "fc1"}, {"type", "fc"}, {"input", "image"}, {"size", 10}},
                                 {{"name", "cost"}, {"type", "softmax_cross_entropy"}, {"inputs", {"fc1", "label"}}}}},
                     {"cost", "cost"}}},
          {"data", {{"train", {{"format", "idx"}}}, {"test", {{"format", "idx"}}}, {"batchSize", 64}}}};
}

TEST(AdmissionStallTest, TheSchedulingPassIsNotHeldUpByABacklogOfJobReconciles) {
  constexpr int kBacklog = 30;  // admitted jobs of 2 workers whose pods are still to be created
  std::mutex mu;
  std::vector<std::string> requests;  // "METHOD path" in the order the stand-in received them
  kube::testing::FakeApiServerOptions so;
  so.on_request = [&](const HttpRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    std::string line = absl::StrCat(r.method, " ", r.path);
    if (r.method == "PUT" && absl::StrContains(r.body, "\"Admitted\"")) line += " (Admitted)";
    requests.push_back(line);
  };
  kube::testing::FakeApiServer server(so);
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  kube::KubeConfig cfg;
  cfg.server = server.url();
  kube::KubeClient client(cfg);
  for (const char* crd : {"trainingjob.yaml", "queue.yaml"}) {
    auto docs = YamlFileToJson(absl::StrCat(tandem::testing::SourceDir(), "/crds/", crd));
    ASSERT_TRUE(docs.ok()) << docs.status();
    for (const auto& d : *docs) ASSERT_TRUE(client.Create(kube::kCustomResourceDefinitions, "", d).ok());
  }
  json node = {{"metadata", {{"name", "n1"}}},
               {"status", {{"allocatable", {{"cpu", "256"}, {"memory", "1Ti"}, {"nvidia.com/gpu", "100"}}},
                           {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
  ASSERT_TRUE(client.Create(kube::kNodes, "", node).ok());
  json queue = {{"metadata", {{"name", "q"}}},
                {"spec", {{"weight", 1}, {"guaranteed", {{"cpu", "256"}, {"memory", "1Ti"}, {"nvidia.com/gpu", 100}}}}}};
  ASSERT_TRUE(client.Create(kube::kQueues, "", queue).ok());
  auto create = [&](const std::string& name, int workers, const json& status) {
    auto made = client.Create(kube::kTrainingJobs, "default", {{"metadata", {{"name", name}}}, {"spec", JobSpec(workers)}});
    ASSERT_TRUE(made.ok()) << made.status();
    json o = *made;
    o["status"] = status;
    ASSERT_TRUE(client.UpdateStatus(kube::kTrainingJobs, o).ok());
  };
  for (int i = 0; i < kBacklog; ++i) {
    create(absl::StrCat("backlog-", i), 2, {{"phase", "Admitted"}, {"placement", {"n1", "n1"}}});
  }
  create("late", 1, {{"phase", "Queued"}});
  // Waiting jobs that can never fit (200 GPUs on a 100-GPU node): the pass re-ranks them.
  for (int i = 0; i < 5; ++i) create(absl::StrCat("huge-", i), 200, {{"phase", "Queued"}});

  ControllerOptions o;
  o.workers = 1;           // one worker: the order of work is the order of the queue
  o.api_concurrency = 0;   // and each request in line
  o.reconciler.schedule_interval_s = 3600;
  o.progress.interval_s = 0;
  Controller controller(&client, o);
  ASSERT_TRUE(controller.Start().ok());
  auto admitted_late = [&] {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& r : requests) {
      if (absl::StrContains(r, "/trainingjobs/late/status (Admitted)")) return true;
    }
    return false;
  };
  ASSERT_TRUE(Eventually(admitted_late, std::chrono::seconds(120)));
  auto backlog_done = [&] {
    auto pods = client.List(kube::kPods, "default");
    return pods.ok() && (*pods)["items"].size() >= 2u * kBacklog;
  };
  ASSERT_TRUE(Eventually(backlog_done, std::chrono::seconds(120)));
  // Give the huge jobs' no-op reconciles, had they been queued, a chance to show up.
  ASSERT_TRUE(Eventually([&] { return controller.queue().Len() == 0; }, std::chrono::seconds(60)));
  controller.Stop();

  int pods_before_admission = 0, huge_status_writes = 0;
  bool seen_admission = false;
  for (const auto& r : requests) {
    if (absl::StrContains(r, "/trainingjobs/late/status (Admitted)")) seen_admission = true;
    if (!seen_admission && absl::StartsWith(r, "POST /api/v1/namespaces/default/pods")) ++pods_before_admission;
    if (absl::StartsWith(r, "PUT /apis/tandem.dev/v1alpha1/namespaces/default/trainingjobs/huge-")) ++huge_status_writes;
  }
  EXPECT_EQ(pods_before_admission, 0)
      << "the pass waited behind the backlog: " << pods_before_admission << " of its " << 2 * kBacklog
      << " worker pods were created before the queued job that fits was admitted";
  EXPECT_GT(huge_status_writes, 0) << "the pass wrote the waiting jobs' reasons";
}

TEST(AdmissionStallTest, OnlyUpdatesThatMatterToAQueuedJobReconcileIt) {
  auto job = [](const std::string& phase, int generation, bool deleting = false) {
    json j = {{"metadata", {{"name", "a"}, {"namespace", "default"}, {"generation", generation}}},
              {"status", {{"phase", phase}, {"pendingReason", "in queue q: insufficient nvidia.com/gpu"}}}};
    if (deleting) j["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z";
    return j;
  };
  json new_reason = job("Queued", 1);
  new_reason["status"]["pendingReason"] = "in queue q: waiting for preempted jobs";
  struct Case {
    const char* what;
    json old_job, new_job;
    bool reconcile;
  } cases[] = {
      {"the pass gave a queued job a new reason", job("Queued", 1), new_reason, false},
      {"admitted", job("Queued", 1), job("Admitted", 1), true},
      {"preempted back to the queue", job("Running", 1), job("Queued", 1), true},
      {"the spec changed (suspend)", job("Queued", 1), job("Queued", 2), true},
      {"being deleted", job("Queued", 1), job("Queued", 1, true), true},
      {"queued by its own reconcile", job("", 1), job("Queued", 1), true},
      {"running job's status", job("Running", 1), job("Running", 1), true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Controller::JobUpdateNeedsReconcile(c.old_job, c.new_job), c.reconcile) << c.what;
  }
}

}  // namespace
}  // namespace tandem::controller
