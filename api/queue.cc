#include "api/queue.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/json_get.h"
#include "api/schema.h"

namespace tandem::api {
namespace {
using json = nlohmann::json;
using namespace internal;  // NOLINT: the JSON getters
}  // namespace

bool Queue::Serves(const std::string& ns) const {
  return spec.namespaces.empty() ||
         std::find(spec.namespaces.begin(), spec.namespaces.end(), ns) != spec.namespaces.end();
}

Queue ParseQueue(const json& object, FieldErrors* errors) {
  Queue q;
  if (!object.is_object()) {
    errors->push_back({"", absl::StrCat("a Queue must be an object, got ", DescribeValue(object))});
    return q;
  }
  const size_t first_error = errors->size();
  json without_meta = object;
  without_meta.erase("metadata");
  CheckAgainstSchema(without_meta, QueueSchema(), "", errors);
  GetString(object, "apiVersion", &q.api_version);
  GetString(object, "kind", &q.kind);
  q.metadata = ParseObjectMeta(object.contains("metadata") ? object["metadata"] : json(), "metadata", errors);
  const json& s = GetObject(object, "spec");
  GetInt(s, "weight", &q.spec.weight);
  q.spec.guaranteed = ParseResourceList(GetObject(s, "guaranteed"));
  if (const json* b = Get(s, "borrowingLimit"); b && b->is_object()) q.spec.borrowing_limit = ParseResourceList(*b);
  if (const json* ns = Get(s, "namespaces"); ns && ns->is_array())
    for (const json& n : *ns)
      if (n.is_string()) q.spec.namespaces.push_back(n.get<std::string>());
  const json& p = GetObject(s, "preemption");
  GetBool(p, "reclaimBorrowed", &q.spec.preemption.reclaim_borrowed);
  GetString(p, "withinQueue", &q.spec.preemption.within_queue);

  const json& st = GetObject(object, "status");
  GetInt(st, "admittedJobs", &q.status.admitted_jobs);
  GetInt(st, "pendingJobs", &q.status.pending_jobs);
  q.status.usage = ParseResourceList(GetObject(st, "usage"));
  q.status.borrowed = ParseResourceList(GetObject(st, "borrowed"));
  GetDouble(st, "weightedShare", &q.status.weighted_share);
  if (auto w = st.find("waiting"); w != st.end() && w->is_object()) {
    GetString(*w, "updateTime", &q.status.waiting_time);
    if (auto js = w->find("jobs"); js != w->end() && js->is_array()) {
      for (const json& e : *js) {
        if (!e.is_object()) continue;
        WaitingJob job;
        GetString(e, "namespace", &job.ns);
        GetString(e, "name", &job.name);
        GetInt(e, "position", &job.position);
        GetString(e, "reason", &job.reason);
        GetString(e, "detail", &job.detail);
        q.status.waiting.push_back(std::move(job));
      }
    }
  }
  q.status.conditions = ParseConditions(st.contains("conditions") ? st["conditions"] : json());

  std::set<std::string> reported;
  for (size_t i = first_error; i < errors->size(); ++i) reported.insert((*errors)[i].path);
  for (FieldError& e : ValidateQueue(q))
    if (!reported.count(e.path)) errors->push_back(std::move(e));
  return q;
}

absl::StatusOr<Queue> QueueFromJson(const json& object) {
  FieldErrors errors;
  Queue q = ParseQueue(object, &errors);
  if (errors.empty()) return q;
  std::vector<std::string> lines;
  for (const FieldError& e : errors) lines.push_back(e.ToString());
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

FieldErrors ValidateQueue(const Queue& q) {
  FieldErrors errors;
  if (q.api_version != kApiVersion)
    errors.push_back({"apiVersion", absl::StrCat("must be ", kApiVersion, ", got \"", q.api_version, "\"")});
  if (q.kind != kQueueKind) errors.push_back({"kind", absl::StrCat("must be Queue, got \"", q.kind, "\"")});
  if (q.metadata.name.empty()) {
    errors.push_back({"metadata.name", "required"});
  } else if (std::string e = CheckDns1123Subdomain(q.metadata.name); !e.empty()) {
    errors.push_back({"metadata.name", e});
  }
  if (!q.metadata.namespace_.empty())
    errors.push_back({"metadata.namespace", "Queues are cluster-scoped: remove the namespace"});
  if (q.spec.weight < 1) errors.push_back({"spec.weight", absl::StrCat("must be >= 1, got ", q.spec.weight)});
  for (const auto& [path, list] : {std::pair<std::string, const ResourceList*>{"spec.guaranteed", &q.spec.guaranteed},
                                   {"spec.borrowingLimit", q.spec.borrowing_limit ? &*q.spec.borrowing_limit : nullptr}}) {
    if (!list) continue;
    if (auto g = list->find(kResourceGpu); g != list->end() && !g->second.is_whole())
      errors.push_back({JoinPath(path, kResourceGpu), absl::StrCat("must be a whole number of GPUs, got ", g->second.text())});
  }
  // Every job uses cpu and memory: a guarantee that names only GPUs could never hold a job.
  if (!q.spec.guaranteed.empty()) {
    std::vector<std::string> missing;
    for (const char* r : {kResourceCpu, kResourceMemory, kResourceGpu})
      if (!q.spec.guaranteed.count(r)) missing.push_back(r);
    if (!missing.empty())
      errors.push_back({"spec.guaranteed", absl::StrCat("must list cpu, memory and nvidia.com/gpu (0 is fine); missing ",
                                                        absl::StrJoin(missing, ", "),
                                                        ": jobs need all three, so none would fit within the guarantee")});
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < q.spec.namespaces.size(); ++i) {
    const std::string& ns = q.spec.namespaces[i];
    if (std::string e = CheckDns1123Label(ns); !e.empty()) errors.push_back({IndexPath("spec.namespaces", i), e});
    else if (!seen.insert(ns).second)
      errors.push_back({IndexPath("spec.namespaces", i), absl::StrCat("duplicate namespace \"", ns, "\"")});
  }
  return errors;
}

json ToJson(const Queue& q) {
  json spec = {{"weight", q.spec.weight},
               {"namespaces", q.spec.namespaces},
               {"preemption", {{"reclaimBorrowed", q.spec.preemption.reclaim_borrowed},
                               {"withinQueue", q.spec.preemption.within_queue}}}};
  // No guarantee is no `guaranteed`: the CRD requires cpu, memory and nvidia.com/gpu together.
  if (!q.spec.guaranteed.empty()) spec["guaranteed"] = ResourceListToJson(q.spec.guaranteed);
  if (q.spec.borrowing_limit) spec["borrowingLimit"] = ResourceListToJson(*q.spec.borrowing_limit);
  json j = {{"apiVersion", q.api_version}, {"kind", q.kind}, {"metadata", ObjectMetaToJson(q.metadata)},
            {"spec", spec}};
  if (q.status != QueueStatus{}) {
    json st = {{"admittedJobs", q.status.admitted_jobs}, {"pendingJobs", q.status.pending_jobs},
               {"usage", ResourceListToJson(q.status.usage)}, {"borrowed", ResourceListToJson(q.status.borrowed)},
               {"weightedShare", q.status.weighted_share}};
    if (!q.status.conditions.empty()) st["conditions"] = ConditionsToJson(q.status.conditions);
    if (!q.status.waiting.empty() || !q.status.waiting_time.empty()) {
      json jobs = json::array();
      for (const WaitingJob& w : q.status.waiting) {
        json e = {{"namespace", w.ns}, {"name", w.name}, {"position", w.position}, {"reason", w.reason}};
        if (!w.detail.empty()) e["detail"] = w.detail;
        jobs.push_back(std::move(e));
      }
      st["waiting"] = {{"jobs", std::move(jobs)}};
      if (!q.status.waiting_time.empty()) st["waiting"]["updateTime"] = q.status.waiting_time;
    }
    j["status"] = st;
  }
  return j;
}

}  // namespace tandem::api
