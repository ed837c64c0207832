// Parsed, validated TrainingJobs, keyed by uid and resourceVersion: a scheduling pass reads every
// job of the cache, and parsing one (the manifest, then the trainer's model, data and optimizer
// validators) costs ~0.1 ms, ~1 s of CPU per pass at 10,000 jobs. Entries are keyed by uid and
// hold the resourceVersion they were parsed from: any write to the job changes its
// resourceVersion, so an updated job is parsed again and replaces its entry. A hit also needs
// the very cached object that was parsed (the informer's shared, immutable copy, held weakly): a
// relist's new copy, or a test's hand-made object reusing a version, is parsed again, so a hit
// can never hand out the parse of other content.
//
//   ParsedJobCache cache(20000);
//   std::shared_ptr<const ParsedJob> p = cache.Get(object, validators);  // kube::Object
//   if (p->errors.empty()) use(p->job);
//   cache.Retain(uids_still_in_the_informer);  // deleted jobs leave
//
// Bounded: past `capacity` entries the least recently used is dropped. Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "api/training_job.h"
#include "nlohmann/json.hpp"
#include "operator/kube/informer.h"

namespace tandem::controller {

struct ParsedJob {
  api::TrainingJob job;
  api::FieldErrors errors;  // empty: valid
};

class ParsedJobCache {
 public:
  explicit ParsedJobCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // The parse of `*object` by api::ParseTrainingJob(*object, validators): cached when the object
  // has a uid and a resourceVersion (objects without them are parsed every time, not kept).
  // The validators must be the same on every call (one cache per reconciler).
  std::shared_ptr<const ParsedJob> Get(const kube::Object& object, const api::SectionValidators& validators);
  // Drops the entry of a deleted job.
  void Forget(const std::string& uid);
  // Drops every entry whose uid is not in `uids` (the jobs the informer still holds).
  void Retain(const std::unordered_set<std::string>& uids);

  size_t size() const;
  int64_t hits() const;
  int64_t misses() const;

 private:
  struct Entry {
    std::string resource_version;
    std::weak_ptr<const nlohmann::json> object;  // the cached object it was parsed from
    std::shared_ptr<const ParsedJob> parsed;
    std::list<std::string>::iterator lru;  // position in lru_ (front: most recent)
  };
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::unordered_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);  // by uid
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::controller
