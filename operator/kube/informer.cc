#include "operator/kube/informer.h"

#include <random>

#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "operator/kube/api_error.h"

namespace tandem::kube {

void DropServerBookkeeping(nlohmann::json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return;
  meta->erase("managedFields");
  auto annotations = meta->find("annotations");
  if (annotations != meta->end() && annotations->is_object()) {
    annotations->erase("kubectl.kubernetes.io/last-applied-configuration");
    if (annotations->empty()) meta->erase(annotations);
  }
}

Informer::Informer(KubeApi* api, Resource resource, InformerOptions options)
    : api_(api), resource_(std::move(resource)), options_(std::move(options)) {}

Informer::~Informer() { Stop(); }

void Informer::AddHandler(InformerHandler handler) { handlers_.push_back(std::move(handler)); }

void Informer::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (current_watch_ != nullptr) current_watch_->Cancel();
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

bool Informer::WaitForSync(std::chrono::duration<double> timeout) {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + absl::Seconds(timeout.count());
  while (!synced_.load() && !stop_.load() && !cv_.WaitWithDeadline(&mu_, deadline)) {
  }
  return synced_.load();
}

Object Informer::Get(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = store_.find(key);
  return it == store_.end() ? nullptr : it->second;
}

std::vector<Object> Informer::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<Object> out;
  out.reserve(store_.size());
  for (const auto& [k, v] : store_) out.push_back(v);
  return out;
}

std::vector<Object> Informer::ListNamespace(const std::string& ns) const {
  absl::MutexLock lock(&mu_);
  std::vector<Object> out;
  for (auto it = store_.lower_bound(ns + "/"); it != store_.end(); ++it) {
    if (it->first.compare(0, ns.size() + 1, ns + "/") != 0) break;
    out.push_back(it->second);
  }
  return out;
}

size_t Informer::Size() const {
  absl::MutexLock lock(&mu_);
  return store_.size();
}

std::string Informer::LastResourceVersion() const {
  absl::MutexLock lock(&mu_);
  return resource_version_;
}

void Informer::Sleep(double seconds) {
  absl::MutexLock lock(&mu_);
  const absl::Time deadline = absl::Now() + absl::Seconds(seconds);
  while (!stop_.load() && !cv_.WaitWithDeadline(&mu_, deadline)) {
  }
}

void Informer::Run() {
  thread_local std::mt19937 rng(std::random_device{}());
  double backoff = options_.backoff_initial_s;
  auto wait_backoff = [&] {
    std::uniform_real_distribution<double> jitter(1.0, 1.5);
    Sleep(backoff * jitter(rng));
    backoff = std::min(options_.backoff_max_s, backoff * 2);
  };
  bool need_list = true;
  while (!stop_) {
    if (need_list) {
      if (!ListAndReplace()) {
        wait_backoff();
        continue;
      }
      need_list = false;
    }
    bool failed = false;
    need_list = !WatchOnce(&failed);
    if (failed) {
      wait_backoff();
    } else {
      backoff = options_.backoff_initial_s;
    }
  }
}

