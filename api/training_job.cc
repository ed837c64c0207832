#include "api/training_job.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "api/json_get.h"
#include "api/schema.h"
#include "api/section_validator.h"

namespace tandem::api {
namespace {

using json = nlohmann::json;
using namespace internal;  // NOLINT: the JSON getters

RoleSpec ParseRole(const json& j) {
  RoleSpec r;
  const json& res = GetObject(j, "resources");
  r.resources.requests = ParseResourceList(GetObject(res, "requests"));
  r.resources.limits = ParseResourceList(GetObject(res, "limits"));
  GetInt(j, "threads", &r.threads);
  return r;
}

json RoleToJson(const RoleSpec& r) {
  json res = json::object();
  if (!r.resources.requests.empty()) res["requests"] = ResourceListToJson(r.resources.requests);
  if (!r.resources.limits.empty()) res["limits"] = ResourceListToJson(r.resources.limits);
  return {{"resources", res}, {"threads", r.threads}};
}

void DefaultRole(RoleSpec* r, const char* cpu, const char* memory) {
  // As Kubernetes does: a limit without a request makes the request equal to the limit.
  for (const auto& [name, q] : r->resources.limits)
    if (!r->resources.requests.count(name)) r->resources.requests[name] = q;
  if (!r->resources.requests.count(kResourceCpu))
    r->resources.requests[kResourceCpu] = *Quantity::Parse(cpu);
  if (!r->resources.requests.count(kResourceMemory))
    r->resources.requests[kResourceMemory] = *Quantity::Parse(memory);
}

void ValidateRole(const RoleSpec& r, const std::string& path, FieldErrors* errors) {
  const std::string requests = path + ".resources.requests";
  const std::string limits = path + ".resources.limits";
  for (const auto& [name, limit] : r.resources.limits) {
    auto it = r.resources.requests.find(name);
    if (it != r.resources.requests.end() && it->second > limit) {
      errors->push_back({JoinPath(requests, name),
                         absl::StrCat("must be <= its limit ", limit.text(), ", got ", it->second.text())});
    }
  }
  for (const ResourceList* list : {&r.resources.requests, &r.resources.limits}) {
    auto gpu = list->find(kResourceGpu);
    if (gpu != list->end() && !gpu->second.is_whole()) {
      errors->push_back({JoinPath(list == &r.resources.requests ? requests : limits, kResourceGpu),
                         absl::StrCat("must be a whole number of GPUs, got ", gpu->second.text())});
    }
  }
  auto gr = r.resources.requests.find(kResourceGpu);
  auto gl = r.resources.limits.find(kResourceGpu);
  if (gl != r.resources.limits.end() && gr != r.resources.requests.end() && gr->second != gl->second) {
    errors->push_back({JoinPath(limits, kResourceGpu),
                       absl::StrCat("GPUs cannot be overcommitted: the limit must equal the request (",
                                    gr->second.text(), "), got ", gl->second.text())});
  }
  if (auto cpu = r.resources.requests.find(kResourceCpu);
      cpu != r.resources.requests.end() && cpu->second.milli() <= 0) {
    errors->push_back({JoinPath(requests, kResourceCpu),
                       absl::StrCat("must be > 0, got ", cpu->second.text())});
  }
  if (auto mem = r.resources.requests.find(kResourceMemory);
      mem != r.resources.requests.end() && mem->second.value() < (16 << 20)) {
    errors->push_back({JoinPath(requests, kResourceMemory),
                       absl::StrCat("must be at least 16Mi, got ", mem->second.text(),
                                    " (memory is in bytes: did you mean ", mem->second.text(), "Mi?)")});
  }
}

// A cross-field problem that merely follows from one already reported (the field itself, a
// parent that had the wrong type, or the field it is compared with) is not worth a line.
bool FollowsFromReported(const std::string& path, const std::set<std::string>& reported) {
  static const std::map<std::string, std::vector<std::string>> kComparedWith = {
      {"spec.workers.minCount", {"spec.workers.count"}},
      {"spec.workers.maxCount", {"spec.workers.count"}},
      {"spec.sync.mode", {"spec.sync.dense"}},
  };
  for (const std::string& r : reported) {
    if (path == r) return true;
    if (path.size() > r.size() && path.compare(0, r.size(), r) == 0 && (path[r.size()] == '.' || path[r.size()] == '['))
      return true;
    if (r.empty()) return true;  // the whole document is malformed
  }
  if (auto it = kComparedWith.find(path); it != kComparedWith.end())
    for (const std::string& other : it->second)
      if (reported.count(other)) return true;
  return false;
}

// Only the fields of the chosen storage are written, so the JSON validates again.
json CheckpointToJson(const CheckpointSpec& c) {
  json j = {{"intervalSteps", c.interval_steps}, {"keep", c.keep}, {"storage", c.storage}};
  auto put = [&](const char* key, const std::string& v) {
    if (!v.empty()) j[key] = v;
  };
  put("size", c.size);
  put("storageClassName", c.storage_class_name);
  put("claimName", c.claim_name);
  put("hostPath", c.host_path);
  return j;
}

void ValidateCheckpoint(const CheckpointSpec& c, FieldErrors* errors) {
  const std::string base = "spec.checkpoint";
  // A field of another storage kind is a mistake worth naming, not something to ignore.
  auto only_for = [&](const char* field, const std::string& value, const char* kind) {
    if (!value.empty() && c.storage != kind)
      errors->push_back({absl::StrCat(base, ".", field),
                         absl::StrCat("only used with storage: ", kind, " (storage is ", c.storage, ")")});
  };
  only_for("size", c.size, kStoragePersistentVolumeClaim);
  only_for("storageClassName", c.storage_class_name, kStoragePersistentVolumeClaim);
  only_for("claimName", c.claim_name, kStorageExistingClaim);
  only_for("hostPath", c.host_path, kStorageHostPath);
  if (c.storage == kStoragePersistentVolumeClaim) {
    auto q = Quantity::Parse(c.size);
    if (!q.ok() || q->milli() <= 0)
      errors->push_back({base + ".size", absl::StrCat("must be a positive quantity such as 10Gi, got \"", c.size, "\"")});
    if (!c.storage_class_name.empty()) {
      if (std::string e = CheckDns1123Subdomain(c.storage_class_name); !e.empty())
        errors->push_back({base + ".storageClassName", e});
    }
  } else if (c.storage == kStorageExistingClaim) {
    if (c.claim_name.empty()) {
      errors->push_back({base + ".claimName", "required with storage: ExistingClaim"});
    } else if (std::string e = CheckDns1123Subdomain(c.claim_name); !e.empty()) {
      errors->push_back({base + ".claimName", e});
    }
  } else if (c.storage == kStorageHostPath && !c.host_path.empty()) {
    if (c.host_path[0] != '/' || c.host_path.find("/../") != std::string::npos ||
        absl::EndsWith(c.host_path, "/..") || c.host_path.find('\0') != std::string::npos)
      errors->push_back({base + ".hostPath", absl::StrCat("must be an absolute path without '..', got \"", c.host_path, "\"")});
  }
}

void ValidatePublishing(const TrainingJobSpec& s, FieldErrors* errors) {
  if (s.publish.has_value()) {
    const PublishSpec& p = *s.publish;
    if (p.every_steps <= 0 && p.every_minutes <= 0)
      errors->push_back({"spec.publish", "set everySteps or everyMinutes (or both) to a value > 0"});
    const std::string& d = p.directory;
    if (d.empty() || d[0] == '/' || d == ".." || absl::StartsWith(d, "../") ||
        absl::StrContains(d, "/../") || absl::EndsWith(d, "/..") || d.find('\0') != std::string::npos)
      errors->push_back({"spec.publish.directory",
                         absl::StrCat("must be a path relative to the checkpoint directory, without '..', got \"", d, "\"")});
  }
  if (s.serving.has_value()) {
    if (!s.publish.has_value())
      errors->push_back({"spec.serving", "requires spec.publish: tandem-serve serves the published models"});
    ValidateRole(s.serving->server, "spec.serving", errors);
  }
}

json PublishToJson(const PublishSpec& p) {
  return {{"everySteps", p.every_steps}, {"everyMinutes", p.every_minutes}, {"keep", p.keep},
          {"directory", p.directory}};
}

json ServingToJson(const ServingSpec& v) {
  json j = RoleToJson(v.server);
  j["replicas"] = v.replicas;
  j["maxBatchSize"] = v.max_batch_size;
  j["maxQueueDelayMicros"] = v.max_queue_delay_micros;
  if (!v.image.empty()) j["image"] = v.image;
  return j;
}

std::string FormatPercent(double p) { return absl::StrFormat("%.0f%%", p); }

}  // namespace

void ApplyDefaults(TrainingJob* job) {
  if (job->api_version.empty()) job->api_version = kApiVersion;
  if (job->kind.empty()) job->kind = kTrainingJobKind;
  if (job->metadata.namespace_.empty()) job->metadata.namespace_ = "default";
  TrainingJobSpec& s = job->spec;
  if (s.queue.empty()) s.queue = kDefaultQueue;
  if (s.image.empty()) s.image = kDefaultImage;
  if (s.workers.min_count == 0) s.workers.min_count = s.workers.count;
  if (s.workers.max_count == 0) s.workers.max_count = std::max(s.workers.count, s.workers.min_count);
  DefaultRole(&s.trainer, "1", "2Gi");
  DefaultRole(&s.pserver, "500m", "1Gi");
  if (s.checkpoint.storage.empty()) s.checkpoint.storage = kStoragePersistentVolumeClaim;
  if (s.checkpoint.storage == kStoragePersistentVolumeClaim && s.checkpoint.size.empty())
    s.checkpoint.size = kDefaultCheckpointSize;
  if (s.serving.has_value()) {
    if (s.serving->image.empty()) s.serving->image = s.image;
    DefaultRole(&s.serving->server, "1", "1Gi");
  }
  if (s.model.is_null()) s.model = json::object();
  if (s.data.is_null()) s.data = json::object();
  if (s.optimizer.is_null()) s.optimizer = json::object();
}

TrainingJob ParseTrainingJob(const json& object, const SectionValidators& validators,
                             FieldErrors* errors) {
  TrainingJob job;
  if (!object.is_object()) {
    errors->push_back({"", absl::StrCat("a TrainingJob must be an object, got ", DescribeValue(object))});
    ApplyDefaults(&job);
    return job;
  }
  const size_t first_error = errors->size();
  // The metadata is checked by ParseObjectMeta (its fields are Kubernetes', not ours).
  json without_meta = object;
  without_meta.erase("metadata");
  CheckAgainstSchema(without_meta, TrainingJobSchema(), "", errors);
  GetString(object, "apiVersion", &job.api_version);
  GetString(object, "kind", &job.kind);
  if (!object.contains("apiVersion")) errors->push_back({"apiVersion", absl::StrCat("required: ", kApiVersion)});
  if (!object.contains("kind")) errors->push_back({"kind", "required: TrainingJob"});
  job.metadata = ParseObjectMeta(object.contains("metadata") ? object["metadata"] : json(), "metadata", errors);

  const json& s = GetObject(object, "spec");
  if (!object.contains("spec") || object["spec"].is_null()) errors->push_back({"spec", "required"});
  TrainingJobSpec& spec = job.spec;
  GetString(s, "queue", &spec.queue);
  GetInt(s, "priority", &spec.priority);
  GetBool(s, "suspend", &spec.suspend);
  if (int64_t ttl; GetInt(s, "ttlSecondsAfterFinished", &ttl)) spec.ttl_seconds_after_finished = ttl;
  GetString(s, "image", &spec.image);
  const json& w = GetObject(s, "workers");
  GetInt(w, "count", &spec.workers.count);
  GetInt(w, "minCount", &spec.workers.min_count);
  GetInt(w, "maxCount", &spec.workers.max_count);
  spec.trainer = ParseRole(GetObject(s, "trainer"));
  spec.pserver = ParseRole(GetObject(s, "pserver"));
  for (const auto& [k, v] : GetObject(s, "nodeSelector").items())
    if (v.is_string()) spec.node_selector[k] = v.get<std::string>();
  GetInt(s, "passes", &spec.passes);
  for (auto [key, field] : {std::pair{"model", &spec.model}, std::pair{"data", &spec.data},
                            std::pair{"optimizer", &spec.optimizer}}) {
    if (const json* v = Get(s, key); v && v->is_object()) *field = *v;
  }
  const json& sync = GetObject(s, "sync");
  GetString(sync, "dense", &spec.sync.dense);
  GetString(sync, "mode", &spec.sync.mode);
  GetInt(sync, "staleness", &spec.sync.staleness);
  GetInt(sync, "bucketMiB", &spec.sync.bucket_mib);
  GetString(sync, "compression", &spec.sync.compression);
  if (const json* el = Get(s, "elastic"); el && el->is_object()) {
    ElasticSpec e;
    GetString(*el, "policy", &e.policy);
    GetInt(*el, "warmupSteps", &e.warmup_steps);
    spec.elastic = e;
  }
  const json& ck = GetObject(s, "checkpoint");
  GetInt(ck, "intervalSteps", &spec.checkpoint.interval_steps);
  GetInt(ck, "keep", &spec.checkpoint.keep);
  GetString(ck, "storage", &spec.checkpoint.storage);
  if (const json* size = Get(ck, "size"); size && size->is_string()) spec.checkpoint.size = size->get<std::string>();
  else if (size && size->is_number_integer()) spec.checkpoint.size = std::to_string(size->get<int64_t>());
  GetString(ck, "storageClassName", &spec.checkpoint.storage_class_name);
  GetString(ck, "claimName", &spec.checkpoint.claim_name);
  GetString(ck, "hostPath", &spec.checkpoint.host_path);
  if (const json* p = Get(s, "publish"); p && p->is_object()) {
    PublishSpec& pub = spec.publish.emplace();
    GetInt(*p, "everySteps", &pub.every_steps);
    GetInt(*p, "everyMinutes", &pub.every_minutes);
    GetInt(*p, "keep", &pub.keep);
    GetString(*p, "directory", &pub.directory);
  }
  if (const json* v = Get(s, "serving"); v && v->is_object()) {
    ServingSpec& sv = spec.serving.emplace();
    sv.server = ParseRole(*v);
    GetInt(*v, "replicas", &sv.replicas);
    GetString(*v, "image", &sv.image);
    GetInt(*v, "maxBatchSize", &sv.max_batch_size);
    GetInt(*v, "maxQueueDelayMicros", &sv.max_queue_delay_micros);
  }
  const json& rp = GetObject(s, "restartPolicy");
  GetInt(rp, "backoffLimit", &spec.restart_policy.backoff_limit);
  GetInt(rp, "backoffSeconds", &spec.restart_policy.backoff_seconds);
  if (const json* codes = Get(rp, "retryableExitCodes"); codes && codes->is_array()) {
    spec.restart_policy.retryable_exit_codes.clear();
    for (const json& c : *codes)
      if (c.is_number_integer()) spec.restart_policy.retryable_exit_codes.push_back(c.get<int64_t>());
  }

  const json& st = GetObject(object, "status");
  TrainingJobStatus& status = job.status;
  GetString(st, "phase", &status.phase);
  status.conditions = ParseConditions(st.contains("conditions") ? st["conditions"] : json());
  const json& wc = GetObject(st, "workers");
  GetInt(wc, "desired", &status.workers.desired);
  GetInt(wc, "ready", &status.workers.ready);
  GetInt(wc, "running", &status.workers.running);
  GetInt(wc, "succeeded", &status.workers.succeeded);
  GetInt(wc, "failed", &status.workers.failed);
  GetInt(st, "restarts", &status.restarts);
  GetString(st, "startTime", &status.start_time);
  GetString(st, "completionTime", &status.completion_time);
  if (const json* p = Get(st, "progress"); p && p->is_object()) {
    Progress pr;
    GetInt(*p, "step", &pr.step);
    GetInt(*p, "pass", &pr.pass);
    GetDouble(*p, "loss", &pr.loss);
    GetDouble(*p, "accuracy", &pr.accuracy);
    GetDouble(*p, "examplesPerSec", &pr.examples_per_sec);
    GetDouble(*p, "percent", &pr.percent);
    GetString(*p, "summary", &pr.summary);
    GetString(*p, "updateTime", &pr.update_time);
    GetInt(*p, "testPass", &pr.test_pass);
    GetDouble(*p, "testLoss", &pr.test_loss);
    GetDouble(*p, "testAccuracy", &pr.test_accuracy);
    if (const json* auc = Get(*p, "testAuc"); auc && auc->is_number()) pr.test_auc = auc->get<double>();
    status.progress = pr;
  }
  GetString(st, "pendingReason", &status.pending_reason);
  if (const json* pl = Get(st, "placement"); pl && pl->is_array())
    for (const json& n : *pl)
      if (n.is_string()) status.placement.push_back(n.get<std::string>());
  GetInt(st, "observedGeneration", &status.observed_generation);
  if (const json* el = Get(st, "elastic"); el && el->is_object()) {
    ElasticStatus e;
    GetInt(*el, "workers", &e.workers);
    GetInt(*el, "epoch", &e.epoch);
    GetString(*el, "reason", &e.reason);
    if (const json* m = Get(*el, "members"); m && m->is_array())
      for (const json& v : *m)
        if (v.is_number_integer()) e.members.push_back(v.get<int64_t>());
    if (const json* rs = Get(*el, "resizes"); rs && rs->is_array()) {
      for (const json& r : *rs) {
        if (!r.is_object()) continue;
        ResizeRecord rec;
        GetInt(r, "from", &rec.from);
        GetInt(r, "to", &rec.to);
        GetString(r, "reason", &rec.reason);
        GetString(r, "message", &rec.message);
        GetString(r, "time", &rec.time);
        GetInt(r, "epoch", &rec.epoch);
        if (const json* l = Get(r, "lostSteps"); l && l->is_number_integer()) rec.lost_steps = l->get<int64_t>();
        e.resizes.push_back(std::move(rec));
      }
    }
    status.elastic = std::move(e);
  }

  ApplyDefaults(&job);
  // Cross-field rules only make sense on values that passed the schema; skip the ones whose
  // own field is already reported, to keep one problem per line.
  std::set<std::string> reported;
  for (size_t i = first_error; i < errors->size(); ++i) reported.insert((*errors)[i].path);
  for (FieldError& e : ValidateTrainingJob(job))
    if (!FollowsFromReported(e.path, reported)) errors->push_back(std::move(e));

  // The trainer's own validation of its sections.
  const json spec_json = SpecToJson(job.spec);
  for (const char* section : {"model", "data", "optimizer"}) {
    if (const json* v = Get(s, section); v && v->is_object())
      validators.Run(section, *v, spec_json, absl::StrCat("spec.", section), errors);
  }
  return job;
}

absl::StatusOr<TrainingJob> TrainingJobFromJson(const json& object,
                                                const SectionValidators& validators) {
  FieldErrors errors;
  TrainingJob job = ParseTrainingJob(object, validators, &errors);
  if (errors.empty()) return job;
  std::vector<std::string> lines;
  for (const FieldError& e : errors) lines.push_back(e.ToString());
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

FieldErrors ValidateTrainingJob(const TrainingJob& job) {
  FieldErrors errors;
  if (job.api_version != kApiVersion)
    errors.push_back({"apiVersion", absl::StrCat("must be ", kApiVersion, ", got \"", job.api_version, "\"")});
  if (job.kind != kTrainingJobKind)
    errors.push_back({"kind", absl::StrCat("must be TrainingJob, got \"", job.kind, "\"")});
  if (job.metadata.name.empty()) {
    errors.push_back({"metadata.name", "required"});
  } else if (std::string e = CheckDns1035Label(job.metadata.name, kMaxJobNameLength); !e.empty()) {
    errors.push_back({"metadata.name", e + " (pod names are <name>-worker-<rank>)"});
  }
  if (std::string e = CheckDns1123Label(job.metadata.namespace_); !e.empty())
    errors.push_back({"metadata.namespace", e});

  const TrainingJobSpec& s = job.spec;
  if (std::string e = CheckDns1123Subdomain(s.queue); !e.empty()) errors.push_back({"spec.queue", e});
  if (s.image.empty() || s.image.find_first_of(" \t\r\n") != std::string::npos)
    errors.push_back({"spec.image", absl::StrCat("must be a container image reference, got \"", s.image, "\"")});
  if (s.workers.count < 1)
    errors.push_back({"spec.workers.count", absl::StrCat("must be >= 1, got ", s.workers.count)});
  if (s.workers.min_count > s.workers.count)
    errors.push_back({"spec.workers.minCount", absl::StrCat("must be <= spec.workers.count (", s.workers.count,
                                                            "), got ", s.workers.min_count)});
  if (s.workers.max_count < s.workers.count)
    errors.push_back({"spec.workers.maxCount", absl::StrCat("must be >= spec.workers.count (", s.workers.count,
                                                            "), got ", s.workers.max_count)});
  ValidateRole(s.trainer, "spec.trainer", &errors);
  ValidateRole(s.pserver, "spec.pserver", &errors);
  if (auto g = s.pserver.resources.requests.find(kResourceGpu);
      g != s.pserver.resources.requests.end() && g->second.milli() > 0) {
    errors.push_back({"spec.pserver.resources.requests[nvidia.com/gpu]",
                      absl::StrCat("the pserver runs on CPU: must be 0, got ", g->second.text())});
  }
  for (const auto& [k, v] : s.node_selector) {
    if (k.empty() || k.size() > 316) errors.push_back({JoinPath("spec.nodeSelector", k), "invalid label key"});
    if (v.size() > 63) errors.push_back({JoinPath("spec.nodeSelector", k), "label values are at most 63 characters"});
  }
  if (s.model.empty()) errors.push_back({"spec.model", "required: the network to train (inputs, layers, cost)"});
  if (s.sync.mode == "async" && s.sync.dense == "ring")
    errors.push_back({"spec.sync.mode",
                      "async requires spec.sync.dense: pserver (ring all-reduce is synchronous)"});
  if (s.elastic.has_value() && s.sync.dense == "pserver")
    errors.push_back({"spec.elastic",
                      "not supported with spec.sync.dense: pserver yet: an elastic job keeps its "
                      "dense parameters on the ring (spec.sync.dense: ring); its embedding tables "
                      "do live on the pservers and move when it resizes (docs/elastic.md)"});
  if (s.elastic.has_value() && s.publish.has_value() && HasEmbeddingLayers(s))
    errors.push_back({"spec.publish",
                      "not supported yet for an elastic job with embedding tables: its pserver "
                      "shards write no files (docs/elastic.md)"});
  ValidateCheckpoint(s.checkpoint, &errors);
  ValidatePublishing(s, &errors);
  std::set<int64_t> seen;
  for (size_t i = 0; i < s.restart_policy.retryable_exit_codes.size(); ++i) {
    int64_t c = s.restart_policy.retryable_exit_codes[i];
    if (c == 0)
      errors.push_back({IndexPath("spec.restartPolicy.retryableExitCodes", i), "0 is success, not a failure"});
    if (!seen.insert(c).second)
      errors.push_back({IndexPath("spec.restartPolicy.retryableExitCodes", i), absl::StrCat("duplicate exit code ", c)});
  }
  return errors;
}

json SpecToJson(const TrainingJobSpec& s) {
  json j = {
      {"queue", s.queue},
      {"priority", s.priority},
      {"suspend", s.suspend},
      {"image", s.image},
      {"workers", {{"count", s.workers.count}, {"minCount", s.workers.min_count}, {"maxCount", s.workers.max_count}}},
      {"trainer", RoleToJson(s.trainer)},
      {"pserver", RoleToJson(s.pserver)},
      {"passes", s.passes},
      {"model", s.model},
      {"data", s.data},
      {"optimizer", s.optimizer},
      {"sync", {{"dense", s.sync.dense}, {"mode", s.sync.mode}, {"staleness", s.sync.staleness},
                {"bucketMiB", s.sync.bucket_mib}, {"compression", s.sync.compression}}},
      {"checkpoint", CheckpointToJson(s.checkpoint)},
      {"restartPolicy", {{"backoffLimit", s.restart_policy.backoff_limit},
                         {"backoffSeconds", s.restart_policy.backoff_seconds},
                         {"retryableExitCodes", s.restart_policy.retryable_exit_codes}}},
  };
  if (s.ttl_seconds_after_finished) j["ttlSecondsAfterFinished"] = *s.ttl_seconds_after_finished;
  if (s.elastic)
    j["elastic"] = {{"policy", s.elastic->policy}, {"warmupSteps", s.elastic->warmup_steps}};
  if (!s.node_selector.empty()) j["nodeSelector"] = s.node_selector;
  if (s.publish.has_value()) j["publish"] = PublishToJson(*s.publish);
  if (s.serving.has_value()) j["serving"] = ServingToJson(*s.serving);
  return j;
}

json StatusToJson(const TrainingJobStatus& st) {
  json j = json::object();
  if (!st.phase.empty()) j["phase"] = st.phase;
  if (!st.conditions.empty()) j["conditions"] = ConditionsToJson(st.conditions);
  if (st.workers != WorkerCounts{})
    j["workers"] = {{"desired", st.workers.desired}, {"ready", st.workers.ready}, {"running", st.workers.running},
                    {"succeeded", st.workers.succeeded}, {"failed", st.workers.failed}};
  if (st.restarts) j["restarts"] = st.restarts;
  if (!st.start_time.empty()) j["startTime"] = st.start_time;
  if (!st.completion_time.empty()) j["completionTime"] = st.completion_time;
  if (st.progress) {
    const Progress& p = *st.progress;
    json pj = {{"step", p.step}, {"pass", p.pass}, {"loss", p.loss}, {"accuracy", p.accuracy},
               {"examplesPerSec", p.examples_per_sec}, {"percent", p.percent}};
    if (!p.summary.empty()) pj["summary"] = p.summary;
    if (!p.update_time.empty()) pj["updateTime"] = p.update_time;
    if (p.test_pass > 0) {
      pj["testPass"] = p.test_pass;
      pj["testLoss"] = p.test_loss;
      pj["testAccuracy"] = p.test_accuracy;
      if (p.test_auc) pj["testAuc"] = *p.test_auc;
    }
    j["progress"] = pj;
  }
  if (!st.pending_reason.empty()) j["pendingReason"] = st.pending_reason;
  if (!st.placement.empty()) j["placement"] = st.placement;
  if (st.observed_generation) j["observedGeneration"] = st.observed_generation;
  if (st.elastic) {
    const ElasticStatus& e = *st.elastic;
    json rs = json::array();
    for (const ResizeRecord& r : e.resizes) {
      json rj = {{"from", r.from}, {"to", r.to}, {"reason", r.reason}, {"epoch", r.epoch}};
      if (!r.message.empty()) rj["message"] = r.message;
      if (!r.time.empty()) rj["time"] = r.time;
      if (r.lost_steps) rj["lostSteps"] = *r.lost_steps;
      rs.push_back(std::move(rj));
    }
    j["elastic"] = {{"workers", e.workers}, {"epoch", e.epoch}, {"members", e.members}, {"resizes", rs}};
    if (!e.reason.empty()) j["elastic"]["reason"] = e.reason;
  }
  return j;
}

json ToJson(const TrainingJob& job) {
  json j = {{"apiVersion", job.api_version}, {"kind", job.kind},
            {"metadata", ObjectMetaToJson(job.metadata)}, {"spec", SpecToJson(job.spec)}};
  json st = StatusToJson(job.status);
  if (!st.empty()) j["status"] = std::move(st);
  return j;
}

std::string PublishDirectory(const std::string& process_checkpoint_dir, const PublishSpec& publish) {
  if (process_checkpoint_dir.empty()) return "";
  std::string dir = process_checkpoint_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
  return absl::StrCat(parent, parent == "/" ? "" : "/", publish.directory);
}

int64_t EffectiveThreads(const RoleSpec& role) {
  if (role.threads > 0) return role.threads;
  auto cpu = role.resources.requests.find(kResourceCpu);
  return std::max<int64_t>(1, cpu == role.resources.requests.end() ? 1 : cpu->second.value());
}

ResourceList WorkerRequests(const TrainingJobSpec& spec) {
  ResourceList total;
  std::vector<const RoleSpec*> roles = {&spec.trainer};
  if (UsesPServers(spec)) roles.push_back(&spec.pserver);
  for (const RoleSpec* r : roles) {
    for (const auto& [name, q] : r->resources.requests) {
      int64_t sum = total.count(name) ? total[name].milli() : 0;
      total[name] = Quantity::FromMilli(sum + q.milli());
    }
  }
  return total;
}

std::string ProgressSummary(const TrainingJob& job) {
  if (!job.status.progress) return "";
  const Progress& p = *job.status.progress;
  return absl::StrCat("pass ", p.pass, "/", job.spec.passes, " ", FormatPercent(p.percent));
}

bool HasEmbeddingLayers(const TrainingJobSpec& spec) {
  const nlohmann::json* layers =
      spec.model.is_object() && spec.model.contains("layers") ? &spec.model["layers"] : nullptr;
  if (layers == nullptr || !layers->is_array()) return false;
  for (const nlohmann::json& l : *layers)
    if (l.is_object() && l.value("type", "") == "embedding") return true;
  return false;
}

bool UsesPServers(const TrainingJobSpec& spec) {
  return HasEmbeddingLayers(spec) || spec.sync.dense == "pserver";
}

}  // namespace tandem::api
