// Pure reconcile tests: seed a FakeCache with the world, run one Reconcile (or one scheduling
// pass), and compare the API calls it makes. One test per scenario of the issue: create, worker
// failure and restart, suspend/resume, preempt, delete, TTL.
#include "operator/controller/trainingjob_reconciler.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/quantity.h"
#include "api/section_validator.h"
#include "api/training_job.h"
#include "api/worker_result.h"
#include "common/tls_certificates.h"
#include "operator/controller/cache_transform.h"
#include "operator/controller/elastic_state.h"
#include "operator/controller/operator_metrics.h"
#include "api/membership.h"
#include "api/worker_contract.h"

#include "gtest/gtest.h"
#include "operator/kube/event_recorder.h"
#include "tests/operator/controller/recording_api.h"

namespace tandem::controller {
namespace {

using nlohmann::json;
using Calls = std::vector<std::string>;

constexpr double kT0 = 1800000000;  // 2027-01-15T08:00:00Z

json Job(const std::string& name, json spec_extra = json::object(), json status = json::object()) {
  json spec = {{"queue", "team-a"}, {"image", "tandem/tandem:0.1.0"},
               {"workers", {{"count", 2}}},
               {"trainer", {{"resources", {{"requests", {{"cpu", "1"}, {"memory", "1Gi"}, {"nvidia.com/gpu", 1}}}}}}},
               {"pserver", {{"resources", {{"requests", {{"cpu", "500m"}, {"memory", "1Gi"}}}}}}},
               {"passes", 4},
               // Valid for the trainer's validators too, which the reconciler runs.
               {"model", {{"inputs", {{{"name", "image"}, {"source", "features"}, {"shape", {1, 28, 28}}},
                                      {{"name", "label"}, {"source", "labels"}}}},
                          {"layers", {{{"name", "fc1"}, {"type", "fc"}, {"input", "image"}, {"size", 10}},
                                      {{"name", "cost"}, {"type", "softmax_cross_entropy"}, {"inputs", {"fc1", "label"}}}}},
                          {"cost", "cost"}}},
               {"data", {{"train", {{"format", "idx"}}}, {"test", {{"format", "idx"}}}, {"batchSize", 64}}},
               {"optimizer", {{"type", "momentum"}, {"learningRate", 0.05}, {"momentum", 0.9}}}};
  if (spec_extra.is_object()) spec.merge_patch(spec_extra);
  json j = {{"apiVersion", "tandem.dev/v1alpha1"}, {"kind", "TrainingJob"},
            {"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name},
                          {"resourceVersion", "10"}, {"generation", 1},
                          {"creationTimestamp", kube::FormatRfc3339(kT0 - 100)}}},
            {"spec", spec}};
  if (status.is_object() && !status.empty()) j["status"] = status;
  return j;
}

// Job() keeps its dense parameters on the ring and has no embedding tables, so nothing lives on a
// pserver and its workers run none (api::UsesPServers). This one keeps the dense parameters on
// the pservers: its workers run both.
json PServerJob(const std::string& name, json spec_extra = json::object(), json status = json::object()) {
  json extra = {{"sync", {{"dense", "pserver"}}}};
  if (spec_extra.is_object()) extra.merge_patch(spec_extra);
  return Job(name, extra, status);
}

json Node(const std::string& name, int gpus) {
  return {{"metadata", {{"name", name}}},
          {"status", {{"allocatable", {{"cpu", "16"}, {"memory", "64Gi"}, {"nvidia.com/gpu", std::to_string(gpus)}}},
                      {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
}

json Queue(const std::string& name, int guaranteed_gpus, bool reclaim = true) {
  return {{"metadata", {{"name", name}}},
          {"spec", {{"weight", 1},
                    {"guaranteed", {{"cpu", "32"}, {"memory", "128Gi"}, {"nvidia.com/gpu", guaranteed_gpus}}},
                    {"preemption", {{"reclaimBorrowed", reclaim}}}}}};
}

// A worker pod of `job` as the reconciler creates it, in `phase`, with optional exit codes.
json WorkerPod(const json& job, int rank, const std::string& node, const std::string& phase,
               bool ready = false, int trainer_exit = -1) {
  json pod = {{"metadata", {{"name", kube::NameOf(job) + "-worker-" + std::to_string(rank)},
                            {"namespace", "default"}, {"uid", "pod-" + std::to_string(rank)},
                            {"labels", {{kJobLabel, kube::NameOf(job)}, {kRankLabel, std::to_string(rank)}}},
                            {"ownerReferences", {kube::ControllerRef(job)}}}},
              {"spec", {{"nodeName", node}, {"containers", {{{"name", "trainer"}, {"resources", {{"requests", {{"nvidia.com/gpu", 1}}}}}}}}}},
              {"status", {{"phase", phase}}}};
  if (ready) pod["status"]["conditions"] = {{{"type", "Ready"}, {"status", "True"}}};
  if (trainer_exit >= 0) {
    pod["status"]["containerStatuses"] = {{{"name", "trainer"}, {"state", {{"terminated", {{"exitCode", trainer_exit}}}}}}};
  }
  return pod;
}

json Admitted(const std::string& phase = "Admitted", json extra = json::object()) {
  json s = {{"phase", phase}, {"placement", {"n1", "n1"}}};
  s.merge_patch(extra);
  return s;
}

// A ProgressSource that answers from a table and records what was asked.
class FakeProgress : public ProgressSource {
 public:
  std::optional<ProgressSample> Observe(const std::string& key, const TrainerEndpoint& endpoint) override {
    observed.emplace_back(key, endpoint);
    auto it = samples.find(key);
    if (it == samples.end()) return std::nullopt;
    return it->second;
  }
  void Forget(const std::string& key) override { forgotten.push_back(key); }

  std::map<std::string, ProgressSample> samples;
  std::vector<std::pair<std::string, TrainerEndpoint>> observed;
  std::vector<std::string> forgotten;
};

struct Fixture {
  RecordingApi api;
  FakeProgress progress;
  FakeCache cache;
  kube::EventRecorder events{&api, "tandem-operator"};
  double now = kT0;
  TrainingJobReconciler reconciler{&api, &cache, &events,
                                   {.build = {}, .schedule_interval_s = 10,
                                    .now = [this] { return now; }, .new_token = [] { return std::string("tok"); },
                                    .progress = &progress}};
  Fixture() {
    cache.Put(kube::kNodes, Node("n1", 4));
    cache.Put(kube::kQueues, Queue("team-a", 4));
  }
};

TEST(ReconcileTest, NewJobIsQueued) {
  Fixture f;
  f.cache.Put(kube::kTrainingJobs, Job("a"));
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_TRUE(r.schedule);
  EXPECT_EQ(f.api.Summary(), (Calls{"update_status trainingjobs default/a"}));
  EXPECT_EQ(f.api.LastStatus()["phase"], "Queued") << f.api.LastStatus().dump();
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Queued"}));

  // Level-based: the same state again makes the same single decision, nothing more.
  json first = f.api.LastStatus();
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, first));
  f.api.Clear();
  r = f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(f.api.Summary().empty()) << "already queued: no calls";
}

// A waiting job's status holds a reason that stays the same while it waits for the same thing;
// its position and the free capacity go to its Queue's status.waiting, which is rewritten at
// once when the queue's counts change and at most every queue_status_interval_s when only the
// list changed (a status write per waiting job per pass did not scale: ~12 per job).
TEST(ReconcileTest, PositionsGoToTheQueueNotToTheWaitingJobs) {
  Fixture f;  // n1: 4 GPUs; queue team-a
  auto queued = [&](const std::string& name, int workers, double created) {
    json j = Job(name, {{"workers", {{"count", workers}}}}, {{"phase", "Queued"}});
    j["metadata"]["creationTimestamp"] = kube::FormatRfc3339(created);
    return j;
  };
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, Admitted()));  // 2 of the 4 GPUs
  f.cache.Put(kube::kTrainingJobs, queued("b", 3, kT0 - 50));
  f.cache.Put(kube::kTrainingJobs, queued("c", 4, kT0 - 40));
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  const auto* b = f.api.Find("update_status", "trainingjobs", "default/b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->body["status"]["pendingReason"], "in queue team-a: insufficient nvidia.com/gpu: 3 workers need 1 each on one node");
  EXPECT_FALSE(b->body["status"].contains("queuePosition"));
  json qs = f.api.LastStatus("queues");
  ASSERT_EQ(qs["pendingJobs"], 2);
  ASSERT_EQ(qs["waiting"]["jobs"].size(), 2u) << qs.dump();
  EXPECT_EQ(qs["waiting"]["jobs"][0]["name"], "b");
  EXPECT_EQ(qs["waiting"]["jobs"][0]["namespace"], "default");
  EXPECT_EQ(qs["waiting"]["jobs"][0]["position"], 1);
  EXPECT_EQ(qs["waiting"]["jobs"][0]["reason"], "InsufficientResources");
  EXPECT_EQ(qs["waiting"]["jobs"][0]["detail"], "position 1 of 2; free capacity fits 2 (free 2, at most 2 on one node)");
  EXPECT_EQ(qs["waiting"]["jobs"][1]["name"], "c");
  EXPECT_EQ(qs["waiting"]["updateTime"], kube::FormatRfc3339(kT0));
  // The operator's /pending: every waiting job, with its message and detail.
  json view = f.reconciler.PendingView();
  ASSERT_EQ(view["queues"]["team-a"].size(), 2u) << view.dump();
  EXPECT_EQ(view["queues"]["team-a"][1]["detail"], "position 2 of 2; free capacity fits 2 (free 2, at most 2 on one node)");

  // The cache catches up with what was written.
  auto caught_up = [&](const std::string& name, int rv) {
    const auto* w = f.api.Find("update_status", "trainingjobs", "default/" + name);
    ASSERT_NE(w, nullptr) << name;
    json j = *f.cache.Get(kube::kTrainingJobs, "default/" + name);
    j["status"] = w->body["status"];
    j["metadata"]["resourceVersion"] = std::to_string(rv);
    f.cache.Put(kube::kTrainingJobs, j);
  };
  auto queue_caught_up = [&](int rv) {
    json q = Queue("team-a", 4);
    q["metadata"]["resourceVersion"] = std::to_string(rv);
    q["status"] = f.api.LastStatus("queues");
    f.cache.Put(kube::kQueues, q);
  };
  caught_up("b", 11);
  caught_up("c", 11);
  queue_caught_up(2);

  // A job older than both joins the queue: b and c move down, their status is not rewritten;
  // the queue's counts changed, so its list is written at once.
  f.cache.Put(kube::kTrainingJobs, queued("d", 4, kT0 - 90));
  f.now += 1;
  f.api.Clear();
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs", "default/b"), nullptr) << "only b's position changed";
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs", "default/c"), nullptr) << "only c's position changed";
  ASSERT_NE(f.api.Find("update_status", "trainingjobs", "default/d"), nullptr);
  qs = f.api.LastStatus("queues");
  ASSERT_EQ(qs["pendingJobs"], 3);
  ASSERT_EQ(qs["waiting"]["jobs"].size(), 3u);
  EXPECT_EQ(qs["waiting"]["jobs"][0]["name"], "d");
  EXPECT_EQ(qs["waiting"]["jobs"][1]["detail"], "position 2 of 3; free capacity fits 2 (free 2, at most 2 on one node)");
  caught_up("d", 12);
  queue_caught_up(3);

  // d is deleted and e, older still, queued: the same counts, another list. The list waits for
  // the interval (5 s), then goes out.
  f.cache.Remove(kube::kTrainingJobs, "default/d");
  f.cache.Put(kube::kTrainingJobs, queued("e", 4, kT0 - 95));
  f.now += 1;
  f.api.Clear();
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  ASSERT_NE(f.api.Find("update_status", "trainingjobs", "default/e"), nullptr);
  EXPECT_EQ(f.api.Find("update_status", "queues", "team-a"), nullptr) << "only the list changed, 1 s after the last";
  caught_up("e", 13);
  f.now += 5;
  f.api.Clear();
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  EXPECT_EQ(f.api.Summary(), (Calls{"update_status queues team-a"}));
  qs = f.api.LastStatus("queues");
  EXPECT_EQ(qs["waiting"]["jobs"][0]["name"], "e");
  EXPECT_EQ(qs["waiting"]["updateTime"], kube::FormatRfc3339(kT0 + 7));
}

TEST(ReconcileTest, SchedulingPassAdmitsAndReconcileCreatesWorkers) {
  Fixture f;
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, {{"phase", "Queued"}}));
  ReconcileResult r = f.reconciler.Schedule();
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(f.api.Summary(), (Calls{"update_status trainingjobs default/a", "update_status queues team-a"}));
  json qs = f.api.LastStatus("queues");
  EXPECT_EQ(qs["admittedJobs"], 1);
  EXPECT_EQ(qs["usage"]["nvidia.com/gpu"], "2");
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Admitted");
  EXPECT_EQ(st["placement"], json({"n1", "n1"}));
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Admitted"}));

