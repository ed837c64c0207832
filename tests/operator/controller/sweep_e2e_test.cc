// The Sweep controller beside the TrainingJob controller, against the API server stand-in over
// HTTP: a Sweep becomes trial TrainingJobs owned by it; the trials are admitted through the
// template's Queue (which holds one trial at a time, so the second waits, Queued); the objective
// after each pass comes from the trials' status.progress (scraped from a stand-in trainer
// endpoint); ASHA pauses trials at its rungs by suspending them and promotes the best by
// unsuspending it (TrialPaused, TrialResumed, status.trialsByPhase.paused); trials never promoted
// end Stopped; the best trial is reported; the sweep succeeds; deleting it deletes every trial. An invalid Sweep fails with the field named.
// A CPU budget (spec.budget.cpuSeconds) charges running trials their requests and ends the sweep;
// tandem_operator_sweep_cpu_seconds follows the charge and tandem_operator_sweep_budget_cpu_seconds
// shows the budget (only for a sweep with one); both go with the deleted sweep.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "operator/controller/controller.h"
#include "operator/controller/sweep_controller.h"
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

// The value of one series (`name{labels}`, as the text shows it) in the operator's default
// registry; NaN when there is no such series.
double SeriesValue(const std::string& series) {
  const std::string text = metrics::Registry::Default().Serialize();
  const std::string prefix = series + " ";
  for (size_t at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at + 1)) {
    if (at != 0 && text[at - 1] != '\n') continue;
    const size_t start = at + prefix.size();
    double v = 0;
    if (absl::SimpleAtod(text.substr(start, text.find('\n', start) - start), &v)) return v;
  }
  return std::nan("");
}

constexpr char kSpent[] = R"(tandem_operator_sweep_cpu_seconds{namespace="default",sweep="hp"})";
constexpr char kBudget[] = R"(tandem_operator_sweep_budget_cpu_seconds{namespace="default",sweep="hp"})";

constexpr char kSweep[] = R"(
apiVersion: tandem.dev/v1alpha1
kind: Sweep
metadata: {name: hp, namespace: default}
spec:
  template:
    metadata: {labels: {team: vision}}
    spec:
      queue: research
      workers: {count: 1}
      trainer: {resources: {requests: {cpu: "1", memory: 1Gi}}}
      pserver: {resources: {requests: {cpu: 100m, memory: 256Mi}}}
      passes: 4
      model:
        inputs:
          - {name: image, source: features, shape: [1, 28, 28]}
          - {name: label, source: labels}
        layers:
          - {name: fc1, type: fc, input: image, size: 32}
          - {name: fc2, type: fc, input: fc1, size: 10}
          - {name: cost, type: softmax_cross_entropy, inputs: [fc2, label]}
      optimizer: {type: momentum, learningRate: 0.1, momentum: 0.9}
  parameters:
    - {name: lr, path: spec.optimizer.learningRate, type: float, min: 0.01, max: 0.5, scale: log}
  objective: {metric: test_accuracy}
  algorithm: {name: random}
  earlyStopping: {policy: asha, minPasses: 1, reductionFactor: 2}
  parallelism: 2
  maxTrials: 3
  seed: 3
)";

