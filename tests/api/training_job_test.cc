#include "api/training_job.h"

#include "api/section_validator.h"
#include "common/yaml_json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::api {
namespace {

using json = nlohmann::json;

json ValidJob() {
  auto docs = YamlToJson(R"(
apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: fashion-mnist, namespace: default}
spec:
  queue: default
  priority: 0
  suspend: false
  ttlSecondsAfterFinished: 3600
  image: tandem/tandem:0.1.0
  workers: {count: 2, minCount: 2, maxCount: 2}
  trainer:  {resources: {requests: {cpu: "1", memory: 2Gi, nvidia.com/gpu: 0}}, threads: 1}
  pserver:  {resources: {requests: {cpu: 500m, memory: 1Gi}}}
  passes: 3
  model: {layers: [{type: fc, size: 10}], cost: cross_entropy}
  data: {train: {path: /data/train}, batchSize: 64}
  optimizer: {type: sgd, learningRate: 0.1}
  sync: {dense: ring, mode: sync, staleness: 4, bucketMiB: 4, compression: none}
  checkpoint: {intervalSteps: 500, keep: 3}
  restartPolicy: {backoffLimit: 3, backoffSeconds: 10, retryableExitCodes: [75, 137, 143]}
)",
                         "job.yaml");
  EXPECT_TRUE(docs.ok()) << docs.status();
  return (*docs)[0];
}

FieldErrors Errors(const json& j) {
  FieldErrors errors;
  ParseTrainingJob(j, SectionValidators{}, &errors);
  return errors;
}

std::string Dump(const FieldErrors& errors) {
  std::string s;
  for (const auto& e : errors) s += e.ToString() + "\n";
  return s;
}

TEST(TrainingJobTest, ValidManifestParsesWithoutErrors) {
  FieldErrors errors;
  TrainingJob job = ParseTrainingJob(ValidJob(), SectionValidators{}, &errors);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(job.metadata.name, "fashion-mnist");
  EXPECT_EQ(job.spec.workers.count, 2);
  EXPECT_EQ(job.spec.trainer.resources.requests.at("memory").value(), 2LL << 30);
  EXPECT_EQ(job.spec.pserver.resources.requests.at("cpu").milli(), 500);
  EXPECT_EQ(job.spec.model["cost"], "cross_entropy");
  EXPECT_EQ(*job.spec.ttl_seconds_after_finished, 3600);
  // Dense sync over the ring, no embedding tables: nothing lives on a pserver, so a worker is its
  // trainer alone (1 CPU, 2Gi), without the 500m/1Gi of spec.pserver.
  EXPECT_FALSE(UsesPServers(job.spec));
  EXPECT_EQ(WorkerRequests(job.spec).at("cpu").milli(), 1000);
  EXPECT_EQ(WorkerRequests(job.spec).at("memory").value(), 2LL << 30);
}

TEST(TrainingJobTest, UsesPServersOnlyWhenSomethingLivesOnThem) {
  FieldErrors errors;
  json j = ValidJob();
  EXPECT_FALSE(UsesPServers(ParseTrainingJob(j, SectionValidators{}, &errors).spec));
  // Dense parameters on the pservers.
  j["spec"]["sync"]["dense"] = "pserver";
  TrainingJob dense = ParseTrainingJob(j, SectionValidators{}, &errors);
  EXPECT_TRUE(UsesPServers(dense.spec));
  EXPECT_EQ(WorkerRequests(dense.spec).at("cpu").milli(), 1500);
  EXPECT_EQ(WorkerRequests(dense.spec).at("memory").value(), 3LL << 30);
  // Embedding tables with the dense part on the ring.
  j["spec"]["sync"]["dense"] = "ring";
  j["spec"]["model"]["layers"] = {{{"name", "emb"}, {"type", "embedding"}, {"size", 8}},
                                  {{"type", "fc"}, {"size", 10}}};
  TrainingJob sparse = ParseTrainingJob(j, SectionValidators{}, &errors);
  EXPECT_TRUE(UsesPServers(sparse.spec));
  EXPECT_EQ(WorkerRequests(sparse.spec).at("cpu").milli(), 1500);
  // An elastic job follows the same rule: with embedding tables it has pservers, without none.
  j["spec"]["elastic"] = {{"policy", "linear"}};
  EXPECT_TRUE(UsesPServers(ParseTrainingJob(j, SectionValidators{}, &errors).spec));
  j["spec"]["model"]["layers"] = {{{"type", "fc"}, {"size", 10}}};
  EXPECT_FALSE(UsesPServers(ParseTrainingJob(j, SectionValidators{}, &errors).spec));
}