  // A second pass before the cache catches up must not hand out the same GPUs again.
  f.cache.Put(kube::kTrainingJobs, Job("b", {{"workers", {{"count", 3}}}}, {{"phase", "Queued"}}));
  f.api.Clear();
  r = f.reconciler.Schedule();
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs", "default/a"), nullptr);
  const auto* b = f.api.Find("update_status", "trainingjobs", "default/b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->body["status"]["phase"], "Queued") << "4 GPUs, 2 assumed by a: b (3) waits";
  EXPECT_FALSE(b->body["status"].value("pendingReason", "").empty());

  f.api.Clear();
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, Admitted()));
  r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(f.api.Summary(), (Calls{"create persistentvolumeclaims default/a-checkpoints", "create configmaps default/a-config",
                                     "create services default/a", "create networkpolicies default/a", "create secrets default/a-token",
                                     "patch secrets default/a-token", "patch configmaps default/a-config",
                                     "create pods default/a-worker-0", "create pods default/a-worker-1",
                                     "update_status trainingjobs default/a"}));
  const auto* pod = f.api.Find("create", "pods", "default/a-worker-1");
  ASSERT_NE(pod, nullptr);
  const json& p = pod->body;
  EXPECT_EQ(p["spec"]["nodeName"], "n1");
  EXPECT_EQ(p["spec"]["subdomain"], "a");
  EXPECT_EQ(p["metadata"]["ownerReferences"][0]["uid"], "uid-a");
  // Dense sync over the ring, no embedding tables: nothing lives on a pserver, so the pod is the
  // trainer alone, whose contract names no pservers (as under `tandem run`).
  ASSERT_EQ(p["spec"]["containers"].size(), 1u) << p["spec"]["containers"].dump();
  EXPECT_EQ(p["spec"]["containers"][0]["name"], "trainer");
  std::map<std::string, json> env;
  for (const auto& e : p["spec"]["containers"][0]["env"]) env[e["name"]] = e;
  EXPECT_EQ(env["TANDEM_RANK"]["value"], "1");
  EXPECT_EQ(env["TANDEM_WORLD_SIZE"]["value"], "2");
  EXPECT_EQ(env["TANDEM_PEERS"]["value"],
            "a-worker-0.a.default.svc:7000,a-worker-1.a.default.svc:7000");
  EXPECT_EQ(env.count("TANDEM_PSERVERS"), 0u);
  EXPECT_EQ(env["TANDEM_JOB_TOKEN"]["valueFrom"]["secretKeyRef"]["name"], "a-token");
  EXPECT_EQ(env["TANDEM_METRICS_PORT"]["value"], "9100");
  EXPECT_EQ(env["TANDEM_THREADS"]["value"], "1") << "the CPU request, rounded up";
  EXPECT_EQ(p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], "1");
  const auto* svc = f.api.Find("create", "services", "default/a");
  EXPECT_EQ(svc->body["spec"]["clusterIP"], "None");
  EXPECT_EQ(svc->body["spec"]["ports"], json::parse(R"([{"name": "collective", "port": 7000}])"));
  const auto* np = f.api.Find("create", "networkpolicies", "default/a");
  ASSERT_NE(np, nullptr);
  EXPECT_EQ(np->body["spec"]["ingress"][0]["ports"], json::parse(R"([{"protocol": "TCP", "port": 7000}])"));
  EXPECT_EQ(np->body["spec"]["ingress"][1]["ports"], json::parse(R"([{"protocol": "TCP", "port": 9100}])"));
  EXPECT_EQ(f.api.Find("create", "secrets")->body["data"]["token"], "dG9r");
  // Mutual TLS (job_tls.h): the certificate in the Secret, the bundle in the ConfigMap, both
  // mounted where the contract says, the token not among the projected files.
  EXPECT_EQ(env["TANDEM_TLS_CA"]["value"], "/etc/tandem/ca.crt");
  EXPECT_EQ(env["TANDEM_TLS_CERT"]["value"], "/etc/tandem/tls/tls.crt");
  EXPECT_EQ(env["TANDEM_TLS_KEY"]["value"], "/etc/tandem/tls/tls.key");
  json tls_volume;
  for (const json& v : p["spec"]["volumes"])
    if (v["name"] == "tls") tls_volume = v;
  EXPECT_EQ(tls_volume["secret"]["secretName"], "a-token");
  EXPECT_EQ(tls_volume["secret"]["items"].size(), 2u) << tls_volume.dump();
  EXPECT_EQ(tls_volume["secret"]["defaultMode"], 0440);
  for (const json& c : p["spec"]["containers"]) {
    bool mounted = false;
    for (const json& m : c["volumeMounts"]) mounted |= m["name"] == "tls" && m["mountPath"] == "/etc/tandem/tls";
    EXPECT_TRUE(mounted) << c["name"];
  }
  std::string cert, key;
  ASSERT_TRUE(absl::Base64Unescape(f.api.Find("patch", "secrets")->body["data"]["tls.crt"].get<std::string>(), &cert));
  ASSERT_TRUE(absl::Base64Unescape(f.api.Find("patch", "secrets")->body["data"]["tls.key"].get<std::string>(), &key));
  const json& config_patch = f.api.Find("patch", "configmaps")->body["data"];
  EXPECT_EQ(config_patch["issued.crt"], cert);
  EXPECT_TRUE(tls::VerifyCertificate(cert, config_patch["ca.crt"].get<std::string>(), absl::FromUnixSeconds(kT0)).ok());
  EXPECT_EQ(*tls::PublicKeySha256OfPrivateKey(key, "tls.key"), tls::ParseCertificates(cert, "tls.crt")->front().public_key_sha256);
  for (const auto& c : f.api.calls) {
    if (c.verb == "create" && c.resource != "events") {
      EXPECT_EQ(c.body["metadata"]["ownerReferences"][0]["uid"], "uid-a") << c.String();
    }
  }
}

// The certificates are renewed while the job runs (common/job_certificates.h): first a CA is
// added to the ConfigMap's bundle, then, after the propagation delay, the Secret gets a
// certificate it signed. Before that nothing is called, and an operator restarted in between
// (a fresh reconciler) works from the cached ConfigMap alone.
TEST(ReconcileTest, CertificatesAreRotatedBeforeTheyExpireWithoutReadingTheSecret) {
  Fixture f;
  tls::RotationPolicy policy;
  policy.cert_lifetime = absl::Hours(3);
  policy.propagation = absl::Minutes(10);
  auto reconciler = std::make_unique<TrainingJobReconciler>(
      &f.api, &f.cache, &f.events,
      ReconcilerOptions{.now = [&f] { return f.now; }, .new_token = [] { return std::string("tok"); },
                        .tls_rotation = policy});
  json job = Job("a", {}, Admitted());
  f.cache.Put(kube::kTrainingJobs, job);
  ReconcileResult r = reconciler->Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  // The cache catches up: the ConfigMap as patched, the pods running.
  json config = {{"metadata", {{"name", "a-config"}, {"namespace", "default"}}},
                 {"data", f.api.Find("patch", "configmaps")->body["data"]}};
  f.cache.Put(kube::kConfigMaps, config);
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Running", true));
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Running", true));
  const std::string first_cert = config["data"]["issued.crt"];
  const double renew = kT0 + 7100;  // valid kT0 - 5 min .. kT0 + 3 h: renewed with a third left
  f.api.Clear();
  r = reconciler->Reconcile("default/a");
  EXPECT_EQ(f.api.Find("patch", "secrets"), nullptr);
  EXPECT_EQ(f.api.Find("patch", "configmaps"), nullptr);
  EXPECT_NEAR(r.requeue_after_s, renew - kT0, 1) << "looks again when the certificate is due";

  // Due: a CA is added to the bundle, nothing is signed yet.
  f.now = renew + 1;
  f.api.Clear();
  r = reconciler->Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(f.api.Find("patch", "secrets"), nullptr);
  const auto* added = f.api.Find("patch", "configmaps", "default/a-config");
  ASSERT_NE(added, nullptr);
  const std::string bundle = added->body["data"]["ca.crt"];
  EXPECT_EQ(tls::ParseCertificates(bundle, "ca.crt")->size(), 2u);
  EXPECT_EQ(added->body["data"]["issued.crt"], first_cert);
  EXPECT_NEAR(r.requeue_after_s, 600, 1);
  EXPECT_NE(absl::StrJoin(f.api.EventReasons(), ",").find("CertificateRotated"), std::string::npos);
  config["data"] = added->body["data"];
  f.cache.Put(kube::kConfigMaps, config);

  // After the propagation delay: the Secret gets a certificate of the new CA.
  f.now = renew + 1 + 600;
  f.api.Clear();
  r = reconciler->Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  const auto* secret = f.api.Find("patch", "secrets", "default/a-token");
  ASSERT_NE(secret, nullptr);
  std::string cert;
  ASSERT_TRUE(absl::Base64Unescape(secret->body["data"]["tls.crt"].get<std::string>(), &cert));
  EXPECT_NE(cert, first_cert);
  const absl::Time at = absl::FromUnixSeconds(static_cast<int64_t>(f.now));
  EXPECT_TRUE(tls::VerifyCertificate(cert, bundle, at).ok());
  auto original = tls::ParseCertificates(bundle, "ca.crt");
  EXPECT_FALSE(tls::VerifyCertificate(cert, (*original)[0].pem, at).ok()) << "signed by the new CA";
  EXPECT_EQ(f.api.Find("patch", "configmaps")->body["data"]["issued.crt"], cert);
  config["data"] = f.api.Find("patch", "configmaps")->body["data"];
  f.cache.Put(kube::kConfigMaps, config);

  // An operator restarted now knows only the cache, and has nothing to do.
  TrainingJobReconciler restarted(&f.api, &f.cache, &f.events,
                                  ReconcilerOptions{.now = [&f] { return f.now; }, .tls_rotation = policy});
  f.api.Clear();
  r = restarted.Reconcile("default/a");
  EXPECT_EQ(f.api.Find("patch", "secrets"), nullptr);
  EXPECT_EQ(f.api.Find("patch", "configmaps"), nullptr);
  EXPECT_GT(r.requeue_after_s, 3600);
}