class SweepE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start("127.0.0.1", 0).ok());
    kube::KubeConfig cfg;
    cfg.server = server_.url();
    client_ = std::make_unique<kube::KubeClient>(cfg);
    ASSERT_TRUE(kube::testing::InstallCrds(client_.get(), tandem::testing::SourceDir() + "/crds").ok());
    // The research queue holds one trial (1.1 CPU) and may not borrow: the second one waits.
    json quota = {{"cpu", "1500m"}, {"memory", "8Gi"}, {"nvidia.com/gpu", 0}};
    json queue = {{"metadata", {{"name", "research"}}},
                  {"spec", {{"weight", 1}, {"guaranteed", quota},
                            {"borrowingLimit", {{"cpu", 0}, {"memory", 0}, {"nvidia.com/gpu", 0}}}}}};
    ASSERT_TRUE(client_->Create(kube::kQueues, "", queue).ok());
    json node = {{"metadata", {{"name", "node-1"}}},
                 {"status", {{"allocatable", {{"cpu", "16"}, {"memory", "64Gi"}, {"nvidia.com/gpu", "0"}}},
                             {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
    ASSERT_TRUE(client_->Create(kube::kNodes, "", node).ok());
    trainer_.Handle("GET", "/metrics", [this](const HttpRequest&, HttpResponseWriter& w) {
      std::lock_guard<std::mutex> lock(mu_);
      w.Respond(200, "text/plain; version=0.0.4", registry_.Serialize());
    });
    ASSERT_TRUE(trainer_.Start("127.0.0.1", 0).ok());
    ControllerOptions o;
    o.reconciler.build.ports.trainer_metrics = trainer_.port();
    o.progress.interval_s = 0.1;
    o.progress.timeout_s = 1;
    o.reconciler.schedule_interval_s = 0.3;
    o.reconciler.build.termination_grace_s = 1;
    o.informer.backoff_initial_s = 0.05;
    o.informer.backoff_max_s = 0.5;
    jobs_ = std::make_unique<Controller>(client_.get(), o);
    ASSERT_TRUE(jobs_->Start().ok());
    SweepControllerOptions so;
    so.informer = o.informer;
    sweeps_ = std::make_unique<SweepController>(client_.get(), so);
    ASSERT_TRUE(sweeps_->Start().ok());
  }
  void TearDown() override {
    if (sweeps_) sweeps_->Stop();
    if (jobs_) jobs_->Stop();
    trainer_.Stop();
    server_.Stop();
  }
  // A trial's trainer, as its /metrics shows it: the test set after `pass` passes, and with
  // `examples_per_sec` its training throughput (the trial's cost).
  void Evaluated(const std::string& job, int pass, double accuracy, double examples_per_sec = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    auto gauge = [&](const char* name) { return registry_.AddGauge(name, name, {"job"}).WithLabels({job}); };
    registry_.AddCounter("tandem_trainer_steps_total", "steps", {"job"}).WithLabels({job})->Inc(100);
    gauge("tandem_trainer_pass")->Set(pass);
    gauge("tandem_trainer_test_accuracy")->Set(accuracy);
    gauge("tandem_trainer_test_loss")->Set(1 - accuracy);
    gauge("tandem_trainer_test_pass")->Set(pass);
    if (examples_per_sec > 0) gauge("tandem_trainer_examples_per_second")->Set(examples_per_sec);
  }
  // The kubelet's part for a one-worker trial (once the operator created its pod): it runs or ends.
  void SetWorker(const std::string& job, const std::string& phase) {
    ASSERT_TRUE(Eventually([&] { return client_->Get(kube::kPods, "default", job + "-worker-0").ok(); })) << job;
    auto s = kube::UpdateWithRetry(
        client_.get(), kube::kPods, "default", job + "-worker-0",
        [&](json& pod) {
          const bool running = phase == "Running";
          pod["status"] = {{"phase", phase},
                           {"podIP", "127.0.0.1"},
                           {"conditions", {{{"type", "Ready"}, {"status", running ? "True" : "False"}}}}};
          return absl::OkStatus();
        },
        /*status_subresource=*/true);
    ASSERT_TRUE(s.ok()) << s.status();
  }
  json Get(const kube::Resource& r, const std::string& name) {
    auto o = client_->Get(r, "default", name);
    return o.ok() ? *o : json::object();
  }
  // The research queue holds one trial: waits until one of hp-0 and hp-1 is Admitted and the
  // other Queued, and names them.
  bool AdmittedAndQueued(std::string* first, std::string* second) {
    return Eventually([&] {
      const std::string p0 = Field(kube::kTrainingJobs, "hp-0", "status.phase");
      const std::string p1 = Field(kube::kTrainingJobs, "hp-1", "status.phase");
      if (p0 == "Admitted" && p1 == "Queued") *first = "hp-0", *second = "hp-1";
      if (p1 == "Admitted" && p0 == "Queued") *first = "hp-1", *second = "hp-0";
      return !first->empty();
    });
  }
  std::string Field(const kube::Resource& r, const std::string& name, const std::string& path) {
    const json o = Get(r, name);
    const json* f = kube::FieldAt(o, path);
    return f == nullptr ? "" : (f->is_string() ? f->get<std::string>() : f->dump());
  }
  bool SweepEvent(const std::string& reason) {
    auto list = client_->List(kube::kEvents, "default", {.field_selector = "involvedObject.name=hp"});
    if (!list.ok()) return false;
    for (const auto& e : (*list)["items"])
      if (e.value("reason", "") == reason) return true;
    return false;
  }

  kube::testing::FakeApiServer server_;
  HttpServer trainer_;
  std::mutex mu_;
  metrics::Registry registry_;
  std::unique_ptr<kube::KubeClient> client_;
  std::unique_ptr<Controller> jobs_;
  std::unique_ptr<SweepController> sweeps_;
};

TEST_F(SweepE2eTest, TrialsQueueRunPauseAtRungsArePromotedAndTheBestIsReported) {
  auto docs = YamlToJson(kSweep, "sweep.yaml");
  ASSERT_TRUE(docs.ok());
  ASSERT_TRUE(client_->Create(kube::kSweeps, "default", (*docs)[0]).ok());

  // Two trials (parallelism 2), owned by the sweep, in the template's queue.
  ASSERT_TRUE(Eventually([&] { return !Get(kube::kTrainingJobs, "hp-1").empty(); }));
  json trial0 = Get(kube::kTrainingJobs, "hp-0");
  ASSERT_FALSE(trial0.empty());
  EXPECT_EQ(trial0["metadata"]["ownerReferences"][0]["kind"], "Sweep");
  EXPECT_EQ(trial0["metadata"]["ownerReferences"][0]["controller"], true);
  EXPECT_EQ(trial0["metadata"]["labels"]["tandem.dev/sweep"], "hp");
  EXPECT_EQ(trial0["metadata"]["labels"]["team"], "vision");
  EXPECT_EQ(trial0["spec"]["queue"], "research");
  json params0 = json::parse(trial0["metadata"]["annotations"]["tandem.dev/parameters"].get<std::string>());
  EXPECT_EQ(trial0["spec"]["optimizer"]["learningRate"], params0["lr"]);
  EXPECT_TRUE(Eventually([&] { return SweepEvent("TrialCreated"); }));

  // The queue admits one trial; the other waits in it.
  std::string first, second;
  ASSERT_TRUE(AdmittedAndQueued(&first, &second))
      << Get(kube::kTrainingJobs, "hp-0").dump() << Get(kube::kTrainingJobs, "hp-1").dump();
  EXPECT_TRUE(Eventually([&] { return Field(kube::kSweeps, "hp", "status.trialsByPhase.pending") == "2"; }))
      << Field(kube::kSweeps, "hp", "status");

  // ASHA as Li et al. have it (eta 2, 4 passes: rungs at passes 1 and 2). The first trial runs
  // and reports 0.9 after pass 1: it is paused at rung 1 (its job suspended), alone there (the
  // top floor(1/2) is empty); its slot goes to a new trial, the third.
  SetWorker(first, "Running");
  Evaluated(first, 1, 0.9, /*examples_per_sec=*/500);
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, first, "spec.suspend") == "true"; }))
      << Field(kube::kSweeps, "hp", "status");
  EXPECT_TRUE(Eventually([&] { return SweepEvent("TrialPaused"); }));
  ASSERT_TRUE(Eventually([&] { return Field(kube::kSweeps, "hp", "status.trialsByPhase.paused") == "1"; }));
  EXPECT_EQ(Field(kube::kSweeps, "hp", "status.bestTrial.name"), first);
  ASSERT_TRUE(Eventually([&] { return !Get(kube::kTrainingJobs, "hp-2").empty(); }));
  // Suspending released its place in the queue: the second trial is admitted and is worse at
  // rung 1. It is paused there too, and the first, now the top 1 of 2 at rung 1, is promoted:
  // its job is unsuspended (its workers would resume from the checkpoint on its claim).
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, second, "status.phase") == "Admitted"; }))
      << Get(kube::kTrainingJobs, second).dump();
  SetWorker(second, "Running");
  Evaluated(second, 1, 0.5);
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, second, "spec.suspend") == "true"; }));
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, first, "spec.suspend") == "false"; }))
      << Field(kube::kSweeps, "hp", "status");
  EXPECT_TRUE(Eventually([&] { return SweepEvent("TrialResumed"); }));
  // The Sweep's status is written after the trials' patches (and may lose a 409 and be retried
  // under load): wait until it shows both, then check it in detail.
  json st;
  EXPECT_TRUE(Eventually([&] {
    st = Get(kube::kSweeps, "hp")["status"];
    bool second_paused = false, first_promoted = false;
    for (const json& t : st.value("trials", json::array())) {
      if (t.value("name", "") == second) second_paused = t.value("phase", "") == "Paused";
      if (t.value("name", "") == first) first_promoted = t.value("promotedFrom", 0) == 1;
    }
    return second_paused && first_promoted;
  })) << st.dump();
  for (const json& t : st.value("trials", json::array())) {
    if (t["name"] == second) {
      EXPECT_EQ(t["phase"], "Paused") << t.dump();
      EXPECT_EQ(t["pausedAt"], 1) << t.dump();
      EXPECT_NE(t.value("reason", "").find("asha"), std::string::npos) << t.dump();
    }
    if (t["name"] == first) EXPECT_EQ(t.value("promotedFrom", 0), 1) << t.dump();
  }
  // The cost-aware sampler's cost: worker-seconds per example from the trainer's throughput (one
  // worker at 500 examples/s); a trial whose trainer reported none has no cost.
  for (const json& t : st.value("trials", json::array())) {
    if (t["name"] == first) EXPECT_NEAR(t.value("cost", 0.0), 1.0 / 500, 1e-12) << t.dump();
    if (t["name"] == second) EXPECT_FALSE(t.contains("cost")) << t.dump();
  }

  // The third trial and the promoted first wait in the queue (one at a time). The third is the
  // best at rung 1 (0.95): it is promoted in the look that sees it there and goes on without
  // pausing. At rung 2 it beats the first (0.96 vs 0.92) and is promoted from there, trains its
  // last pass and succeeds. Nothing is left to promote or start: the paused second and first end
  // Stopped.
  auto third_to_rung_2 = [&] {
    SetWorker("hp-2", "Running");
    Evaluated("hp-2", 1, 0.95);
    ASSERT_TRUE(Eventually([&] { return Field(kube::kSweeps, "hp", "status.bestTrial.objective") == "0.95"; }));
    EXPECT_EQ(Field(kube::kTrainingJobs, "hp-2", "spec.suspend"), "false") << "promoted at once: it goes on";
    Evaluated("hp-2", 2, 0.96);
  };
  auto first_to_rung_2 = [&] {
    SetWorker(first, "Running");
    Evaluated(first, 2, 0.92);
    ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, first, "spec.suspend") == "true"; }));
  };
  std::string next;  // the queue admits one of them first
  ASSERT_TRUE(Eventually([&] {
    if (Field(kube::kTrainingJobs, "hp-2", "status.phase") == "Admitted") next = "hp-2";
    else if (Field(kube::kTrainingJobs, first, "status.phase") == "Admitted") next = first;
    return !next.empty();
  })) << Get(kube::kTrainingJobs, "hp-2").dump() << Get(kube::kTrainingJobs, first).dump();
  if (next == "hp-2") {
    // The third reaches rung 2 alone: paused; the first follows with less: paused, and the third
    // (top 1 of 2 at rung 2) is promoted and queued again.
    third_to_rung_2();
    ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, "hp-2", "spec.suspend") == "true"; }));
    ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, first, "status.phase") == "Admitted"; }));
    first_to_rung_2();
    ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, "hp-2", "spec.suspend") == "false"; }))
        << Field(kube::kSweeps, "hp", "status");
    ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, "hp-2", "status.phase") == "Admitted"; }));
    SetWorker("hp-2", "Running");
  } else {
    // The first reaches rung 2 alone: paused; the third reaches it with more and goes on.
    first_to_rung_2();
    ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, "hp-2", "status.phase") == "Admitted"; }));
    third_to_rung_2();
  }
  ASSERT_TRUE(Eventually([&] {
    const json sweep = Get(kube::kSweeps, "hp");
    for (const json& t : sweep["status"]["trials"])
      if (t["name"] == "hp-2") return t.value("promotedFrom", 0) == 2;
    return false;
  })) << Field(kube::kSweeps, "hp", "status");
  Evaluated("hp-2", 4, 0.97);
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, "hp-2", "status.progress.testPass") == "4"; }));
  SetWorker("hp-2", "Succeeded");
  ASSERT_TRUE(Eventually([&] { return Field(kube::kSweeps, "hp", "status.phase") == "Succeeded"; }))
      << Field(kube::kSweeps, "hp", "status");
  st = Get(kube::kSweeps, "hp")["status"];
  EXPECT_EQ(st["bestTrial"]["name"], "hp-2");
  EXPECT_EQ(st["bestTrial"]["objective"], 0.97);
  EXPECT_EQ(st["bestTrial"]["pass"], 4);
  EXPECT_EQ(st["trialsByPhase"]["succeeded"], 1);
  EXPECT_EQ(st["trialsByPhase"]["stopped"], 2);
  EXPECT_EQ(st["trialsByPhase"]["paused"], 0);
  EXPECT_EQ(st["trials"].size(), 3u);
  for (const json& t : st["trials"]) {
    if (t["name"] == "hp-2") continue;
    EXPECT_EQ(t["phase"], "Stopped") << t.dump();
    EXPECT_NE(t["reason"].get<std::string>().find("not promoted"), std::string::npos) << t.dump();
  }
  EXPECT_TRUE(SweepEvent("NewBestTrial"));
  EXPECT_TRUE(SweepEvent("TrialStopped"));
  EXPECT_TRUE(Eventually([&] { return SweepEvent("Completed"); }));
  const std::string text = metrics::Registry::Default().Serialize();
  EXPECT_NE(text.find("tandem_operator_sweep_best_objective{namespace=\"default\",sweep=\"hp\",metric=\"test_accuracy\"} 0.97"),
            std::string::npos);
  EXPECT_NE(text.find("tandem_operator_sweep_trials_stopped_total{policy=\"asha\"} 2"), std::string::npos) << text;
  // Its trials were charged while they ran (the spent gauge is kept without a budget too); it has
  // no budget, so no budget series.
  EXPECT_GT(SeriesValue(kSpent), 0) << text;
  EXPECT_TRUE(std::isnan(SeriesValue(kBudget))) << text;
  EXPECT_TRUE(Eventually([&] {
    return SeriesValue(R"(tandem_operator_sweep_phase{namespace="default",sweep="hp",phase="Succeeded"})") == 1;
  })) << metrics::Registry::Default().Serialize();
  EXPECT_EQ(SeriesValue(R"(tandem_operator_sweep_phase{namespace="default",sweep="hp",phase="Failed"})"), 0);

  // Deleting the sweep deletes its trials (owner references) and their workers.
  ASSERT_TRUE(client_->Delete(kube::kSweeps, "default", "hp").ok());
  for (const char* t : {"hp-0", "hp-1", "hp-2"})
    EXPECT_TRUE(Eventually([&] { return kube::IsNotFound(client_->Get(kube::kTrainingJobs, "default", t).status()); }))
        << t;
  EXPECT_TRUE(Eventually([&] { return kube::IsNotFound(client_->Get(kube::kPods, "default", "hp-2-worker-0").status()); }));
  // Its series go with it.
  EXPECT_TRUE(Eventually([&] { return std::isnan(SeriesValue(kSpent)); })) << metrics::Registry::Default().Serialize();
  EXPECT_TRUE(std::isnan(SeriesValue(
      R"(tandem_operator_sweep_trials{namespace="default",sweep="hp",phase="Succeeded"})")));
  EXPECT_TRUE(std::isnan(SeriesValue(R"(tandem_operator_sweep_phase{namespace="default",sweep="hp",phase="Succeeded"})")));
}