TEST(TrainingJobTest, DefaultsFillAMinimalJob) {
  json j = {{"apiVersion", "tandem.dev/v1alpha1"},
            {"kind", "TrainingJob"},
            {"metadata", {{"name", "m"}}},
            {"spec", {{"workers", {{"count", 3}}}, {"model", {{"a", 1}}}, {"data", {{"b", 2}}}}}};
  FieldErrors errors;
  TrainingJob job = ParseTrainingJob(j, SectionValidators{}, &errors);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(job.metadata.namespace_, "default");
  EXPECT_EQ(job.spec.queue, "default");
  EXPECT_EQ(job.spec.image, kDefaultImage);
  EXPECT_EQ(job.spec.workers.min_count, 3);
  EXPECT_EQ(job.spec.workers.max_count, 3);
  EXPECT_EQ(job.spec.trainer.resources.requests.at("cpu").milli(), 1000);
  EXPECT_EQ(job.spec.trainer.resources.requests.at("memory").text(), "2Gi");
  EXPECT_EQ(job.spec.pserver.resources.requests.at("cpu").text(), "500m");
  EXPECT_EQ(job.spec.trainer.threads, 0);  // decided where it runs
  EXPECT_EQ(EffectiveThreads(job.spec.trainer), 1);
  EXPECT_EQ(job.spec.sync.dense, "ring");
  EXPECT_EQ(job.spec.checkpoint.interval_steps, 500);
  EXPECT_EQ(job.spec.restart_policy.retryable_exit_codes, (std::vector<int64_t>{75, 137, 143}));
  EXPECT_FALSE(job.spec.ttl_seconds_after_finished.has_value());
}

TEST(TrainingJobTest, LimitWithoutRequestBecomesTheRequest) {
  json j = ValidJob();
  j["spec"]["trainer"].erase("threads");
  j["spec"]["trainer"]["resources"] = {{"limits", {{"cpu", "4"}, {"nvidia.com/gpu", 2}}}};
  FieldErrors errors;
  TrainingJob job = ParseTrainingJob(j, SectionValidators{}, &errors);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(job.spec.trainer.resources.requests.at("cpu").milli(), 4000);
  EXPECT_EQ(job.spec.trainer.resources.requests.at("nvidia.com/gpu").value(), 2);
  EXPECT_EQ(EffectiveThreads(job.spec.trainer), 4);
}

TEST(TrainingJobTest, RoundTripsThroughJson) {
  FieldErrors errors;
  TrainingJob job = ParseTrainingJob(ValidJob(), SectionValidators{}, &errors);
  job.status.phase = kPhaseRunning;
  SetCondition(&job.status.conditions, kConditionRunning, "True", "AllWorkersReady", "2/2 ready",
               "2026-11-28T23:00:00Z");
  job.status.progress = Progress{.step = 10, .pass = 1, .loss = 0.5, .accuracy = 0.8, .summary = "", .update_time = ""};
  job.status.placement = {"node-a", "node-b"};
  json j = ToJson(job);
  FieldErrors again;
  TrainingJob back = ParseTrainingJob(j, SectionValidators{}, &again);
  EXPECT_TRUE(again.empty()) << Dump(again);
  EXPECT_EQ(back, job);
  EXPECT_EQ(ToJson(back), j);
}

TEST(TrainingJobTest, SetConditionKeepsTransitionTimeUnlessStatusChanges) {
  std::vector<Condition> c;
  EXPECT_TRUE(SetCondition(&c, "Queued", "True", "Waiting", "m1", "t1"));
  EXPECT_TRUE(SetCondition(&c, "Queued", "True", "Waiting", "m2", "t2"));
  EXPECT_EQ(c[0].last_transition_time, "t1");
  EXPECT_FALSE(SetCondition(&c, "Queued", "True", "Waiting", "m2", "t3"));
  EXPECT_TRUE(SetCondition(&c, "Queued", "False", "Admitted", "", "t4"));
  EXPECT_EQ(c[0].last_transition_time, "t4");
}