TEST(ReconcileTest, AllWorkersReadyMeansRunningAndProgressIsReported) {
  Fixture f;
  json job = Job("a", {}, Admitted());
  f.cache.Put(kube::kTrainingJobs, job);
  json p0 = WorkerPod(job, 0, "n1", "Running", true);
  p0["status"]["podIP"] = "10.4.0.7";
  p0["spec"]["containers"][0]["env"] = {{{"name", "TANDEM_METRICS_PORT"}, {"value", "9555"}}};
  f.cache.Put(kube::kPods, p0);
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Running", true));

  // First look: the prober has nothing yet; the job is asked for and Running without progress.
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Running") << st.dump();
  EXPECT_EQ(st["workers"]["ready"], 2);
  EXPECT_FALSE(st.value("startTime", "").empty());
  EXPECT_FALSE(st.contains("progress"));
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Running"}));
  EXPECT_EQ(f.api.Find("create", "pods"), nullptr) << "both workers exist";
  ASSERT_EQ(f.progress.observed.size(), 1u);
  EXPECT_EQ(f.progress.observed[0].first, "default/a");
  EXPECT_EQ(f.progress.observed[0].second, (TrainerEndpoint{"a", "10.4.0.7", 9555}))
      << "the pod's IP and the port its trainer was told to listen on";

  // The prober has scraped: pass gauge 2 (0-based) of 4 passes.
  f.progress.samples["default/a"] = {{.steps = 1200, .pass = 2, .loss = 0.31, .accuracy = 0.88,
                                      .test_accuracy = 0.86, .examples_per_sec = 5100},
                                     kT0 - 5};
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, st));
  f.api.Clear();
  r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  st = f.api.LastStatus();
  ASSERT_TRUE(st.contains("progress")) << st.dump();
  EXPECT_EQ(st["progress"]["step"], 1200);
  EXPECT_EQ(st["progress"]["pass"], 3) << "shown 1-based";
  EXPECT_DOUBLE_EQ(st["progress"]["percent"].get<double>(), 50) << "2 of 4 passes done";
  EXPECT_DOUBLE_EQ(st["progress"]["loss"].get<double>(), 0.31);
  EXPECT_DOUBLE_EQ(st["progress"]["accuracy"].get<double>(), 0.86) << "the test accuracy, once evaluated";
  EXPECT_DOUBLE_EQ(st["progress"]["examplesPerSec"].get<double>(), 10200) << "rank 0's rate times 2 workers";
  EXPECT_EQ(st["progress"]["updateTime"], kube::FormatRfc3339(kT0 - 5));
  EXPECT_EQ(st["progress"]["summary"], "pass 3/4 50%");

  // Unchanged numbers: no status write. The prober losing the endpoint keeps the last progress.
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, st));
  f.api.Clear();
  r = f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs"), nullptr) << "nothing changed: no status write";
  f.progress.samples.clear();
  r = f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs"), nullptr) << "an unreachable trainer leaves status.progress alone";

  // All workers succeed: the job completes with its progress at 100% and stops being scraped.
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Succeeded"));
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Succeeded"));
  r = f.reconciler.Reconcile("default/a");
  st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Succeeded");
  EXPECT_EQ(st["progress"]["summary"], "pass 4/4 100%");
  EXPECT_EQ(st["progress"]["step"], 1200);
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, st));
  f.reconciler.Reconcile("default/a");
  EXPECT_NE(std::find(f.progress.forgotten.begin(), f.progress.forgotten.end(), "default/a"),
            f.progress.forgotten.end());
}

TEST(ReconcileTest, ProgressIsNotScrapedBeforeRank0RunsWithAnIp) {
  Fixture f;
  json job = Job("a", {}, Admitted());
  f.cache.Put(kube::kTrainingJobs, job);
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Running", true));  // no podIP yet
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Pending"));
  f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(f.progress.observed.empty());
  json p0 = WorkerPod(job, 0, "n1", "Pending");
  p0["status"]["podIP"] = "10.4.0.7";
  f.cache.Put(kube::kPods, p0);
  f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(f.progress.observed.empty()) << "a Pending pod serves nothing";
  p0["status"]["phase"] = "Running";
  f.cache.Put(kube::kPods, p0);
  f.reconciler.Reconcile("default/a");
  ASSERT_EQ(f.progress.observed.size(), 1u);
  EXPECT_EQ(f.progress.observed[0].second.port, 9100) << "no TANDEM_METRICS_PORT in the pod: the operator's default";
  // Deleting the job stops the scraping.
  f.cache.Remove(kube::kTrainingJobs, "default/a");
  f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.progress.forgotten.back(), "default/a");
}

// Every worker pod of `calls`, by name.
std::map<std::string, json> CreatedPods(const RecordingApi& api) {
  std::map<std::string, json> out;
  for (const auto& c : api.calls) {
    if (c.verb == "create" && c.resource == "pods") out[kube::NameOf(c.body)] = c.body;
  }
  return out;
}

std::map<std::string, std::string> EnvOf(const json& container) {
  std::map<std::string, std::string> env;
  for (const auto& e : container["env"]) env[e["name"]] = e.value("value", "");
  return env;
}

// A job with something on its pservers (dense parameters there, or embedding tables) keeps a
// pserver container beside each trainer, with its port on the Service and in the NetworkPolicy,
// and the trainers find every shard through TANDEM_PSERVERS.
TEST(ReconcileTest, AJobWithStateOnThePServersRunsAPServerInEveryWorkerPod) {
  // examples/ctr-auc.yaml, smaller: an embedding table on the pservers, the dense part on the ring.
  const json embeddings = json::parse(R"({
    "data": {"train": {"format": "synthetic-ctr", "examples": 1000, "numFields": 4},
             "test": {"format": "synthetic-ctr", "examples": 100, "numFields": 4}},
    "model": {"inputs": [{"name": "ids", "source": "fields", "shape": [4]}, {"name": "click", "source": "targets"}],
              "layers": [{"name": "emb", "type": "embedding", "input": "ids", "vocabSize": 1000, "size": 8, "pooling": "sum"},
                         {"name": "logit", "type": "fc", "input": "emb", "size": 1},
                         {"name": "cost", "type": "binary_cross_entropy", "inputs": ["logit", "click"]}],
              "cost": "cost"}})");
  for (const json& job : {PServerJob("a", {}, Admitted()), Job("a", embeddings, Admitted())}) {
    SCOPED_TRACE(job["spec"].dump());
    api::FieldErrors errors;
    ASSERT_TRUE(api::UsesPServers(api::ParseTrainingJob(job, api::SectionValidators{}, &errors).spec));
    Fixture f;
    f.cache.Put(kube::kTrainingJobs, job);
    ReconcileResult r = f.reconciler.Reconcile("default/a");
    ASSERT_TRUE(r.error.ok()) << r.error;
    auto pods = CreatedPods(f.api);
    ASSERT_EQ(pods.size(), 2u) << testing::PrintToString(f.api.Summary());
    const json& containers = pods["a-worker-1"]["spec"]["containers"];
    ASSERT_EQ(containers.size(), 2u) << containers.dump();
    EXPECT_EQ(containers[0]["name"], "trainer");
    EXPECT_EQ(containers[1]["name"], "pserver");
    EXPECT_EQ(EnvOf(containers[0])["TANDEM_PSERVERS"],
              "a-worker-0.a.default.svc:7100,a-worker-1.a.default.svc:7100");
    EXPECT_EQ(EnvOf(containers[1])["TANDEM_METRICS_PORT"], "9101");
    EXPECT_EQ(containers[1]["resources"]["requests"]["cpu"], "500m");
    const auto* svc = f.api.Find("create", "services", "default/a");
    ASSERT_NE(svc, nullptr);
    EXPECT_EQ(svc->body["spec"]["ports"],
              json::parse(R"([{"name": "collective", "port": 7000}, {"name": "pserver", "port": 7100}])"));
    const auto* np = f.api.Find("create", "networkpolicies", "default/a");
    ASSERT_NE(np, nullptr);
    EXPECT_EQ(np->body["spec"]["ingress"][0]["ports"],
              json::parse(R"([{"protocol": "TCP", "port": 7000}, {"protocol": "TCP", "port": 7100}])"));
    EXPECT_EQ(np->body["spec"]["ingress"][1]["ports"],
              json::parse(R"([{"protocol": "TCP", "port": 9100}, {"protocol": "TCP", "port": 9101}])"));
  }
}

// What the scheduler counts for a worker is what its pod requests: the trainer alone when the job
// runs no pservers, trainer + pserver otherwise. On a node with 2.5 CPUs a 2-worker job of 1-CPU
// trainers fits only without its 500m pservers; the queue's usage is the pods' requests.
TEST(ReconcileTest, SchedulingCountsThePServerOnlyWhereTheWorkerPodsRunOne) {
  struct Case {
    bool pservers;
    std::string node_cpu;
    bool admitted;
  };
  for (const Case& c : {Case{false, "2500m", true}, Case{true, "2500m", false}, Case{true, "4", true}}) {
    SCOPED_TRACE(absl::StrCat("pservers ", c.pservers, ", node cpu ", c.node_cpu));
    Fixture f;
    json node = Node("n1", 4);
    node["status"]["allocatable"]["cpu"] = c.node_cpu;
    f.cache.Put(kube::kNodes, node);
    const json queued = c.pservers ? PServerJob("a", {}, {{"phase", "Queued"}}) : Job("a", {}, {{"phase", "Queued"}});
    f.cache.Put(kube::kTrainingJobs, queued);
    ASSERT_TRUE(f.reconciler.Schedule().error.ok());
    const auto* st = f.api.Find("update_status", "trainingjobs", "default/a");
    ASSERT_NE(st, nullptr);
    if (!c.admitted) {
      EXPECT_EQ(st->body["status"]["phase"], "Queued");
      EXPECT_NE(st->body["status"].value("pendingReason", "").find("cpu"), std::string::npos)
          << st->body["status"].dump();
      continue;
    }
    ASSERT_EQ(st->body["status"]["phase"], "Admitted") << st->body["status"].dump();
    const json usage = f.api.LastStatus("queues")["usage"];
    EXPECT_EQ(api::Quantity::Parse(usage["cpu"].get<std::string>())->milli(), c.pservers ? 3000 : 2000)
        << usage.dump();

    // The pods it then creates request exactly the queue's usage.
    json admitted = queued;
    admitted["status"] = st->body["status"];
    f.cache.Put(kube::kTrainingJobs, admitted);
    f.api.Clear();
    ASSERT_TRUE(f.reconciler.Reconcile("default/a").error.ok());
    auto pods = CreatedPods(f.api);
    ASSERT_EQ(pods.size(), 2u);
    std::map<std::string, int64_t> requested;  // milli-units
    for (const auto& [name, pod] : pods) {
      EXPECT_EQ(pod["spec"]["containers"].size(), c.pservers ? 2u : 1u) << name;
      for (const json& container : pod["spec"]["containers"])
        for (const auto& [resource, q] : container["resources"]["requests"].items())
          requested[resource] += api::Quantity::Parse(q.get<std::string>())->milli();
    }
    for (const char* resource : {"cpu", "memory", "nvidia.com/gpu"}) {
      EXPECT_EQ(requested[resource], api::Quantity::Parse(usage[resource].get<std::string>())->milli())
          << resource << ": pods " << requested[resource] << "m, queue usage " << usage[resource];
    }
  }
}