// earlyStopping.policy sha on a cluster: the same trials as above, but the first is promoted only
// once every trial has reached rung 1. When the second pauses there, ASHA promoted the first
// (top 1 of 2); SHA waits for the third.
TEST_F(SweepE2eTest, ShaPromotesOnlyOnceEveryTrialReachedTheRung) {
  auto docs = YamlToJson(kSweep, "sweep.yaml");
  ASSERT_TRUE(docs.ok());
  json sw = (*docs)[0];
  sw["spec"]["earlyStopping"]["policy"] = "sha";
  ASSERT_TRUE(client_->Create(kube::kSweeps, "default", sw).ok());
  std::string first, second;
  ASSERT_TRUE(AdmittedAndQueued(&first, &second))
      << Get(kube::kTrainingJobs, "hp-0").dump() << Get(kube::kTrainingJobs, "hp-1").dump();
  SetWorker(first, "Running");
  Evaluated(first, 1, 0.9);
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, first, "spec.suspend") == "true"; }));
  ASSERT_TRUE(Eventually([&] { return !Get(kube::kTrainingJobs, "hp-2").empty(); }));
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, second, "status.phase") == "Admitted"; }));
  SetWorker(second, "Running");
  Evaluated(second, 1, 0.5);
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, second, "spec.suspend") == "true"; }));
  json st;
  ASSERT_TRUE(Eventually([&] {
    st = Get(kube::kSweeps, "hp")["status"];
    return st.value("trialsByPhase", json::object()).value("paused", 0) == 2;
  })) << st.dump();
  // The look that paused the second saw rung 1 incomplete (the third has not reached it): the
  // first stays paused.
  EXPECT_EQ(Field(kube::kTrainingJobs, first, "spec.suspend"), "true");
  for (const json& t : st["trials"]) {
    if (t["name"] == first) EXPECT_EQ(t["phase"], "Paused") << t.dump();
    if (t["name"] == second) EXPECT_NE(t.value("reason", "").find("sha: paused at rung 1"), std::string::npos) << t.dump();
  }
  // The third reaches rung 1 with 0.7: rung 1 is complete, its top 1 of 3 (the first) is promoted.
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, "hp-2", "status.phase") == "Admitted"; }))
      << Get(kube::kTrainingJobs, "hp-2").dump();
  SetWorker("hp-2", "Running");
  Evaluated("hp-2", 1, 0.7);
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, "hp-2", "spec.suspend") == "true"; }));
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, first, "spec.suspend") == "false"; }))
      << Field(kube::kSweeps, "hp", "status");
  ASSERT_TRUE(Eventually([&] {
    st = Get(kube::kSweeps, "hp")["status"];
    for (const json& t : st.value("trials", json::array()))
      if (t["name"] == first) return t.value("promotedFrom", 0) == 1;
    return false;
  })) << st.dump();
  EXPECT_EQ(Field(kube::kTrainingJobs, second, "spec.suspend"), "true");
}

