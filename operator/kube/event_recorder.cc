#include "operator/kube/event_recorder.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"

namespace tandem::kube {

EventRecorder::EventRecorder(KubeApi* api, std::string component, std::string host, RequestPool* pool)
    : api_(api), pool_(pool), component_(std::move(component)), host_(std::move(host)) {}

void EventRecorder::Record(const nlohmann::json& object, const std::string& type,
                           const std::string& reason, const std::string& message) {
  if (pool_ != nullptr) {
    // Only what the Event needs of the object, not a copy of all of it.
    nlohmann::json involved = {{"apiVersion", object.value("apiVersion", "")},
                               {"kind", object.value("kind", "")},
                               {"metadata",
                                {{"namespace", NamespaceOf(object)},
                                 {"name", NameOf(object)},
                                 {"uid", UidOf(object)},
                                 {"resourceVersion", ResourceVersionOf(object)}}}};
    if (pool_->Submit([this, involved = std::move(involved), type, reason, message] {
          Send(involved, type, reason, message);
        })) {
      return;
    }
  }
  Send(object, type, reason, message);
}

void EventRecorder::Send(const nlohmann::json& object, const std::string& type,
                         const std::string& reason, const std::string& message) {
  std::string ns = NamespaceOf(object);
  if (ns.empty()) ns = "default";  // events about cluster-scoped objects live in default
  std::string now = NowRfc3339();
  std::string correlation = absl::StrCat(UidOf(object), "\x1f", type, "\x1f", reason, "\x1f", message);
  Seen seen;
  std::string name;
  uint64_t seq = 0;
  {
    absl::MutexLock lock(&mu_);
    seq = seq_;
    auto it = seen_.find(correlation);
    if (it != seen_.end()) {
      it->second.count++;
      seen = it->second;
    } else {
      auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
      name = absl::StrFormat("%s.%x", NameOf(object), static_cast<uint64_t>(nanos) + seq_++);
      if (seen_.size() > 4096) seen_.clear();  // bounded memory; a reset only costs a new Event
      seen_[correlation] = {name, 1};
    }
  }
  if (seen.count > 1) {
    nlohmann::json patch = {{"count", seen.count}, {"lastTimestamp", now}};
    auto s = api_->Patch(kEvents, ns, seen.name, PatchType::kMerge, patch);
    if (s.ok()) return;
    name = absl::StrFormat("%s.%x", NameOf(object), seq);  // the old Event is gone: start over
  }
  nlohmann::json event = {
      {"metadata", {{"name", name}, {"namespace", ns}}},
      {"involvedObject",
       {{"apiVersion", object.value("apiVersion", "")},
        {"kind", object.value("kind", "")},
        {"namespace", NamespaceOf(object)},
        {"name", NameOf(object)},
        {"uid", UidOf(object)},
        {"resourceVersion", ResourceVersionOf(object)}}},
      {"type", type},
      {"reason", reason},
      {"message", message},
      {"count", 1},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"source", {{"component", component_}}},
      {"reportingComponent", component_},
      {"reportingInstance", host_}};
  if (!host_.empty()) event["source"]["host"] = host_;
  auto s = api_->Create(kEvents, ns, event);
  if (!s.ok()) {
    TANDEM_LOG(warn, "event {} {} on {}/{}: {}", type, reason, ns, NameOf(object),
               s.status().ToString());
  }
}

}  // namespace tandem::kube