TEST(ReconcileTest, CheckpointsGoToAClaimTheJobOwnsAndWorkersRunAsNonRoot) {
  Fixture f;
  // Dense parameters on the pservers: both containers' folders and mounts are checked.
  f.cache.Put(kube::kTrainingJobs, PServerJob("a", {{"checkpoint", {{"size", "50Gi"}, {"storageClassName", "nfs-rwx"}}}}, Admitted()));
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  ASSERT_EQ(f.api.calls.front().String(), "create persistentvolumeclaims default/a-checkpoints") << "before any pod";
  const json& pvc = f.api.calls.front().body;
  EXPECT_EQ(pvc["spec"]["accessModes"], json({"ReadWriteMany"}));
  EXPECT_EQ(pvc["spec"]["resources"]["requests"]["storage"], "50Gi");
  EXPECT_EQ(pvc["spec"]["storageClassName"], "nfs-rwx");
  EXPECT_EQ(pvc["metadata"]["ownerReferences"][0]["uid"], "uid-a") << "deleted with the job";
  EXPECT_EQ(pvc["metadata"]["labels"][kJobLabel], "a");

  auto pods = CreatedPods(f.api);
  ASSERT_EQ(pods.size(), 2u);
  const json& pod = pods["a-worker-1"];
  EXPECT_EQ(pod["spec"]["volumes"][0], json({{"name", "checkpoints"}, {"persistentVolumeClaim", {{"claimName", "a-checkpoints"}}}}));
  ASSERT_EQ(pod["spec"]["containers"].size(), 2u);
  for (int c = 0; c < 2; ++c) {
    const json& container = pod["spec"]["containers"][c];
    std::string role = container["name"];
    EXPECT_EQ(EnvOf(container)["TANDEM_CHECKPOINT_DIR"], "/var/lib/tandem/checkpoints/" + role + "-1");
    EXPECT_EQ(container["volumeMounts"][0]["mountPath"], "/var/lib/tandem/checkpoints");
    if (role == "trainer") {
      EXPECT_EQ(container["terminationMessagePath"], "/dev/termination-log");
      EXPECT_EQ(container["terminationMessagePolicy"], "FallbackToLogsOnError");
      EXPECT_EQ(EnvOf(container)["TANDEM_TERMINATION_LOG"], "/dev/termination-log");
    } else {
      EXPECT_FALSE(container.contains("terminationMessagePolicy"));
      EXPECT_EQ(EnvOf(container).count("TANDEM_TERMINATION_LOG"), 0u);
    }
    EXPECT_EQ(EnvOf(container).count("TANDEM_OUTPUT_DIR"), role == "trainer" ? 1u : 0u);
    EXPECT_FALSE(container["volumeMounts"][0].contains("subPath")) << "kubelet would create it owned by root";
    const json& sc = container["securityContext"];
    EXPECT_EQ(sc["runAsNonRoot"], true);
    EXPECT_EQ(sc["allowPrivilegeEscalation"], false);
    EXPECT_EQ(sc["readOnlyRootFilesystem"], true);
    EXPECT_EQ(sc["capabilities"]["drop"], json({"ALL"}));
  }
  EXPECT_EQ(pod["spec"]["securityContext"]["runAsUser"], 65532);
  EXPECT_EQ(pod["spec"]["securityContext"]["fsGroup"], 65532);
  EXPECT_EQ(pod["spec"]["automountServiceAccountToken"], false);

  // The claim in the cache: not created again.
  f.cache.Put(kube::kPersistentVolumeClaims, pvc);
  f.api.Clear();
  f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.api.Find("create", "persistentvolumeclaims"), nullptr);
}

TEST(ReconcileTest, ServingRunsADeploymentAndServiceOfTandemServeBesideTheWorkers) {
  Fixture f;
  f.cache.Put(kube::kTrainingJobs,
              Job("a", {{"publish", {{"everySteps", 100}}}, {"serving", {{"replicas", 2}}}}, Admitted()));
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  const auto* d = f.api.Find("create", "deployments", "default/a-serve");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->body["spec"]["replicas"], 2);
  EXPECT_EQ(d->body["metadata"]["ownerReferences"][0]["uid"], "uid-a");
  const auto* svc = f.api.Find("create", "services", "default/a-serve");
  ASSERT_NE(svc, nullptr);
  EXPECT_EQ(svc->body["spec"]["selector"], json({{"tandem.dev/serving", "a"}}));
  EXPECT_EQ(CreatedPods(f.api).size(), 2u) << "the workers too";
  // In the cache: not created again.
  f.cache.Put(kube::kDeployments, d->body);
  f.cache.Put(kube::kServices, svc->body);
  f.api.Clear();
  f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.api.Find("create", "deployments"), nullptr);
  // Without spec.serving: no Deployment.
  Fixture g;
  g.cache.Put(kube::kTrainingJobs, Job("b", {{"publish", {{"everySteps", 100}}}}, Admitted()));
  g.reconciler.Reconcile("default/b");
  EXPECT_EQ(g.api.Find("create", "deployments"), nullptr);
}

TEST(ReconcileTest, AnUnboundClaimIsNamedOnTheJobAfterAWhile) {
  Fixture f;
  json job = Job("a", {}, Admitted("Admitted", {{"conditions", {{{"type", "Admitted"}, {"status", "True"},
                                                                  {"reason", "Admitted"},
                                                                  {"lastTransitionTime", kube::FormatRfc3339(kT0)}}}}}));
  f.cache.Put(kube::kTrainingJobs, job);
  json claim = BuildCheckpointClaim(job, *api::TrainingJobFromJson(job, api::SectionValidators{}));
  claim["metadata"]["uid"] = "claim-uid";
  claim["status"] = {{"phase", "Pending"}};
  f.cache.Put(kube::kPersistentVolumeClaims, claim);
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Pending"));
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Pending"));
  // Just admitted: no warning yet, a look again when it would be due.
  f.now = kT0 + 20;
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(f.api.EventReasons().empty());
  EXPECT_DOUBLE_EQ(r.requeue_after_s, 100);
  // Two minutes on: the job says why its workers do not start.
  f.now = kT0 + 130;
  f.api.Clear();
  r = f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.api.EventReasons(), (Calls{"CheckpointClaimPending"}));
  const api::Condition* running = nullptr;
  api::TrainingJob after = *api::TrainingJobFromJson(Job("a", {}, f.api.LastStatus()), api::SectionValidators{});
  running = api::FindCondition(after.status.conditions, api::kConditionRunning);
  ASSERT_NE(running, nullptr);
  EXPECT_EQ(running->reason, "CheckpointClaimPending");
  EXPECT_NE(running->message.find("ReadWriteMany"), std::string::npos) << running->message;
  // Bound: nothing more is said.
  claim["status"]["phase"] = "Bound";
  f.cache.Put(kube::kPersistentVolumeClaims, claim);
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, f.api.LastStatus()));
  f.api.Clear();
  f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(f.api.EventReasons().empty());
}

TEST(ReconcileTest, AClaimOfTheSameNameTheJobDoesNotOwnBlocksTheWorkers) {
  Fixture f;
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, Admitted()));
  f.cache.Put(kube::kPersistentVolumeClaims,
              {{"metadata", {{"name", "a-checkpoints"}, {"namespace", "default"}, {"uid", "someone-else"},
                             {"labels", {{kJobLabel, "a"}}}}}});
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  EXPECT_EQ(r.error.code(), absl::StatusCode::kFailedPrecondition) << r.error;
  EXPECT_NE(std::string(r.error.message()).find("not owned by this TrainingJob"), std::string::npos) << r.error;
  EXPECT_TRUE(CreatedPods(f.api).empty());
  EXPECT_EQ(f.api.Find("create", "persistentvolumeclaims"), nullptr);
  EXPECT_EQ(f.api.EventReasons(), (Calls{"CheckpointClaimConflict"}));
  EXPECT_EQ(f.api.Find("delete", "persistentvolumeclaims"), nullptr) << "never deletes a claim";
}

TEST(ReconcileTest, ExistingClaimIsMountedNeverCreatedAndWaitedFor) {
  Fixture f;
  f.cache.Put(kube::kTrainingJobs,
              Job("a", {{"checkpoint", {{"storage", "ExistingClaim"}, {"claimName", "team-ckpt"}}}}, Admitted()));
  // Missing: no pods, a warning, a look again later.
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_TRUE(CreatedPods(f.api).empty());
  EXPECT_EQ(f.api.EventReasons(), (Calls{"CheckpointClaimMissing"}));
  EXPECT_GT(r.requeue_after_s, 0);
  EXPECT_NE(f.api.Find("get", "persistentvolumeclaims", "default/team-ckpt"), nullptr);
  // There: mounted, with the job's own folder in it.
  f.api.objects["persistentvolumeclaims default/team-ckpt"] = {{"metadata", {{"name", "team-ckpt"}, {"namespace", "default"}}}};
  f.api.Clear();
  r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  auto pods = CreatedPods(f.api);
  ASSERT_EQ(pods.size(), 2u);
  EXPECT_EQ(pods["a-worker-0"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"], "team-ckpt");
  EXPECT_EQ(EnvOf(pods["a-worker-0"]["spec"]["containers"][0])["TANDEM_CHECKPOINT_DIR"],
            "/var/lib/tandem/checkpoints/a/trainer-0");
  EXPECT_EQ(EnvOf(pods["a-worker-0"]["spec"]["containers"][0])["TANDEM_OUTPUT_DIR"],
            "/var/lib/tandem/checkpoints/a/model") << "the model outlives the job on the user's claim";
  EXPECT_EQ(f.api.Find("create", "persistentvolumeclaims"), nullptr);
}

TEST(ReconcileTest, HostPathIsAnExplicitOptIn) {
  Fixture f;
  f.cache.Put(kube::kTrainingJobs, Job("a", {{"checkpoint", {{"storage", "HostPath"}}}}, Admitted()));
  f.reconciler.Reconcile("default/a");
  auto pods = CreatedPods(f.api);
  ASSERT_EQ(pods.size(), 2u);
  EXPECT_EQ(pods["a-worker-0"]["spec"]["volumes"][0]["hostPath"]["path"], "/var/lib/tandem/checkpoints/default/a");
  EXPECT_EQ(f.api.Find("create", "persistentvolumeclaims"), nullptr);
  f.api.Clear();
  f.cache.Put(kube::kTrainingJobs,
              Job("b", {{"checkpoint", {{"storage", "HostPath"}, {"hostPath", "/mnt/fast"}}}}, Admitted()));
  f.reconciler.Reconcile("default/b");
  EXPECT_EQ(CreatedPods(f.api)["b-worker-0"]["spec"]["volumes"][0]["hostPath"]["path"], "/mnt/fast/default/b");
}

TEST(ReconcileTest, AnInvalidQueueIsReportedAsInvalidNotMissing) {
  Fixture f;
  f.cache.Put(kube::kQueues, {{"apiVersion", "tandem.dev/v1alpha1"}, {"kind", "Queue"},
                              {"metadata", {{"name", "team-a"}}},
                              {"spec", {{"guaranteed", {{"cpu", "8"}, {"memory", "8Gi"}}}}}});  // no GPUs listed
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, {{"phase", "Queued"}}));
  f.reconciler.Schedule();
  json st = f.api.LastStatus();
  EXPECT_NE(st.value("pendingReason", "").find("queue team-a is invalid: spec.guaranteed"), std::string::npos)
      << st.dump();
  EXPECT_EQ(f.api.EventReasons(), (Calls{"InvalidQueue"}));
}

TEST(ReconcileTest, RetryableWorkerFailureRestartsTheGangAfterBackoff) {
  Fixture f;
  json job = Job("a", {{"restartPolicy", {{"backoffLimit", 2}, {"backoffSeconds", 10}}}}, Admitted("Running"));
  f.cache.Put(kube::kTrainingJobs, job);
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Running", true));
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Failed", false, 137));
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  Calls expected = {"create persistentvolumeclaims default/a-checkpoints", "create configmaps default/a-config", "create services default/a",
                    "create networkpolicies default/a", "delete pods default/a-worker-0", "delete pods default/a-worker-1",
                    "update_status trainingjobs default/a"};
  EXPECT_EQ(f.api.Summary(), expected);
  EXPECT_EQ(f.api.Find("delete", "pods")->delete_options.grace_period_seconds, 60) << "SIGTERM, time to checkpoint";
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Restarting");
  EXPECT_EQ(st["restarts"], 1);
  EXPECT_DOUBLE_EQ(r.requeue_after_s, 10);
  EXPECT_EQ(f.api.EventReasons(), (Calls{"WorkerFailed"}));

  // Old pods gone, backoff not over: wait.
  f.cache.Remove(kube::kPods, "default/a-worker-0");
  f.cache.Remove(kube::kPods, "default/a-worker-1");
  json restarting = job;
  restarting["status"] = st;
  f.cache.Put(kube::kTrainingJobs, restarting);
  f.now = kT0 + 5;
  f.api.Clear();
  r = f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.api.Find("create", "pods"), nullptr);
  EXPECT_NEAR(r.requeue_after_s, 5, 1e-6);

  // Backoff over: the gang comes back from the checkpoint, restart number in the pods.
  f.now = kT0 + 10;
  f.api.Clear();
  r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok());
  const auto* pod = f.api.Find("create", "pods", "default/a-worker-0");
  ASSERT_NE(pod, nullptr);
  EXPECT_EQ(pod->body["metadata"]["annotations"][kRestartAnnotation], "1");
  EXPECT_NE(f.api.Find("create", "pods", "default/a-worker-1"), nullptr);
  EXPECT_EQ(f.api.LastStatus()["phase"], "Admitted");
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Restarted"}));

  // Regression: a pass that still reads the job as Restarting (its informer has not delivered
  // the write above yet) while the new gang's pods are already cached used to delete them, and
  // so restart the gang twice for one failure. The new gang is left alone.
  for (const char* name : {"default/a-worker-0", "default/a-worker-1"}) {
    json created = f.api.Find("create", "pods", name)->body;
    created["metadata"]["namespace"] = "default";
    f.cache.Put(kube::kPods, created);
  }
  f.api.Clear();
  r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_EQ(f.api.Find("delete", "pods"), nullptr) << "the new gang must survive a stale pass";
  EXPECT_GT(r.requeue_after_s, 0);
}