// spec.budget.cpuSeconds on a cluster: a Running trial is charged its workers' CPU requests (1 CPU
// here: a dense ring job's worker has no pserver) for the seconds it runs; once that adds up to
// the budget, the running trial is stopped (suspended, with the reason) and the sweep ends
// Succeeded with reason BudgetSpent, without creating the other trials.
TEST_F(SweepE2eTest, ACpuBudgetStopsTheRunningTrialAndEndsTheSweep) {
  auto docs = YamlToJson(kSweep, "sweep.yaml");
  ASSERT_TRUE(docs.ok());
  json sw = (*docs)[0];
  sw["spec"]["earlyStopping"] = {{"policy", "none"}};
  sw["spec"]["parallelism"] = 1;
  sw["spec"]["budget"] = {{"cpuSeconds", 2}};
  // Every charge falls after this: the first look that sees the sweep starts its accounting.
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(client_->Create(kube::kSweeps, "default", sw).ok());
  ASSERT_TRUE(Eventually([&] { return Field(kube::kTrainingJobs, "hp-0", "status.phase") == "Admitted"; }));
  // Admitted, not yet running: nothing is charged; the gauges exist.
  EXPECT_TRUE(Eventually([&] { return SeriesValue(kBudget) == 2; })) << metrics::Registry::Default().Serialize();
  EXPECT_EQ(SeriesValue(kSpent), 0) << metrics::Registry::Default().Serialize();
  SetWorker("hp-0", "Running");
  Evaluated("hp-0", 1, 0.8);
  // It is charged while it runs: status.trials[0].cpuSeconds grows.
  ASSERT_TRUE(Eventually([&] {
    const json t = Get(kube::kSweeps, "hp")["status"]["trials"][0];
    return t.value("cpuSeconds", 0.0) > 0;
  })) << Field(kube::kSweeps, "hp", "status");
  // The spent gauge rises once the trial runs; the budget gauge is the spec's.
  EXPECT_TRUE(Eventually([&] { return SeriesValue(kSpent) > 0; })) << metrics::Registry::Default().Serialize();
  EXPECT_EQ(SeriesValue(kBudget), 2) << metrics::Registry::Default().Serialize();
  ASSERT_TRUE(Eventually([&] { return Field(kube::kSweeps, "hp", "status.phase") == "Succeeded"; },
                         std::chrono::seconds(30)))
      << Field(kube::kSweeps, "hp", "status");
  const double ran = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const json st = Get(kube::kSweeps, "hp")["status"];
  ASSERT_EQ(st["trials"].size(), 1u) << st.dump(2);
  const json t = st["trials"][0];
  EXPECT_EQ(t["phase"], "Stopped") << t.dump();
  EXPECT_NE(t["reason"].get<std::string>().find("budget: "), std::string::npos) << t.dump();
  EXPECT_GE(t["cpuSeconds"].get<double>(), 2.0) << t.dump();
  EXPECT_LE(t["cpuSeconds"].get<double>(), ran + 0.1) << "1 CPU, for no longer than the sweep existed: " << t.dump();
  EXPECT_FALSE(st.value("cpuAccountedTime", "").empty());
  bool budget_condition = false;
  for (const json& c : st["conditions"])
    if (c["type"] == "Succeeded" && c["reason"] == "BudgetSpent") budget_condition = true;
  EXPECT_TRUE(budget_condition) << st.dump(2);
  EXPECT_EQ(Field(kube::kTrainingJobs, "hp-0", "spec.suspend"), "true");
  const json job = Get(kube::kTrainingJobs, "hp-0");
  EXPECT_NE(job["metadata"]["annotations"].value("tandem.dev/stopped", "").find("budget"), std::string::npos)
      << job["metadata"].dump();
  EXPECT_TRUE(Get(kube::kTrainingJobs, "hp-1").empty()) << "no trial after the budget";
  EXPECT_TRUE(Eventually([&] { return SweepEvent("BudgetSpent"); }));
  EXPECT_NE(metrics::Registry::Default().Serialize().find("tandem_operator_sweep_trials_stopped_total{policy=\"budget\"} 1"),
            std::string::npos);
  // The spent gauge ends at what the status says the trial used (at least the budget); the budget
  // gauge stays. The reconciler writes the status before it sets the gauges, so the gauge may
  // still hold the previous look's charge when the status already reads Succeeded: wait for it.
  EXPECT_TRUE(Eventually([&] {
    const json written = Get(kube::kSweeps, "hp")["status"]["trials"][0];
    return std::abs(SeriesValue(kSpent) - written.value("cpuSeconds", -1.0)) < 1e-9;
  })) << Field(kube::kSweeps, "hp", "status") << metrics::Registry::Default().Serialize();
  EXPECT_GE(SeriesValue(kSpent), 2) << metrics::Registry::Default().Serialize();
  EXPECT_EQ(SeriesValue(kBudget), 2);
}

