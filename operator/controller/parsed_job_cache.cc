#include "operator/controller/parsed_job_cache.h"

#include "operator/kube/resource.h"

namespace tandem::controller {

std::shared_ptr<const ParsedJob> ParsedJobCache::Get(const kube::Object& object,
                                                     const api::SectionValidators& validators) {
  const std::string uid = kube::UidOf(*object);
  const std::string rv = kube::ResourceVersionOf(*object);
  if (!uid.empty() && !rv.empty()) {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(uid);
    if (it != entries_.end() && it->second.resource_version == rv && it->second.object.lock() == object) {
      ++hits_;
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.parsed;
    }
  }
  // Parsed outside the lock: two passes may parse one version at once; both results are equal.
  auto parsed = std::make_shared<ParsedJob>();
  parsed->job = api::ParseTrainingJob(*object, validators, &parsed->errors);
  absl::MutexLock lock(&mu_);
  ++misses_;
  if (uid.empty() || rv.empty()) return parsed;
  auto it = entries_.find(uid);
  if (it != entries_.end()) {
    it->second.resource_version = rv;
    it->second.object = object;
    it->second.parsed = parsed;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return parsed;
  }
  lru_.push_front(uid);
  entries_.emplace(uid, Entry{rv, object, parsed, lru_.begin()});
  while (entries_.size() > capacity_) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  return parsed;
}

void ParsedJobCache::Forget(const std::string& uid) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(uid);
  if (it == entries_.end()) return;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

void ParsedJobCache::Retain(const std::unordered_set<std::string>& uids) {
  absl::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (uids.count(it->first)) {
      ++it;
      continue;
    }
    lru_.erase(it->second.lru);
    it = entries_.erase(it);
  }
}

size_t ParsedJobCache::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

int64_t ParsedJobCache::hits() const {
  absl::MutexLock lock(&mu_);
  return hits_;
}

int64_t ParsedJobCache::misses() const {
  absl::MutexLock lock(&mu_);
  return misses_;
}

}  // namespace tandem::controller