TEST(ReconcileTest, NonRetryableExitCodeOrExhaustedBackoffFailsTheJob) {
  struct Case {
    int exit_code;
    int restarts;
    std::string reason;
  };
  for (const Case& c : {Case{2, 0, "NonRetryableExitCode"}, Case{143, 3, "BackoffLimitExceeded"}}) {
    Fixture f;
    json job = Job("a", {}, Admitted("Running", {{"restarts", c.restarts}}));
    f.cache.Put(kube::kTrainingJobs, job);
    f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Running", true));
    f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Failed", false, c.exit_code));
    ReconcileResult r = f.reconciler.Reconcile("default/a");
    ASSERT_TRUE(r.error.ok());
    json st = f.api.LastStatus();
    EXPECT_EQ(st["phase"], "Failed") << c.reason;
    bool found = false;
    for (const auto& cond : st["conditions"]) {
      if (cond["type"] == "Failed") {
        found = true;
        EXPECT_EQ(cond["reason"], c.reason);
      }
    }
    EXPECT_TRUE(found);
    EXPECT_NE(f.api.Find("delete", "pods", "default/a-worker-0"), nullptr) << "the survivor is stopped";
    EXPECT_EQ(f.api.EventReasons(), (Calls{c.reason}));
    EXPECT_TRUE(r.schedule) << "capacity freed";
  }
}

TEST(ReconcileTest, SuspendReleasesWorkersAndResumeRequeues) {
  Fixture f;
  json job = Job("a", {{"suspend", true}}, Admitted("Running"));
  f.cache.Put(kube::kTrainingJobs, job);
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Running", true));
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Running", true));
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok());
  EXPECT_EQ(f.api.Summary(), (Calls{"delete pods default/a-worker-0", "delete pods default/a-worker-1",
                                     "update_status trainingjobs default/a"}));
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Suspended");
  EXPECT_FALSE(st.contains("placement") && !st["placement"].empty());
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Suspended"}));

  f.api.Clear();
  f.cache.Remove(kube::kPods, "default/a-worker-0");
  f.cache.Remove(kube::kPods, "default/a-worker-1");
  json resumed = Job("a", {{"suspend", false}}, st);
  f.cache.Put(kube::kTrainingJobs, resumed);
  r = f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.api.Summary(), (Calls{"update_status trainingjobs default/a"}));
  EXPECT_EQ(f.api.LastStatus()["phase"], "Queued");
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Resumed"}));
  EXPECT_TRUE(r.schedule);
}

TEST(ReconcileTest, PreemptionReclaimsBorrowedCapacityWithAGracePeriod) {
  Fixture f;
  // team-a is guaranteed all 4 GPUs; team-b borrows them while team-a is idle.
  f.cache.Put(kube::kQueues, Queue("team-a", 4));
  f.cache.Put(kube::kQueues, Queue("team-b", 0));
  json borrower = Job("b", {{"queue", "team-b"}, {"workers", {{"count", 4}}}},
                      {{"phase", "Running"}, {"placement", {"n1", "n1", "n1", "n1"}}});
  f.cache.Put(kube::kTrainingJobs, borrower);
  for (int r = 0; r < 4; ++r) f.cache.Put(kube::kPods, WorkerPod(borrower, r, "n1", "Running", true));
  f.cache.Put(kube::kTrainingJobs, Job("a", {}, {{"phase", "Queued"}}));

  ReconcileResult r = f.reconciler.Schedule();
  ASSERT_TRUE(r.error.ok()) << r.error;
  for (int rank = 0; rank < 4; ++rank) {
    const auto* d = f.api.Find("delete", "pods", "default/b-worker-" + std::to_string(rank));
    ASSERT_NE(d, nullptr) << rank;
    EXPECT_EQ(d->delete_options.grace_period_seconds, 60);
  }
  const auto* victim = f.api.Find("update_status", "trainingjobs", "default/b");
  ASSERT_NE(victim, nullptr);
  EXPECT_EQ(victim->body["status"]["phase"], "Queued");
  bool preempted = false;
  for (const auto& c : victim->body["status"]["conditions"]) {
    preempted = preempted || (c["type"] == "Preempted" && c["status"] == "True");
  }
  EXPECT_TRUE(preempted);
  const auto* waiting = f.api.Find("update_status", "trainingjobs", "default/a");
  ASSERT_NE(waiting, nullptr);
  EXPECT_EQ(waiting->body["status"]["phase"], "Queued") << "admitted on a later pass, once b's workers are gone";
  auto reasons = f.api.EventReasons();
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "Preempted"), reasons.end());

  // b's workers gone: the next pass admits a.
  f.api.Clear();
  for (int rank = 0; rank < 4; ++rank) f.cache.Remove(kube::kPods, "default/b-worker-" + std::to_string(rank));
  json b_after = borrower;
  b_after["status"] = victim->body["status"];
  b_after["metadata"]["resourceVersion"] = "11";
  f.cache.Put(kube::kTrainingJobs, b_after);
  r = f.reconciler.Schedule();
  const auto* admitted = f.api.Find("update_status", "trainingjobs", "default/a");
  ASSERT_NE(admitted, nullptr);
  EXPECT_EQ(admitted->body["status"]["phase"], "Admitted");
}

TEST(ReconcileTest, DeletedJobMakesNoCalls) {
  Fixture f;
  ReconcileResult r = f.reconciler.Reconcile("default/gone");
  EXPECT_TRUE(r.error.ok());
  EXPECT_TRUE(f.api.calls.empty()) << "owner references let the garbage collector remove the children";
  json deleting = Job("a", {}, Admitted("Running"));
  deleting["metadata"]["deletionTimestamp"] = kube::FormatRfc3339(kT0);
  f.cache.Put(kube::kTrainingJobs, deleting);
  r = f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(f.api.calls.empty());
}

TEST(ReconcileTest, FinishedJobIsDeletedAfterItsTtl) {
  Fixture f;
  json job = Job("a", {{"ttlSecondsAfterFinished", 60}},
                 {{"phase", "Succeeded"}, {"completionTime", kube::FormatRfc3339(kT0 - 30)},
                  {"placement", {"n1", "n1"}}, {"observedGeneration", 1}});
  f.cache.Put(kube::kTrainingJobs, job);
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(f.api.Summary().empty());
  EXPECT_NEAR(r.requeue_after_s, 30, 1e-6);

  f.now = kT0 + 30;
  r = f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.api.Summary(), (Calls{"delete trainingjobs default/a"}));
  EXPECT_EQ(f.api.Find("delete", "trainingjobs")->delete_options.precondition_uid, "uid-a");
  EXPECT_EQ(f.api.EventReasons(), (Calls{"TTLExpired"}));
}

TEST(ReconcileTest, AllWorkersSucceededCompletesTheJob) {
  Fixture f;
  json job = Job("a", {}, Admitted("Running"));
  f.cache.Put(kube::kTrainingJobs, job);
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Succeeded"));
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Succeeded"));
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Succeeded");
  EXPECT_FALSE(st.value("completionTime", "").empty());
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Completed"}));
  EXPECT_TRUE(r.schedule);
}

// On a real kubelet a worker pod stays Running after its trainer exits: the pserver beside it
// serves until SIGTERM. The trainer's exit decides; the finished job then stops the pservers.
TEST(ReconcileTest, TrainersThatExitedZeroCompleteTheJobWhileThePServersStillServe) {
  Fixture f;
  json job = PServerJob("a", {}, Admitted("Running"));
  f.cache.Put(kube::kTrainingJobs, job);
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Running", false, 0));
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Running", true));
  f.reconciler.Reconcile("default/a");
  EXPECT_NE(f.api.LastStatus()["phase"], "Succeeded") << "rank 1's trainer still runs";

  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Running", false, 0));
  f.api.Clear();
  f.reconciler.Reconcile("default/a");
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Succeeded");
  EXPECT_EQ(st["workers"]["succeeded"], 2);
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Completed"}));

  // The next pass sees the job finished and stops the pods (SIGTERM: the pservers checkpoint).
  json done = job;
  done["status"] = st;
  f.cache.Put(kube::kTrainingJobs, done);
  f.api.Clear();
  f.reconciler.Reconcile("default/a");
  EXPECT_EQ(f.api.Summary(), (Calls{"delete pods default/a-worker-0", "delete pods default/a-worker-1"}));
  EXPECT_EQ(f.api.Find("delete", "pods")->delete_options.grace_period_seconds, 60);
}

// The prober may last have seen the job before its final evaluation: the figures of a finished
// job come from the result rank 0's trainer left in its termination message.
TEST(ReconcileTest, ACompletedJobTakesItsFinalFiguresFromRank0sResult) {
  Fixture f;
  json scraped = Admitted("Running");
  scraped["progress"] = {{"step", 900}, {"pass", 4}, {"percent", 75}, {"testPass", 3}, {"testAccuracy", 0.81},
                         {"testLoss", 0.52}, {"accuracy", 0.81}};
  json job = Job("a", {}, scraped);
  f.cache.Put(kube::kTrainingJobs, job);
  api::WorkerResult result{.steps = 1200, .passes = 4, .test_accuracy = 0.9125, .test_loss = 0.2875,
                           .examples_per_sec = 2500};
  for (int rank : {0, 1}) {
    json pod = WorkerPod(job, rank, "n1", "Running", false, 0);
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] =
        rank == 0 ? api::RenderWorkerResult(result) : "not rank 0's: ignored";
    f.cache.Put(kube::kPods, pod);
  }
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  json st = f.api.LastStatus();
  ASSERT_EQ(st["phase"], "Succeeded") << st.dump();
  EXPECT_EQ(st["progress"]["testPass"], 4);
  EXPECT_DOUBLE_EQ(st["progress"]["testAccuracy"].get<double>(), 0.9125);
  EXPECT_DOUBLE_EQ(st["progress"]["testLoss"].get<double>(), 0.2875);
  EXPECT_DOUBLE_EQ(st["progress"]["accuracy"].get<double>(), 0.9125);
  EXPECT_EQ(st["progress"]["step"], 1200);
  EXPECT_DOUBLE_EQ(st["progress"]["examplesPerSec"].get<double>(), 5000) << "rank 0's rate x 2 workers";
  EXPECT_EQ(st["progress"]["pass"], 4);
  EXPECT_DOUBLE_EQ(st["progress"]["percent"].get<double>(), 100);

  // A message that is not a result (a log tail, garbage) leaves the scraped figures alone.
  for (const std::string message : {std::string("tandem-trainer: done\n"), std::string("{\"kind\":\"x\"}"),
                                    api::RenderWorkerResult({.steps = 5, .passes = 4}).substr(0, 20)}) {
    Fixture g;
    g.cache.Put(kube::kTrainingJobs, job);
    for (int rank : {0, 1}) {
      json pod = WorkerPod(job, rank, "n1", "Running", false, 0);
      pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = message;
      g.cache.Put(kube::kPods, pod);
    }
    g.reconciler.Reconcile("default/a");
    json gst = g.api.LastStatus();
    EXPECT_EQ(gst["phase"], "Succeeded") << message;
    EXPECT_DOUBLE_EQ(gst["progress"]["testAccuracy"].get<double>(), 0.81) << message;
    EXPECT_EQ(gst["progress"]["testPass"], 3) << message;
  }
}