TEST_F(SweepE2eTest, AnInvalidSweepFailsWithTheFieldNamed) {
  auto docs = YamlToJson(kSweep, "sweep.yaml");
  ASSERT_TRUE(docs.ok());
  json bad = (*docs)[0];
  bad["metadata"]["name"] = "typo";
  bad["spec"]["parameters"][0]["path"] = "spec.optimizer.learningRat";
  ASSERT_TRUE(client_->Create(kube::kSweeps, "default", bad).ok());
  ASSERT_TRUE(Eventually([&] { return Field(kube::kSweeps, "typo", "status.phase") == "Failed"; }));
  const json c = Get(kube::kSweeps, "typo")["status"]["conditions"][0];
  EXPECT_EQ(c["reason"], "InvalidSpec");
  EXPECT_NE(c["message"].get<std::string>().find("spec.parameters[0].path"), std::string::npos) << c.dump();
  EXPECT_TRUE(Get(kube::kTrainingJobs, "typo-0").empty());
  // The phase gauge the TandemSweepFailed alert reads (set just after the status is written).
  EXPECT_TRUE(Eventually([&] {
    return SeriesValue(R"(tandem_operator_sweep_phase{namespace="default",sweep="typo",phase="Failed"})") == 1;
  })) << metrics::Registry::Default().Serialize();
  EXPECT_EQ(SeriesValue(R"(tandem_operator_sweep_phase{namespace="default",sweep="typo",phase="Running"})"), 0);
}

}  // namespace
}  // namespace tandem::controller
