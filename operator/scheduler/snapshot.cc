#include "operator/scheduler/snapshot.h"

#include <algorithm>

namespace tandem::scheduler {

QueueInfo QueueInfoFrom(const api::Queue& q) {
  QueueInfo info;
  info.name = q.metadata.name;
  info.weight = q.spec.weight;
  info.guaranteed = FromResourceList(q.spec.guaranteed);
  if (q.spec.borrowing_limit) info.borrowing_limit = FromResourceList(*q.spec.borrowing_limit, Resources::kUnlimited);
  info.namespaces = q.spec.namespaces;
  info.reclaim_borrowed = q.spec.preemption.reclaim_borrowed;
  info.preempt_lower_priority = q.spec.preemption.within_queue == "LowerPriority";
  return info;
}

JobInfo JobInfoFrom(const api::TrainingJob& job, int64_t created) {
  JobInfo info;
  info.key = job.metadata.namespace_ + "/" + job.metadata.name;
  info.namespace_ = job.metadata.namespace_;
  info.queue = job.spec.queue;
  info.priority = job.spec.priority;
  info.created = created;
  info.per_worker = FromResourceList(api::WorkerRequests(job.spec));
  info.count = static_cast<int>(job.spec.workers.count);
  info.min_count = static_cast<int>(std::min(job.spec.workers.min_count, job.spec.workers.count));
  info.node_selector = job.spec.node_selector;
  info.placement = job.status.placement;
  info.elastic = job.spec.elastic.has_value();
  info.max_count = static_cast<int>(std::max(job.spec.workers.max_count, job.spec.workers.count));
  return info;
}

}  // namespace tandem::scheduler