// A failed trainer's log tail (the kubelet's FallbackToLogsOnError) names the cause in the
// condition, so `kubectl describe tj` says why without reading the pod's logs.
TEST(ReconcileTest, AFailedTrainersLastLogLineIsInTheFailure) {
  Fixture f;
  json job = Job("a", {}, Admitted("Running"));
  f.cache.Put(kube::kTrainingJobs, job);
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Running", true));
  json failed = WorkerPod(job, 1, "n1", "Failed", false, 1);
  failed["status"]["containerStatuses"][0]["state"]["terminated"]["message"] =
      "pass 1 step 10 loss 0.5\ntandem-trainer: spec.data.train.path: cannot open /data/x.idx\n\n";
  f.cache.Put(kube::kPods, failed);
  f.reconciler.Reconcile("default/a");
  json st = f.api.LastStatus();
  ASSERT_EQ(st["phase"], "Failed") << st.dump();
  std::string message;
  for (const auto& cond : st["conditions"])
    if (cond["type"] == "Failed") message = cond["message"];
  EXPECT_NE(message.find("trainer exited with 1 (tandem-trainer: spec.data.train.path: cannot open /data/x.idx)"),
            std::string::npos)
      << message;
}

TEST(ReconcileTest, ATrainerThatFailedWhileItsPServerServesRestartsTheGang) {
  Fixture f;
  json job = Job("a", {}, Admitted("Running"));
  f.cache.Put(kube::kTrainingJobs, job);
  f.cache.Put(kube::kPods, WorkerPod(job, 0, "n1", "Running", true));
  f.cache.Put(kube::kPods, WorkerPod(job, 1, "n1", "Running", false, 75));
  f.reconciler.Reconcile("default/a");
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Restarting");
  EXPECT_NE(f.api.Find("delete", "pods", "default/a-worker-1"), nullptr);
  EXPECT_EQ(f.api.EventReasons(), (Calls{"WorkerFailed"}));
}

// Fault 3 of issue 20: the trainer's sections are validated by the operator too.
TEST(ReconcileTest, AnInvalidModelFailsTheJobInsteadOfStartingIt) {
  Fixture f;
  json job = Job("a");
  job["spec"]["model"]["layers"][0]["size"] = 0;
  f.cache.Put(kube::kTrainingJobs, job);
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(r.error.ok());
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Failed");
  std::string message;
  for (const auto& c : st["conditions"])
    if (c["type"] == "Failed") message = c["message"];
  EXPECT_NE(message.find("spec.model.layers[0]"), std::string::npos) << message;
  for (const std::string& call : f.api.Summary()) EXPECT_EQ(call.find("create pods"), std::string::npos) << call;
}

TEST(ReconcileTest, InvalidSpecFailsWithTheFieldPath) {
  Fixture f;
  f.cache.Put(kube::kTrainingJobs, Job("a", {{"workers", {{"count", -1}}}}));
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(r.error.ok()) << "a permanent error sets a condition and stops";
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Failed");
  std::string message;
  for (const auto& c : st["conditions"]) {
    if (c["type"] == "Failed") message = c["message"];
  }
  EXPECT_NE(message.find("spec.workers.count"), std::string::npos) << message;
  EXPECT_EQ(f.api.EventReasons(), (Calls{"InvalidSpec"}));
}

// What the informers keep of a TrainingJob and a Queue (cache_transform.h: no managedFields, no
// kubectl last-applied annotation, which a real apiserver adds and which doubled a job's size)
// still round-trips what the operator writes back: the status parsed from the slimmed object is
// the status of the whole one, and the /status PUT built from it is the same request.
TEST(ReconcileTest, SlimmedCacheObjectsRoundTripWhatTheOperatorWritesBack) {
  api::TrainingJobStatus st;
  st.phase = "Running";
  api::SetCondition(&st.conditions, api::kConditionAdmitted, "True", "Admitted", "admitted by queue team-a", "2027-01-15T08:00:00Z");
  api::SetCondition(&st.conditions, api::kConditionRunning, "True", "Running", "2 workers ready", "2027-01-15T08:01:00Z");
  st.workers = {2, 2, 2, 0, 0};
  st.restarts = 1;
  st.start_time = "2027-01-15T08:01:00Z";
  st.progress = api::Progress{.step = 40, .pass = 1, .loss = 0.5, .accuracy = 0.8, .examples_per_sec = 900,
                              .percent = 25, .summary = "pass 1/4 25%", .update_time = "2027-01-15T08:02:00Z"};
  st.placement = {"n1", "n1"};
  st.observed_generation = 3;
  st.elastic = api::ElasticStatus{.workers = 2, .epoch = 1, .reason = "admitted", .members = {0, 1}};
  json whole = Job("a");
  whole["status"] = api::StatusToJson(st);
  whole["metadata"]["managedFields"] = {{{"manager", "kubectl-client-side-apply"}, {"operation", "Update"},
                                         {"fieldsV1", {{"f:spec", {{"f:workers", json::object()}}}}}},
                                        {{"manager", "tandem-operator"}, {"operation", "Update"}, {"subresource", "status"},
                                         {"fieldsV1", {{"f:status", json::object()}}}}};
  whole["metadata"]["annotations"] = {{"kubectl.kubernetes.io/last-applied-configuration", Job("a").dump()},
                                      {"team", "vision"}};
  whole["metadata"]["labels"] = {{"app", "mnist"}};
  json slim = whole;
  CacheTransformFor(kube::kTrainingJobs)(slim);
  EXPECT_FALSE(slim["metadata"].contains("managedFields"));
  EXPECT_EQ(slim["metadata"]["annotations"], json({{"team", "vision"}})) << "other annotations are kept";
  EXPECT_EQ(slim["metadata"]["labels"], whole["metadata"]["labels"]);
  EXPECT_LT(slim.dump().size(), whole.dump().size() / 2 + 200);
  api::FieldErrors errors;
  api::TrainingJob from_slim = api::ParseTrainingJob(slim, api::SectionValidators{}, &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].path << ": " << errors[0].message;
  api::TrainingJob from_whole = api::ParseTrainingJob(whole, api::SectionValidators{}, &errors);
  ASSERT_TRUE(errors.empty());
  EXPECT_EQ(from_slim.status, st);
  EXPECT_EQ(from_slim.spec, from_whole.spec);
  EXPECT_EQ(api::StatusToJson(from_slim.status), whole["status"]);
  EXPECT_EQ(kube::StatusUpdateBody(slim, api::StatusToJson(from_slim.status)),
            kube::StatusUpdateBody(whole, api::StatusToJson(from_whole.status)));

  // A Queue with its waiting list.
  json queue = Queue("team-a", 4);
  queue["metadata"]["uid"] = "q-uid";
  queue["metadata"]["resourceVersion"] = "7";
  queue["status"] = {{"admittedJobs", 1}, {"pendingJobs", 2}, {"usage", {{"nvidia.com/gpu", "2"}}},
                     {"borrowed", json::object()}, {"weightedShare", 0},
                     {"waiting", {{"jobs", {{{"namespace", "default"}, {"name", "b"}, {"position", 1},
                                             {"reason", "InsufficientResources"}, {"detail", "position 1 of 2"}}}},
                                  {"updateTime", "2027-01-15T08:00:00Z"}}}};
  json whole_q = queue;
  whole_q["metadata"]["managedFields"] = {{{"manager", "tandem-operator"}, {"fieldsV1", {{"f:status", json::object()}}}}};
  whole_q["metadata"]["annotations"] = {{"kubectl.kubernetes.io/last-applied-configuration", queue.dump()}};
  json slim_q = whole_q;
  CacheTransformFor(kube::kQueues)(slim_q);
  EXPECT_FALSE(slim_q["metadata"].contains("managedFields"));
  auto parsed_q = api::QueueFromJson(slim_q);
  ASSERT_TRUE(parsed_q.ok()) << parsed_q.status();
  ASSERT_EQ(parsed_q->status.waiting.size(), 1u);
  EXPECT_EQ(parsed_q->status.waiting[0].detail, "position 1 of 2");
  json written = api::ToJson(*parsed_q).value("status", json::object());
  EXPECT_EQ(written["waiting"], queue["status"]["waiting"]);
  EXPECT_EQ(written["pendingJobs"], 2);
  EXPECT_EQ(kube::StatusUpdateBody(slim_q, written), kube::StatusUpdateBody(whole_q, written));
}

// The informers keep only the fields the controller reads (cache_transform.h). The same world,
// cached whole or pruned, must lead to the same API calls, status and progress endpoints; the
// objects carry what a real kubelet and API server add (managedFields, images, host IPs...).
TEST(ReconcileTest, PrunedCacheObjectsLeadToTheSameDecisions) {
  json job = Job("a", {}, Admitted("Running"));
  job["metadata"]["managedFields"] = {{{"manager", "kubectl"}, {"operation", "Update"}, {"fieldsV1", {{"f:spec", json::object()}}}}};
  api::FieldErrors errors;
  api::TrainingJob parsed = api::ParseTrainingJob(job, api::SectionValidators{}, &errors);
  ASSERT_TRUE(errors.empty());
  // A worker pod exactly as the operator builds it, with the status a kubelet writes.
  auto pod = [&](int rank, const std::string& phase, bool ready, int trainer_exit, bool deleting) {
    BuildOptions built_with;
    built_with.ports.trainer_metrics = 9555;  // not the reconciler's default: read from the pod
    json p = BuildWorkerPod(job, parsed, rank, "n1", 0, built_with);
    p["metadata"]["uid"] = "pod-" + std::to_string(rank);
    p["metadata"]["resourceVersion"] = "5";
    p["metadata"]["managedFields"] = {{{"manager", "kubelet"}, {"fieldsV1", {{"f:status", json::object()}}}}};
    if (deleting) p["metadata"]["deletionTimestamp"] = kube::FormatRfc3339(kT0);
    p["status"] = {{"phase", phase}, {"podIP", "10.4.0." + std::to_string(rank + 7)}, {"hostIP", "192.0.2.1"},
                   {"startTime", kube::FormatRfc3339(kT0 - 50)}, {"qosClass", "Burstable"},
                   {"conditions", {{{"type", "Initialized"}, {"status", "True"}, {"lastTransitionTime", kube::FormatRfc3339(kT0)}},
                                   {{"type", "Ready"}, {"status", ready ? "True" : "False"}, {"lastProbeTime", nullptr}}}}};
    for (const json& container : p["spec"]["containers"]) {  // the trainer alone: a dense job
      const std::string c = container["name"];
      json st = {{"name", c}, {"ready", ready}, {"restartCount", 0}, {"image", "tandem/tandem:0.1.0"},
                 {"imageID", "sha256:0"}, {"containerID", "containerd://1"}, {"started", ready}};
      if (trainer_exit >= 0 && c == "trainer") {
        st["state"] = {{"terminated", {{"exitCode", trainer_exit}, {"reason", "Error"}}}};
      } else {
        st["state"] = {{"running", {{"startedAt", kube::FormatRfc3339(kT0 - 40)}}}};
      }
      p["status"]["containerStatuses"].push_back(st);
    }
    return p;
  };
  json node = Node("n1", 4);
  node["status"]["images"] = {{{"names", {"tandem/tandem:0.1.0"}}, {"sizeBytes", 123456789}}};
  node["status"]["nodeInfo"] = {{"kubeletVersion", "v1.36.3"}};
  json cordoned = Node("n2", 8);
  cordoned["spec"]["taints"] = {{{"key", "k"}, {"effect", "NoSchedule"}}};
  json foreign = {{"metadata", {{"name", "other"}, {"namespace", "default"}, {"uid", "other"}}},
                  {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "c"}, {"image", "x"},
                                                                   {"resources", {{"requests", {{"nvidia.com/gpu", "1"}}}}}}}}}},
                  {"status", {{"phase", "Running"}}}};
  struct Case {
    std::string name;
    std::vector<json> pods;
  };
  std::vector<Case> cases = {
      {"running and ready", {pod(0, "Running", true, -1, false), pod(1, "Running", true, -1, false)}},
      {"retryable failure", {pod(0, "Running", true, -1, false), pod(1, "Failed", false, 137, false)}},
      {"non-retryable failure", {pod(0, "Running", true, -1, false), pod(1, "Failed", false, 1, false)}},
      {"a worker being deleted", {pod(0, "Running", true, -1, false), pod(1, "Running", true, -1, true)}},
      {"succeeded", {pod(0, "Succeeded", false, -1, false), pod(1, "Succeeded", false, -1, false)}},
  };
  for (const auto& c : cases) {
    std::vector<std::vector<std::string>> summaries;
    std::vector<json> statuses;
    std::vector<std::vector<std::pair<std::string, TrainerEndpoint>>> observed;
    for (bool prune : {false, true}) {
      Fixture f;
      auto put = [&](const kube::Resource& r, json o) {
        if (prune) CacheTransformFor(r)(o);
        f.cache.Put(r, std::move(o));
      };
      put(kube::kTrainingJobs, job);
      put(kube::kNodes, node);
      put(kube::kNodes, cordoned);
      put(kube::kPods, foreign);
      for (const auto& p : c.pods) put(kube::kPods, p);
      f.cache.Put(kube::kTrainingJobs, Job("b", {}, {{"phase", "Queued"}}));
      ReconcileResult r = f.reconciler.Reconcile("default/a");
      EXPECT_TRUE(r.error.ok()) << c.name << ": " << r.error;
      f.reconciler.Schedule();  // b (2 GPUs) waits: 2 of n1's 4 are a's, 1 the foreign pod's; n2 is tainted
      std::vector<std::string> calls = f.api.Summary();
      for (const auto& reason : f.api.EventReasons()) calls.push_back("event " + reason);
      summaries.push_back(calls);
      statuses.push_back(f.api.LastStatus());
      observed.push_back(f.progress.observed);
    }
    EXPECT_EQ(summaries[0], summaries[1]) << c.name;
    EXPECT_EQ(statuses[0], statuses[1]) << c.name;
    EXPECT_EQ(observed[0], observed[1]) << c.name;
  }
  // And the pruning is real: what a pod keeps is a fraction of it.
  json p = pod(0, "Running", true, -1, false);
  const size_t whole = p.dump().size();
  CacheTransformFor(kube::kPods)(p);
  EXPECT_LT(p.dump().size() * 3, whole) << p.dump();
  EXPECT_FALSE(p["metadata"].contains("managedFields"));
}

