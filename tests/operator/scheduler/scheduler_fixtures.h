// Small builders for scheduler tests.
#pragma once

#include <string>

#include "operator/scheduler/scheduler.h"

namespace tandem::scheduler::testing {

constexpr int64_t kGi = int64_t{1} << 30;

inline NodeInfo Node(const std::string& name, int64_t gpus, int64_t cores = 64, int64_t mem_gi = 512) {
  NodeInfo n;
  n.name = name;
  n.allocatable = {cores * 1000, mem_gi * kGi, gpus};
  return n;
}

inline QueueInfo Queue(const std::string& name, int64_t weight = 1, int64_t guaranteed_gpus = 0) {
  QueueInfo q;
  q.name = name;
  q.weight = weight;
  q.guaranteed = {0, 0, guaranteed_gpus};
  // CPU and memory guarantees are generous so GPU is the resource under test.
  if (guaranteed_gpus > 0) q.guaranteed = {1000 * 1000, 10000 * kGi, guaranteed_gpus};
  return q;
}

inline JobInfo Job(const std::string& key, const std::string& queue, int workers, int64_t gpus_per_worker,
                   int64_t priority = 0, int64_t created = 0) {
  JobInfo j;
  j.key = key;
  j.namespace_ = "default";
  j.queue = queue;
  j.count = workers;
  j.min_count = workers;
  j.per_worker = {1500, 3 * kGi, gpus_per_worker};
  j.priority = priority;
  j.created = created;
  return j;
}

inline const Admission* FindAdmission(const SchedulingResult& r, const std::string& job) {
  for (const auto& a : r.admissions)
    if (a.job == job) return &a;
  return nullptr;
}
inline const PendingJob* FindPending(const SchedulingResult& r, const std::string& job) {
  for (const auto& p : r.pending)
    if (p.job == job) return &p;
  return nullptr;
}

}  // namespace tandem::scheduler::testing