bool Informer::ListAndReplace() {
  ListOptions lo{options_.label_selector, options_.field_selector, "", false, 0};
  auto list = api_->List(resource_, options_.ns, lo);
  ++lists_;
  if (!list.ok()) {
    TANDEM_LOG(warn, "informer {}: list failed: {}", resource_.plural, list.status().ToString());
    return false;
  }
  std::map<std::string, Object> fresh;
  if (list->contains("items") && (*list)["items"].is_array()) {
    for (auto& item : (*list)["items"]) {
      // List items omit kind/apiVersion; fill them so cached objects look like watched ones.
      item["kind"] = resource_.kind;
      item["apiVersion"] = resource_.ApiVersion();
      if (options_.transform) options_.transform(item);
      std::string key = ObjectKey::Of(item).String();
      fresh[key] = std::make_shared<const nlohmann::json>(std::move(item));
    }
  }
  std::string rv;
  if (const auto* v = FieldAt(*list, "metadata.resourceVersion"); v != nullptr && v->is_string()) {
    rv = v->get<std::string>();
  }
  // Diff against the cache so handlers see what changed while we were not watching.
  std::vector<std::pair<Object, Object>> updates;  // (old, new); old null = add, new null = delete
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [k, obj] : fresh) {
      auto it = store_.find(k);
      if (it == store_.end()) {
        updates.emplace_back(nullptr, obj);
      } else if (ResourceVersionOf(*it->second) != ResourceVersionOf(*obj)) {
        updates.emplace_back(it->second, obj);
      }
    }
    for (const auto& [k, obj] : store_) {
      if (fresh.count(k) == 0) updates.emplace_back(obj, nullptr);
    }
    store_ = std::move(fresh);
    resource_version_ = rv;
  }
  for (const auto& [old_obj, new_obj] : updates) {
    for (const auto& h : handlers_) {
      if (old_obj == nullptr && h.on_add) h.on_add(new_obj);
      if (old_obj != nullptr && new_obj != nullptr && h.on_update) h.on_update(old_obj, new_obj);
      if (new_obj == nullptr && h.on_delete) h.on_delete(old_obj);
    }
  }
  if (!synced_.exchange(true)) {
    absl::MutexLock lock(&mu_);
    cv_.SignalAll();
  }
  return true;
}

bool Informer::WatchOnce(bool* failed) {
  ListOptions lo{options_.label_selector, options_.field_selector, LastResourceVersion(), true,
                 options_.watch_timeout_s};
  auto stream = api_->Watch(resource_, options_.ns, lo);
  ++watches_;
  if (!stream.ok()) {
    if (IsGone(stream.status())) return false;
    TANDEM_LOG(warn, "informer {}: watch failed: {}", resource_.plural, stream.status().ToString());
    *failed = true;
    return true;
  }
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return true;
    current_watch_ = stream->get();
  }
  bool relist = false;
  while (!stop_) {
    auto ev = (*stream)->Next();
    if (!ev.ok()) {
      if (IsGone(ev.status())) {
        TANDEM_LOG(info, "informer {}: resourceVersion {} is gone; re-listing", resource_.plural,
                   LastResourceVersion());
        relist = true;
      } else {
        TANDEM_LOG(warn, "informer {}: watch broke: {}", resource_.plural, ev.status().ToString());
        *failed = true;
      }
      break;
    }
    if (!ev->has_value()) break;  // closed by the server: re-watch from the last version
    Apply(std::move(**ev));
  }
  {
    absl::MutexLock lock(&mu_);
    current_watch_ = nullptr;
  }
  return !relist;
}

void Informer::Apply(WatchEvent ev) {
  std::string rv = ResourceVersionOf(ev.object);
  if (ev.type == "BOOKMARK") {
    ++bookmarks_;
    absl::MutexLock lock(&mu_);
    if (!rv.empty()) resource_version_ = rv;
    return;
  }
  if (options_.transform) options_.transform(ev.object);
  auto obj = std::make_shared<const nlohmann::json>(std::move(ev.object));
  std::string key = ObjectKey::Of(*obj).String();
  Object old_obj;
  {
    absl::MutexLock lock(&mu_);
    auto it = store_.find(key);
    if (it != store_.end()) old_obj = it->second;
    if (ev.type == "DELETED") {
      store_.erase(key);
    } else {
      store_[key] = obj;
    }
    if (!rv.empty()) resource_version_ = rv;
  }
  for (const auto& h : handlers_) {
    if (ev.type == "DELETED") {
      if (h.on_delete) h.on_delete(old_obj != nullptr ? old_obj : obj);
    } else if (old_obj == nullptr) {
      if (h.on_add) h.on_add(obj);
    } else if (h.on_update) {
      h.on_update(old_obj, obj);
    }
  }
}

}  // namespace tandem::kube