// A job's ConfigMap keeps, in the cache, the trust bundle and the issued certificate that
// JobTls reads back after an operator restart (else it would issue a new CA to running workers),
// and loses the copy of the manifest.
TEST(ReconcileTest, CachedConfigMapKeepsTheJobsTlsFilesOnly) {
  json cm = {{"apiVersion", "v1"},
             {"kind", "ConfigMap"},
             {"metadata", {{"name", "a-job"}, {"namespace", "default"}, {"managedFields", json::array()}}},
             {"data", {{"job.json", std::string(4096, 'x')}, {"ca.crt", "CA"}, {"issued.crt", "CERT"}}}};
  CacheTransformFor(kube::kConfigMaps)(cm);
  EXPECT_EQ(cm["data"], (json{{"ca.crt", "CA"}, {"issued.crt", "CERT"}})) << cm.dump();
  EXPECT_FALSE(cm["metadata"].contains("managedFields"));
  json membership = {{"metadata", {{"name", "a-membership"}}}, {"data", {{"membership.json", "{\"epoch\": 1}"}}}};
  CacheTransformFor(kube::kConfigMaps)(membership);
  EXPECT_EQ(membership["data"], (json{{"membership.json", "{\"epoch\": 1}"}})) << "compared before a rewrite";
  json plain = {{"metadata", {{"name", "other"}}}, {"data", {{"job.json", "{}"}}}};
  CacheTransformFor(kube::kConfigMaps)(plain);
  EXPECT_FALSE(plain.contains("data")) << plain.dump();
}

// Regression: a pass that runs again before the informer shows its last write (passes are a
// second apart, the watch can be slower) used to write every waiting job's reason again against
// the old resourceVersion: 6,035 of 15,409 status writes in a 1,000-job run were 409s.
TEST(ReconcileTest, APassBeforeTheCacheCatchesUpDoesNotRewriteAWaitingJob) {
  Fixture f;
  f.cache.Put(kube::kTrainingJobs, Job("big", {{"workers", {{"count", 8}}}}, {{"phase", "Queued"}}));
  f.reconciler.Schedule();
  const auto* first = f.api.Find("update_status", "trainingjobs", "default/big");
  ASSERT_NE(first, nullptr) << "8 GPUs on a 4-GPU cluster: big waits, with a reason";
  json written = first->body["status"];
  EXPECT_FALSE(written.value("pendingReason", "").empty());

  f.api.Clear();
  f.now += 1;
  f.reconciler.Schedule();  // the cache still shows the job as it was before the write
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs", "default/big"), nullptr) << "written already";
  // Even a changed reason (more capacity now, so a different message) waits for the cache: the
  // server holds a newer version than the cached one, so the write would only get a 409.
  f.cache.Put(kube::kNodes, Node("n2", 2));
  f.api.Clear();
  f.reconciler.Schedule();
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs", "default/big"), nullptr) << "against a stale version";

  f.cache.Remove(kube::kNodes, "n2");

  // The write shows up in the cache: nothing to do either.
  json seen = Job("big", {{"workers", {{"count", 8}}}}, written);
  seen["metadata"]["resourceVersion"] = "11";
  f.cache.Put(kube::kTrainingJobs, seen);
  f.api.Clear();
  f.reconciler.Schedule();
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs", "default/big"), nullptr);

  // Someone else changes the status (a newer version without the reason): written again.
  json changed = Job("big", {{"workers", {{"count", 8}}}}, {{"phase", "Queued"}});
  changed["metadata"]["resourceVersion"] = "12";
  f.cache.Put(kube::kTrainingJobs, changed);
  f.api.Clear();
  f.reconciler.Schedule();
  EXPECT_NE(f.api.Find("update_status", "trainingjobs", "default/big"), nullptr);
}


// --- elastic jobs (spec.elastic): grow, shrink for a reclaim, a worker failing for good -------

json ElasticSpec(int count, int min, int max) {
  return {{"workers", {{"count", count}, {"minCount", min}, {"maxCount", max}}}, {"elastic", json::object()}};
}
json ElasticStatus(int workers, int64_t epoch = 0) {
  json members = json::array();
  json placement = json::array();
  for (int i = 0; i < workers; ++i) {
    members.push_back(i);
    placement.push_back("n1");
  }
  return {{"phase", "Running"}, {"placement", placement},
          {"elastic", {{"workers", workers}, {"epoch", epoch}, {"members", members}, {"resizes", json::array()}}}};
}
// The job as the cache shows it after a status write: that status, a newer resourceVersion.
json Written(json job, int rv) {
  job["metadata"]["resourceVersion"] = std::to_string(rv);
  return job;
}
std::map<std::string, json> PodEnv(const json& pod) {
  std::map<std::string, json> env;
  for (const auto& e : pod["spec"]["containers"][0]["env"]) env[e["name"]] = e;
  return env;
}
api::Membership MembershipIn(const json& configmap_or_patch) {
  auto m = api::ParseMembership(configmap_or_patch["data"]["membership.json"].get<std::string>(), "test");
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : api::Membership{};
}

TEST(ElasticReconcileTest, ElasticJobWithEmbeddingTablesIsRefusedWithTheReason) {
  // tandem run resizes such a job (resharding its pservers); the operator cannot yet.
  Fixture f;
  json spec = ElasticSpec(2, 1, 4);
  spec["sync"] = {{"dense", "ring"}, {"mode", "sync"}};
  spec["data"] = {{"train", {{"format", "synthetic-ctr"}, {"examples", 1000}, {"numFields", 4}}},
                  {"test", {{"format", "synthetic-ctr"}, {"examples", 100}, {"numFields", 4}}},
                  {"batchSize", 32}};
  spec["model"] = {{"inputs", {{{"name", "ids"}, {"source", "fields"}, {"shape", {4}}},
                               {{"name", "click"}, {"source", "targets"}}}},
                   {"layers", {{{"name", "emb"}, {"type", "embedding"}, {"input", "ids"},
                                {"vocabSize", 1000}, {"size", 4}, {"pooling", "sum"}},
                               {{"name", "logit"}, {"type", "fc"}, {"input", "emb"}, {"size", 1}},
                               {{"name", "cost"}, {"type", "binary_cross_entropy"},
                                {"inputs", {"logit", "click"}}}}},
                   {"cost", "cost"}};
  f.cache.Put(kube::kTrainingJobs, Job("a", spec));
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  EXPECT_TRUE(r.error.ok());
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Failed");
  std::string reason, message;
  for (const auto& c : st["conditions"])
    if (c["type"] == "Failed") reason = c["reason"], message = c["message"];
  EXPECT_EQ(reason, "Unsupported") << st.dump();
  EXPECT_NE(message.find("spec.elastic"), std::string::npos) << message;
  for (const std::string& call : f.api.Summary()) EXPECT_EQ(call.find("create pods"), std::string::npos) << call;
}

