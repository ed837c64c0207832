// What the scheduler sees: a consistent snapshot of nodes, non-Tandem pods, queues and
// TrainingJobs (admitted and pending), built by the operator from its informer caches. Plain
// values; the scheduler never calls the API server.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "api/queue.h"
#include "api/training_job.h"
#include "operator/scheduler/resources.h"

namespace tandem::scheduler {

struct NodeInfo {
  std::string name;
  Resources allocatable;
  std::map<std::string, std::string> labels;
  bool schedulable = true;  // false: cordoned, not ready, or tainted NoSchedule
};

// A running pod not owned by a TrainingJob (system daemons, other workloads): its requests
// are not available to Tandem.
struct PodUsage {
  std::string node;
  Resources requests;
};

struct QueueInfo {
  std::string name;
  int64_t weight = 1;
  Resources guaranteed;
  Resources borrowing_limit = Resources::Unlimited();  // per resource, beyond `guaranteed`
  std::vector<std::string> namespaces;                 // empty: all
  bool reclaim_borrowed = true;
  bool preempt_lower_priority = false;  // withinQueue: LowerPriority
};

struct JobInfo {
  std::string key;  // "namespace/name": unique
  std::string namespace_;
  std::string queue;
  int64_t priority = 0;
  int64_t created = 0;  // creation time (any monotonic unit): smaller is older
  Resources per_worker; // api::WorkerRequests: the trainer, plus the pserver where the job runs
                        // pservers (api::UsesPServers); both on the worker's node
  int count = 1;
  int min_count = 1;    // elastic: may be admitted with fewer workers, down to this
  std::map<std::string, std::string> node_selector;
  // Admitted jobs: the node of each worker (rank order). Empty: pending.
  std::vector<std::string> placement;
  // Admitted jobs that are being preempted or are finishing: they still hold their resources
  // but are never chosen as victims again.
  bool terminating = false;

  // Elastic jobs (spec.elastic, docs/elastic.md): an admitted one may grow toward max_count
  // into idle capacity and is shrunk toward min_count, instead of being preempted whole, when
  // another queue reclaims what it borrows. Fixed jobs (elastic false) are never resized.
  bool elastic = false;
  int max_count = 0;     // elastic: the most workers it may grow to (<= count: never grows)
  // A resize of this job is in flight (new workers not yet all in the membership, or removed
  // workers not yet gone): no resize decision is taken for it until it completes.
  bool resizing = false;
  // It was resized recently (the controller's cool-down): it may be shrunk, but not grown.
  bool cooling_down = false;
  // Nodes of workers that left the job (a shrink) and still run until they exit: they hold
  // their resources on those nodes, like terminating jobs, but are not in `placement`.
  std::vector<std::string> releasing;
};

struct Snapshot {
  std::vector<NodeInfo> nodes;
  std::vector<PodUsage> other_pods;
  std::vector<QueueInfo> queues;
  std::vector<JobInfo> jobs;
};

// Conversions from the API types. created: e.g. seconds since the epoch of the job's
// metadata.creationTimestamp (the caller parses it).
QueueInfo QueueInfoFrom(const api::Queue& queue);
JobInfo JobInfoFrom(const api::TrainingJob& job, int64_t created);

}  // namespace tandem::scheduler