// One mutation of the valid job, and the field path (and a fragment of the message) it must
// be rejected with.
struct BadCase {
  const char* name;
  const char* pointer;  // JSON pointer to set (or remove, when value is discarded)
  json value;
  const char* path;
  const char* message;
};

class TrainingJobRejectTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(TrainingJobRejectTest, RejectsWithFieldPath) {
  const BadCase& c = GetParam();
  json j = ValidJob();
  json::json_pointer ptr(c.pointer);
  if (c.value.is_discarded()) {
    j[ptr.parent_pointer()].erase(ptr.back());
  } else {
    j[ptr] = c.value;
  }
  FieldErrors errors = Errors(j);
  bool found = false;
  for (const auto& e : errors) found = found || (e.path == c.path && e.message.find(c.message) != std::string::npos);
  EXPECT_TRUE(found) << "want " << c.path << ": ..." << c.message << "...\ngot:\n" << Dump(errors);
}

const json kRemove = json(json::value_t::discarded);

INSTANTIATE_TEST_SUITE_P(
    Table, TrainingJobRejectTest,
    ::testing::Values(
        BadCase{"zero_workers", "/spec/workers/count", 0, "spec.workers.count", "must be >= 1, got 0"},
        BadCase{"string_workers", "/spec/workers/count", "two", "spec.workers.count", "must be an integer, got \"two\""},
        BadCase{"fraction_workers", "/spec/workers/count", 1.5, "spec.workers.count", "must be an integer"},
        BadCase{"min_above_count", "/spec/workers/minCount", 3, "spec.workers.minCount", "must be <= spec.workers.count (2)"},
        BadCase{"max_below_count", "/spec/workers/maxCount", 1, "spec.workers.maxCount", "must be >= spec.workers.count (2)"},
        BadCase{"unknown_spec_field", "/spec/replicas", 2, "spec.replicas", "unknown field \"replicas\""},
        BadCase{"unknown_nested", "/spec/sync/algo", "x", "spec.sync.algo", "unknown field"},
        BadCase{"unknown_top", "/extra", 1, "extra", "unknown field"},
        BadCase{"unknown_resource", "/spec/trainer/resources/requests/amd.com~1gpu", 1,
                "spec.trainer.resources.requests[amd.com/gpu]", "unknown field"},
        BadCase{"bad_quantity", "/spec/trainer/resources/requests/memory", "2GB",
                "spec.trainer.resources.requests.memory", "unknown suffix 'GB'"},
        BadCase{"negative_cpu", "/spec/trainer/resources/requests/cpu", "-1",
                "spec.trainer.resources.requests.cpu", "must not be negative"},
        BadCase{"fractional_gpu", "/spec/trainer/resources/requests/nvidia.com~1gpu", "0.5",
                "spec.trainer.resources.requests[nvidia.com/gpu]", "whole number of GPUs"},
        BadCase{"tiny_memory", "/spec/trainer/resources/requests/memory", 512,
                "spec.trainer.resources.requests.memory", "at least 16Mi"},
        BadCase{"request_over_limit", "/spec/trainer/resources/limits", json{{"cpu", "500m"}},
                "spec.trainer.resources.requests.cpu", "must be <= its limit 500m"},
        BadCase{"gpu_limit_differs", "/spec/trainer/resources/limits", json{{"nvidia.com/gpu", 2}},
                "spec.trainer.resources.limits[nvidia.com/gpu]", "limit must equal the request"},
        BadCase{"pserver_gpu", "/spec/pserver/resources/requests/nvidia.com~1gpu", 1,
                "spec.pserver.resources.requests[nvidia.com/gpu]", "pserver runs on CPU"},
        BadCase{"bad_enum", "/spec/sync/dense", "allreduce", "spec.sync.dense", "must be one of ring, pserver; got \"allreduce\""},
        BadCase{"async_ring", "/spec/sync/mode", "async", "spec.sync.mode", "requires spec.sync.dense: pserver"},
        BadCase{"bool_as_string", "/spec/suspend", "yes", "spec.suspend", "must be a boolean"},
        BadCase{"negative_ttl", "/spec/ttlSecondsAfterFinished", -1, "spec.ttlSecondsAfterFinished", "must be >= 0"},
        BadCase{"zero_passes", "/spec/passes", 0, "spec.passes", "must be >= 1"},
        BadCase{"bad_exit_code", "/spec/restartPolicy/retryableExitCodes/1", 300,
                "spec.restartPolicy.retryableExitCodes[1]", "must be <= 255"},
        BadCase{"dup_exit_code", "/spec/restartPolicy/retryableExitCodes/1", 75,
                "spec.restartPolicy.retryableExitCodes[1]", "duplicate exit code 75"},
        BadCase{"model_not_object", "/spec/model", json::array({1}), "spec.model", "must be an object"},
        BadCase{"missing_model", "/spec/model", kRemove, "spec.model", "required"},
        BadCase{"missing_name", "/metadata/name", kRemove, "metadata.name", "required"},
        BadCase{"bad_name", "/metadata/name", "Fashion_MNIST", "metadata.name", "lower-case"},
        BadCase{"long_name", "/metadata/name", std::string(60, 'a'), "metadata.name", "at most 48"},
        BadCase{"meta_typo", "/metadata/label", json::object(), "metadata.label", "unknown field"},
        BadCase{"bad_queue", "/spec/queue", "Team A", "spec.queue", "DNS subdomain"},
        BadCase{"bad_api_version", "/apiVersion", "tandem.dev/v1", "apiVersion", "must be tandem.dev/v1alpha1"},
        BadCase{"spec_is_list", "/spec", json::array(), "spec", "must be an object"},
        BadCase{"bad_phase", "/status", json{{"phase", "Done"}}, "status.phase", "must be one of"},
        BadCase{"bad_time", "/status", json{{"startTime", "yesterday"}}, "status.startTime", "RFC 3339"},
        BadCase{"priority_range", "/spec/priority", 2000000000, "spec.priority", "must be <= 1000000000"},
        BadCase{"bad_storage", "/spec/checkpoint/storage", "S3", "spec.checkpoint.storage", "must be one of"},
        BadCase{"zero_size", "/spec/checkpoint/size", "0", "spec.checkpoint.size", "must be a positive quantity"},
        BadCase{"bad_size", "/spec/checkpoint/size", "10GB", "spec.checkpoint.size", "unknown suffix"},
        BadCase{"bad_class", "/spec/checkpoint/storageClassName", "Fast SSD", "spec.checkpoint.storageClassName",
                "DNS subdomain"},
        BadCase{"claim_with_pvc", "/spec/checkpoint/claimName", "mine", "spec.checkpoint.claimName",
                "only used with storage: ExistingClaim (storage is PersistentVolumeClaim)"},
        BadCase{"existing_without_claim", "/spec/checkpoint", json{{"storage", "ExistingClaim"}},
                "spec.checkpoint.claimName", "required with storage: ExistingClaim"},
        BadCase{"existing_bad_claim", "/spec/checkpoint", json{{"storage", "ExistingClaim"}, {"claimName", "My Claim"}},
                "spec.checkpoint.claimName", "DNS subdomain"},
        BadCase{"existing_with_size", "/spec/checkpoint",
                json{{"storage", "ExistingClaim"}, {"claimName", "c"}, {"size", "1Gi"}}, "spec.checkpoint.size",
                "only used with storage: PersistentVolumeClaim"},
        BadCase{"hostpath_relative", "/spec/checkpoint", json{{"storage", "HostPath"}, {"hostPath", "data/ck"}},
                "spec.checkpoint.hostPath", "absolute path"},
        BadCase{"hostpath_dotdot", "/spec/checkpoint", json{{"storage", "HostPath"}, {"hostPath", "/data/../etc"}},
                "spec.checkpoint.hostPath", "without '..'"},
        BadCase{"hostpath_with_pvc", "/spec/checkpoint/hostPath", "/data", "spec.checkpoint.hostPath",
                "only used with storage: HostPath"},
        BadCase{"publish_no_interval", "/spec/publish", json{{"keep", 2}}, "spec.publish",
                "set everySteps or everyMinutes"},
        BadCase{"publish_negative_steps", "/spec/publish", json{{"everySteps", -1}}, "spec.publish.everySteps",
                "must be >= 0"},
        BadCase{"publish_keep_zero", "/spec/publish", json{{"everySteps", 10}, {"keep", 0}}, "spec.publish.keep",
                "must be >= 1"},
        BadCase{"publish_absolute_dir", "/spec/publish", json{{"everySteps", 10}, {"directory", "/etc"}},
                "spec.publish.directory", "relative to the checkpoint directory"},
        BadCase{"publish_dotdot_dir", "/spec/publish", json{{"everyMinutes", 5}, {"directory", "a/../../x"}},
                "spec.publish.directory", "without '..'"},
        BadCase{"publish_unknown_field", "/spec/publish", json{{"everySteps", 10}, {"every", 3}},
                "spec.publish.every", "unknown field"},
        BadCase{"serving_without_publish", "/spec/serving", json{{"replicas", 2}}, "spec.serving",
                "requires spec.publish"},
        BadCase{"serving_batch_zero", "/spec/serving", json{{"maxBatchSize", 0}}, "spec.serving.maxBatchSize",
                "must be >= 1"},
        BadCase{"serving_request_over_limit", "/spec/serving",
                json{{"resources", {{"requests", {{"cpu", "2"}}}, {"limits", {{"cpu", "1"}}}}}},
                "spec.serving.resources.requests.cpu", "must be <= its limit"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

TEST(TrainingJobTest, CheckpointStorageDefaultsToAnOwnedClaimAndRoundTrips) {
  FieldErrors errors;
  TrainingJob job = ParseTrainingJob(ValidJob(), SectionValidators{}, &errors);
  ASSERT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(job.spec.checkpoint.storage, kStoragePersistentVolumeClaim);
  EXPECT_EQ(job.spec.checkpoint.size, "10Gi");
  for (json ck : {json{{"storage", "ExistingClaim"}, {"claimName", "team-ckpt"}},
                  json{{"storage", "HostPath"}, {"hostPath", "/mnt/ck"}},
                  json{{"storage", "HostPath"}},
                  json{{"size", 53687091200}, {"storageClassName", "nfs-rwx"}}}) {
    json j = ValidJob();
    j["spec"]["checkpoint"] = ck;
    errors.clear();
    TrainingJob parsed = ParseTrainingJob(j, SectionValidators{}, &errors);
    ASSERT_TRUE(errors.empty()) << ck.dump() << "\n" << Dump(errors);
    EXPECT_TRUE(parsed.spec.checkpoint.size.empty() == (parsed.spec.checkpoint.storage != kStoragePersistentVolumeClaim))
        << "a size only for an owned claim: " << ck.dump();
    FieldErrors again;
    TrainingJob round = ParseTrainingJob(ToJson(parsed), SectionValidators{}, &again);
    EXPECT_TRUE(again.empty()) << Dump(again);
    EXPECT_EQ(round.spec.checkpoint, parsed.spec.checkpoint) << ToJson(parsed)["spec"]["checkpoint"].dump();
  }
}

TEST(TrainingJobTest, PublishAndServingDefaultAndRoundTrip) {
  json j = ValidJob();
  j["spec"]["publish"] = {{"everySteps", 200}};
  j["spec"]["serving"] = {{"replicas", 2}};
  FieldErrors errors;
  TrainingJob job = ParseTrainingJob(j, SectionValidators{}, &errors);
  ASSERT_TRUE(errors.empty()) << Dump(errors);
  ASSERT_TRUE(job.spec.publish.has_value());
  EXPECT_EQ(job.spec.publish->every_steps, 200);
  EXPECT_EQ(job.spec.publish->keep, 3);
  EXPECT_EQ(job.spec.publish->directory, "published");
  ASSERT_TRUE(job.spec.serving.has_value());
  EXPECT_EQ(job.spec.serving->replicas, 2);
  EXPECT_EQ(job.spec.serving->image, job.spec.image);
  EXPECT_EQ(job.spec.serving->max_batch_size, 32);
  EXPECT_EQ(job.spec.serving->server.resources.requests.at("cpu").text(), "1");
  FieldErrors again;
  TrainingJob round = ParseTrainingJob(ToJson(job), SectionValidators{}, &again);
  EXPECT_TRUE(again.empty()) << Dump(again);
  EXPECT_EQ(round.spec, job.spec);
  // Absent: neither is set, and neither appears in the JSON.
  errors.clear();
  TrainingJob plain = ParseTrainingJob(ValidJob(), SectionValidators{}, &errors);
  EXPECT_FALSE(plain.spec.publish.has_value());
  EXPECT_FALSE(ToJson(plain)["spec"].contains("serving"));
}

TEST(TrainingJobTest, PublishDirectoryIsASiblingOfEveryProcesssCheckpointDir) {
  PublishSpec p;
  EXPECT_EQ(PublishDirectory("/ck/trainer-0", p), "/ck/published");
  EXPECT_EQ(PublishDirectory("/ck/pserver-3/", p), "/ck/published");
  p.directory = "models/ctr";
  EXPECT_EQ(PublishDirectory("run/checkpoints/trainer-0", p), "run/checkpoints/models/ctr");
  EXPECT_EQ(PublishDirectory("", p), "");
}

TEST(TrainingJobTest, ElasticIsOptionalDefaultedAndRoundTrips) {
  FieldErrors errors;
  EXPECT_FALSE(ParseTrainingJob(ValidJob(), SectionValidators{}, &errors).spec.elastic.has_value());
  json j = ValidJob();
  j["spec"]["workers"] = {{"count", 2}, {"minCount", 1}, {"maxCount", 4}};
  j["spec"]["elastic"] = json::object();
  TrainingJob job = ParseTrainingJob(j, SectionValidators{}, &errors);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  ASSERT_TRUE(job.spec.elastic.has_value());
  EXPECT_EQ(job.spec.elastic->policy, kElasticConstantGlobalBatch);
  EXPECT_EQ(job.spec.elastic->warmup_steps, 100);
  j["spec"]["elastic"] = {{"policy", "linear"}, {"warmupSteps", 20}};
  job = ParseTrainingJob(j, SectionValidators{}, &errors);
  TrainingJob back = ParseTrainingJob(ToJson(job), SectionValidators{}, &errors);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  EXPECT_EQ(back.spec.elastic, job.spec.elastic);
  EXPECT_EQ(back.spec.elastic->policy, "linear");
  // Not with the dense parameters on the pservers; an unknown policy names the field.
  j["spec"]["sync"]["dense"] = "pserver";
  FieldErrors bad = Errors(j);
  EXPECT_NE(Dump(bad).find("spec.elastic: not supported with spec.sync.dense: pserver"),
            std::string::npos) << Dump(bad);
  j["spec"]["sync"]["dense"] = "ring";
  // Embedding tables (on the pservers, resharded at each resize) with the dense part on the ring.
  j["spec"]["model"] = {{"layers", {{{"name", "emb"}, {"type", "embedding"}}}}};
  EXPECT_TRUE(Errors(j).empty()) << Dump(Errors(j));
  EXPECT_TRUE(HasEmbeddingLayers(ParseTrainingJob(j, SectionValidators{}, &errors).spec));
  // ... but not published (elastic shards write no files).
  j["spec"]["publish"] = {{"everySteps", 100}};
  EXPECT_NE(Dump(Errors(j)).find("spec.publish: not supported yet for an elastic job"),
            std::string::npos) << Dump(Errors(j));
  j["spec"].erase("publish");
  j["spec"]["model"] = {{"layers", {{{"name", "fc"}, {"type", "fc"}}}}};
  EXPECT_FALSE(HasEmbeddingLayers(ParseTrainingJob(j, SectionValidators{}, &errors).spec));
  j["spec"]["elastic"]["policy"] = "quadratic";
  EXPECT_NE(Dump(Errors(j)).find("spec.elastic.policy"), std::string::npos) << Dump(Errors(j));
}

TEST(TrainingJobTest, ElasticStatusRoundTrips) {
  FieldErrors errors;
  json j = ValidJob();
  j["spec"]["workers"] = {{"count", 2}, {"minCount", 1}, {"maxCount", 4}};
  j["spec"]["elastic"] = json::object();
  j["status"] = {{"phase", "Running"}, {"placement", {"n1", "n2", "n2"}},
                 {"elastic", {{"workers", 3}, {"epoch", 4}, {"reason", "grown 2 -> 3"}, {"members", {0, 2, 3}},
                              {"resizes", {{{"from", 3}, {"to", 2}, {"reason", "WorkerFailed"}, {"epoch", 3},
                                            {"time", "2026-12-06T10:00:00Z"}, {"message", "worker 1 failed"}},
                                           {{"from", 2}, {"to", 3}, {"reason", "Grow"}, {"epoch", 4},
                                            {"time", "2026-12-06T10:05:00Z"}, {"lostSteps", 0}}}}}}};
  TrainingJob job = ParseTrainingJob(j, SectionValidators{}, &errors);
  EXPECT_TRUE(errors.empty()) << Dump(errors);
  ASSERT_TRUE(job.status.elastic.has_value());
  EXPECT_EQ(job.status.elastic->members, (std::vector<int64_t>{0, 2, 3}));
  ASSERT_EQ(job.status.elastic->resizes.size(), 2u);
  EXPECT_FALSE(job.status.elastic->resizes[0].lost_steps.has_value()) << "unknown stays unknown";
  EXPECT_EQ(job.status.elastic->resizes[1].lost_steps, 0);
  TrainingJob back = ParseTrainingJob(ToJson(job), SectionValidators{}, &errors);
  EXPECT_EQ(back.status, job.status);
  EXPECT_FALSE(StatusToJson(TrainingJobStatus{}).contains("elastic")) << "fixed jobs: no status.elastic";
}

TEST(TrainingJobTest, ReportsEveryProblemNotJustTheFirst) {
  json j = ValidJob();
  j["spec"]["workers"]["count"] = 0;
  j["spec"]["sync"]["dense"] = "x";
  j["spec"]["typo"] = 1;
  j["spec"]["checkpoint"]["keep"] = "three";
  FieldErrors errors = Errors(j);
  EXPECT_GE(errors.size(), 4u) << Dump(errors);
}

TEST(TrainingJobTest, ConsequencesOfAReportedProblemAreNotRepeated) {
  json j = ValidJob();
  j["spec"]["workers"]["count"] = "two";  // minCount 2 > the default count would follow from it
  EXPECT_EQ(Errors(j).size(), 1u) << Dump(Errors(j));
  j = ValidJob();
  j["spec"] = 42;  // no "spec.model: required" on top
  EXPECT_EQ(Errors(j).size(), 1u) << Dump(Errors(j));
}

TEST(TrainingJobTest, NonObjectDocumentsAreErrorsNotCrashes) {
  for (const json& j : {json(nullptr), json(1), json("x"), json::array(), json::object()}) {
    FieldErrors errors = Errors(j);
    EXPECT_FALSE(errors.empty()) << j.dump();
  }
}

TEST(TrainingJobTest, SectionValidatorsJoinIn) {
  SectionValidators validators;
  validators.Add("model", [](const json& model, const json& spec, const std::string& path,
                                       FieldErrors* errors) {
    EXPECT_EQ(spec["workers"]["count"], 2);
    if (model["layers"][0]["size"] == 10) errors->push_back({path + ".layers[0].size", "must be > 10"});
  });
  validators.Add("data", [](const json&, const json&, const std::string&, FieldErrors*) {
    throw std::runtime_error("boom");
  });
  FieldErrors errors;
  ParseTrainingJob(ValidJob(), validators, &errors);
  EXPECT_THAT(errors, ::testing::Contains(FieldError{"spec.model.layers[0].size", "must be > 10"}));
  EXPECT_THAT(errors, ::testing::Contains(FieldError{"spec.data", "validator failed: boom"}));
}

}  // namespace
}  // namespace tandem::api