TEST(ElasticReconcileTest, GrowsIntoIdleCapacityThenPublishes) {
  Fixture f;
  json job = Job("a", ElasticSpec(2, 1, 4), ElasticStatus(2));
  f.cache.Put(kube::kTrainingJobs, job);
  for (int r = 0; r < 2; ++r) f.cache.Put(kube::kPods, WorkerPod(job, r, "n1", "Running", true));
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  const auto* w = f.api.Find("update_status", "trainingjobs", "default/a");
  ASSERT_NE(w, nullptr);
  json st = w->body["status"];
  EXPECT_EQ(st["placement"], json({"n1", "n1", "n1", "n1"})) << "4 GPUs idle: grown to maxCount";
  EXPECT_EQ(st["elastic"]["members"], json({0, 1, 2, 3}));
  EXPECT_EQ(st["elastic"]["workers"], 2) << "published only once the new workers run";
  EXPECT_EQ(st["elastic"]["epoch"], 0);
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Growing"}));
  // A pass before the cache shows that write decides nothing more for a.
  f.api.Clear();
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs", "default/a"), nullptr) << "resize in flight";

  // The job's reconcile creates the membership (still epoch 0) and the two new workers, which
  // start with the planned membership of 4.
  f.api.Clear();
  job = Written(Job("a", ElasticSpec(2, 1, 4), st), 11);
  f.cache.Put(kube::kTrainingJobs, job);
  ASSERT_TRUE(f.reconciler.Reconcile("default/a").error.ok());
  const auto* cm = f.api.Find("create", "configmaps", "default/a-membership");
  ASSERT_NE(cm, nullptr);
  api::Membership m0 = MembershipIn(cm->body);
  EXPECT_EQ(m0.epoch, 0);
  EXPECT_EQ(m0.world_size(), 2);
  EXPECT_EQ(f.api.Find("create", "pods", "default/a-worker-0"), nullptr);
  const auto* pod = f.api.Find("create", "pods", "default/a-worker-3");
  ASSERT_NE(pod, nullptr);
  auto env = PodEnv(pod->body);
  EXPECT_EQ(env["TANDEM_RANK"]["value"], "3");
  EXPECT_EQ(env["TANDEM_WORLD_SIZE"]["value"], "4");
  EXPECT_EQ(env["TANDEM_MEMBERSHIP"]["value"], "/etc/tandem-membership/membership.json");
  // No embedding tables: like `tandem run` (elastic_pservers), no pserver beside the trainer.
  EXPECT_EQ(pod->body["spec"]["containers"].size(), 1u);
  EXPECT_EQ(env.count("TANDEM_PSERVERS"), 0u);
  // The pod's contract is what the trainer's own parser accepts (one definition of the rule).
  Environment penv;
  for (const auto& [name, e] : env) penv[name] = e.contains("value") ? e["value"].get<std::string>() : "tok";
  auto contract = api::ParseWorkerContract(api::WorkerRole::kTrainer, "/etc/tandem/job.json", penv);
  ASSERT_TRUE(contract.ok()) << contract.status();
  EXPECT_EQ(contract->rank, 3);
  EXPECT_EQ(contract->peers[3], (Endpoint{"a-worker-3.a.default.svc", 7000}));
  EXPECT_EQ(contract->membership_file, "/etc/tandem-membership/membership.json");
  bool mounted = false;
  for (const json& v : pod->body["spec"]["volumes"])
    if (v.contains("configMap") && v["configMap"]["name"] == "a-membership") mounted = true;
  EXPECT_TRUE(mounted);
  EXPECT_EQ(f.api.LastStatus()["elastic"]["workers"], 2) << "nothing published yet";
  EXPECT_EQ(f.api.LastStatus()["elastic"]["epoch"], 0);

  // Both new workers run: the new epoch is published, recorded and announced.
  f.api.Clear();
  auto& grows = *OperatorMetrics::Get().resizes.WithLabels({"grow", "Grow"});
  const double grows_before = grows.Value();
  f.cache.Put(kube::kConfigMaps, json{{"metadata", {{"name", "a-membership"}, {"namespace", "default"}}},
                                      {"data", {{"membership.json", api::RenderMembership(m0)}}}});
  for (int r = 2; r < 4; ++r) f.cache.Put(kube::kPods, WorkerPod(job, r, "n1", "Running", true));
  ASSERT_TRUE(f.reconciler.Reconcile("default/a").error.ok());
  st = f.api.LastStatus();
  EXPECT_EQ(st["elastic"]["workers"], 4);
  EXPECT_EQ(st["elastic"]["epoch"], 1);
  ASSERT_EQ(st["elastic"]["resizes"].size(), 1u);
  EXPECT_EQ(st["elastic"]["resizes"][0]["from"], 2);
  EXPECT_EQ(st["elastic"]["resizes"][0]["to"], 4);
  EXPECT_EQ(st["elastic"]["resizes"][0]["reason"], "Grow");
  EXPECT_EQ(st["elastic"]["resizes"][0]["lostSteps"], 0);
  EXPECT_EQ(f.api.EventReasons(), (Calls{"Resized"}));
  EXPECT_EQ(grows.Value(), grows_before + 1) << "tandem_operator_resizes_total{direction=\"grow\"}";
  EXPECT_EQ(f.api.Find("patch", "configmaps", "default/a-membership"), nullptr) << "status first, then the file";

  // The next pass (the status as cached) moves the ConfigMap to epoch 1 with 4 peers.
  f.api.Clear();
  f.cache.Put(kube::kTrainingJobs, Written(Job("a", ElasticSpec(2, 1, 4), st), 12));
  ASSERT_TRUE(f.reconciler.Reconcile("default/a").error.ok());
  const auto* patch = f.api.Find("patch", "configmaps", "default/a-membership");
  ASSERT_NE(patch, nullptr);
  api::Membership m1 = MembershipIn(patch->body);
  EXPECT_EQ(m1.epoch, 1);
  ASSERT_EQ(m1.world_size(), 4);
  EXPECT_EQ(m1.peers[2], (Endpoint{"a-worker-2.a.default.svc", 7000}));
  // Once the cache (as pruned by the informer) shows it, nothing is rewritten.
  json current = {{"metadata", {{"name", "a-membership"}, {"namespace", "default"}}},
                  {"data", {{"membership.json", api::RenderMembership(m1)}, {"job.json", "{}"}}}};
  CacheTransformFor(kube::kConfigMaps)(current);
  f.cache.Put(kube::kConfigMaps, current);
  f.api.Clear();
  ASSERT_TRUE(f.reconciler.Reconcile("default/a").error.ok());
  EXPECT_EQ(f.api.Find("patch", "configmaps", "default/a-membership"), nullptr);
  EXPECT_EQ(f.api.Find("create", "configmaps", "default/a-membership"), nullptr);

  // In its cool-down it does not grow again, even with capacity (another node).
  f.api.Clear();
  f.cache.Put(kube::kNodes, Node("n2", 4));
  f.cache.Put(kube::kQueues, Queue("team-a", 8));
  f.cache.Put(kube::kTrainingJobs, Written(Job("a", ElasticSpec(2, 1, 6), st), 13));
  f.now = kT0 + 10;
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs", "default/a"), nullptr) << "cool-down";
  f.now = kT0 + 61;
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  w = f.api.Find("update_status", "trainingjobs", "default/a");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->body["status"]["elastic"]["members"], json({0, 1, 2, 3, 4, 5}));
}

TEST(ElasticReconcileTest, ReclaimShrinksInsteadOfPreempting) {
  Fixture f;
  auto& shrinks = *OperatorMetrics::Get().resizes.WithLabels({"shrink", "ReclaimBorrowed"});
  const double shrinks_before = shrinks.Value();
  f.cache.Put(kube::kQueues, Queue("team-a", 0));
  f.cache.Put(kube::kQueues, Queue("team-b", 4));
  json a = Job("a", ElasticSpec(4, 1, 4), ElasticStatus(4, 3));
  f.cache.Put(kube::kTrainingJobs, a);
  for (int r = 0; r < 4; ++r) f.cache.Put(kube::kPods, WorkerPod(a, r, "n1", "Running", true));
  f.cache.Put(kube::kTrainingJobs, Job("b", {{"queue", "team-b"}}, {{"phase", "Queued"}}));
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  const auto* w = f.api.Find("update_status", "trainingjobs", "default/a");
  ASSERT_NE(w, nullptr);
  json st = w->body["status"];
  EXPECT_EQ(st["phase"], "Running") << "shrunk, not preempted";
  EXPECT_EQ(st["placement"].size(), 2u);
  EXPECT_EQ(st["elastic"]["members"], json({0, 1}));
  EXPECT_EQ(st["elastic"]["workers"], 2);
  EXPECT_EQ(st["elastic"]["epoch"], 4);
  EXPECT_EQ(st["elastic"]["resizes"][0]["reason"], "ReclaimBorrowed");
  EXPECT_EQ(shrinks.Value(), shrinks_before + 1);
  EXPECT_EQ(f.api.Find("delete", "pods"), nullptr) << "the leaving trainers exit on their own";
  const auto* b = f.api.Find("update_status", "trainingjobs", "default/b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->body["status"]["conditions"][0]["reason"], "Shrinking") << b->body.dump();
  std::vector<std::string> reasons = f.api.EventReasons();
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "Resized"), reasons.end());
  EXPECT_EQ(std::find(reasons.begin(), reasons.end(), "Preempted"), reasons.end());

  // Job a's reconcile: worker 2 is still training (kept), worker 3 left (exit 0: deleted).
  f.api.Clear();
  a = Written(Job("a", ElasticSpec(4, 1, 4), st), 11);
  f.cache.Put(kube::kTrainingJobs, a);
  f.cache.Put(kube::kPods, WorkerPod(a, 3, "n1", "Running", false, 0));
  ReconcileResult r = f.reconciler.Reconcile("default/a");
  ASSERT_TRUE(r.error.ok()) << r.error;
  EXPECT_NE(f.api.Find("delete", "pods", "default/a-worker-3"), nullptr);
  EXPECT_EQ(f.api.Find("delete", "pods", "default/a-worker-2"), nullptr);
  EXPECT_GT(r.requeue_after_s, 0);
  if (const auto* status = f.api.Find("update_status", "trainingjobs", "default/a"))
    EXPECT_EQ(status->body["status"]["workers"]["desired"], 2);

  // Until they are gone, b waits for their capacity instead of preempting anything.
  f.api.Clear();
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  EXPECT_EQ(f.api.Find("update_status", "trainingjobs", "default/a"), nullptr);
  b = f.api.Find("update_status", "trainingjobs", "default/b");
  if (b != nullptr) EXPECT_EQ(b->body["status"]["conditions"][0]["reason"], "WaitingForPreemption") << b->body.dump();
  f.cache.Remove(kube::kPods, "default/a-worker-2");
  f.cache.Remove(kube::kPods, "default/a-worker-3");
  f.api.Clear();
  ASSERT_TRUE(f.reconciler.Schedule().error.ok());
  b = f.api.Find("update_status", "trainingjobs", "default/b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->body["status"]["phase"], "Admitted");
}

TEST(ElasticReconcileTest, WorkerFailingForGoodShrinksAboveMinCount) {
  Fixture f;
  json a = Job("a", ElasticSpec(3, 2, 3), ElasticStatus(3));
  f.cache.Put(kube::kTrainingJobs, a);
  f.cache.Put(kube::kConfigMaps, json{{"metadata", {{"name", "a-membership"}, {"namespace", "default"}}}, {"data", json::object()}});
  for (int r = 0; r < 3; ++r) f.cache.Put(kube::kPods, WorkerPod(a, r, "n1", r == 1 ? "Failed" : "Running", r != 1, r == 1 ? 1 : -1));
  ASSERT_TRUE(f.reconciler.Reconcile("default/a").error.ok());
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Running");
  EXPECT_EQ(st["elastic"]["members"], json({0, 2})) << "rank order kept, the failed slot gone";
  EXPECT_EQ(st["elastic"]["workers"], 2);
  EXPECT_EQ(st["elastic"]["epoch"], 1);
  EXPECT_EQ(st["elastic"]["resizes"][0]["reason"], "WorkerFailed");
  EXPECT_FALSE(st["elastic"]["resizes"][0].contains("lostSteps")) << "the operator cannot know";
  EXPECT_EQ(st.value("restarts", 0), 0);
  EXPECT_NE(f.api.Find("delete", "pods", "default/a-worker-1"), nullptr);
  EXPECT_EQ(f.api.Find("delete", "pods", "default/a-worker-0"), nullptr);
  std::vector<std::string> reasons = f.api.EventReasons();
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "Resized"), reasons.end());

  // At minCount the next failure is the job's, as for a fixed job (exit 1: not retryable).
  f.api.Clear();
  a = Job("a", ElasticSpec(3, 2, 3), st);
  f.cache.Put(kube::kTrainingJobs, a);
  f.cache.Remove(kube::kPods, "default/a-worker-1");
  f.cache.Put(kube::kPods, WorkerPod(a, 2, "n1", "Failed", false, 1));
  ASSERT_TRUE(f.reconciler.Reconcile("default/a").error.ok());
  EXPECT_EQ(f.api.LastStatus()["phase"], "Failed");
}

TEST(ElasticReconcileTest, PeerFailureRestartsTheGangInstead) {
  Fixture f;
  json a = Job("a", ElasticSpec(3, 1, 3), ElasticStatus(3));
  f.cache.Put(kube::kTrainingJobs, a);
  for (int r = 0; r < 3; ++r) f.cache.Put(kube::kPods, WorkerPod(a, r, "n1", r == 2 ? "Failed" : "Running", r != 2, r == 2 ? 75 : -1));
  ASSERT_TRUE(f.reconciler.Reconcile("default/a").error.ok());
  json st = f.api.LastStatus();
  EXPECT_EQ(st["phase"], "Restarting") << "exit 75 says a peer failed, not this worker";
  EXPECT_EQ(st["elastic"]["workers"], 3);
}

TEST(ElasticStateTest, NewSlotsHistoryAndCoolDown) {
  EXPECT_EQ(NewSlots({0, 2}, {}, 2), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(NewSlots({0, 1}, {2}, 1), (std::vector<int64_t>{3})) << "slot 2's pod still exists";
  api::TrainingJobStatus st;
  StartMembership(&st, 2, "admitted");
  EXPECT_EQ(st.elastic->epoch, 0);
  for (int i = 0; i < 15; ++i) {
    st.elastic->members.push_back(2);
    PublishMembers(&st, 2, "Grow", "g", kube::FormatRfc3339(kT0 + i), 0);
    st.elastic->members.pop_back();
  }
  EXPECT_EQ(st.elastic->epoch, 15);
  EXPECT_EQ(st.elastic->resizes.size(), api::kMaxResizeHistory);
  EXPECT_EQ(st.elastic->resizes.back().epoch, 15);
  EXPECT_TRUE(CoolingDown(st, kT0 + 20, 60));
  EXPECT_FALSE(CoolingDown(st, kT0 + 80, 60));
  StartMembership(&st, 3, "readmitted");
  EXPECT_EQ(st.elastic->epoch, 16) << "a readmitted job's epoch still rises";
  EXPECT_EQ(st.elastic->workers, 3);
}

}  // namespace
}  // namespace tandem::controller
