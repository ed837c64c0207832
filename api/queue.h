// The Queue API (tandem.dev/v1alpha1, cluster-scoped): a tenant's share of the cluster.
//
// A queue is guaranteed `guaranteed` resources; while other queues leave capacity idle it may
// borrow beyond its guarantee, up to `borrowingLimit` more (unset: no limit), and borrowed
// capacity is reclaimed by preemption when its owner needs it. Capacity beyond the guarantees
// is shared in proportion to `weight` (weighted dominant-resource fairness). See docs/scheduler.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/field_error.h"
#include "api/object_meta.h"
#include "nlohmann/json.hpp"

namespace tandem::api {

inline constexpr char kQueueKind[] = "Queue";

struct QueuePreemption {
  // May this queue's jobs evict jobs of queues that borrow beyond their guarantee, to get this
  // queue's guarantee back?
  bool reclaim_borrowed = true;
  // "Never" | "LowerPriority": may a job evict lower-priority jobs of the same queue?
  std::string within_queue = "Never";
  bool operator==(const QueuePreemption&) const = default;
};

struct QueueSpec {
  int64_t weight = 1;
  ResourceList guaranteed;
  std::optional<ResourceList> borrowing_limit;  // unset: may borrow any idle capacity
  std::vector<std::string> namespaces;          // empty: serves every namespace
  QueuePreemption preemption;
  bool operator==(const QueueSpec&) const = default;
};

// One of the first jobs waiting in a queue, as the last scheduling pass saw it. Positions and
// free-capacity figures live here (refreshed at most every few seconds), not in each job's
// status, where they would change with every pass (Kueue's pending-workloads visibility).
struct WaitingJob {
  std::string ns;      // namespace
  std::string name;
  int64_t position = 0;  // 1-based in the queue
  std::string reason;    // as the job's Queued condition
  std::string detail;    // "position 2 of 5; free capacity fits 2 (free 6, at most 3 on one node)"
  bool operator==(const WaitingJob&) const = default;
};

struct QueueStatus {
  int64_t admitted_jobs = 0;
  int64_t pending_jobs = 0;
  std::vector<WaitingJob> waiting;  // the first few waiting jobs, in queue order
  std::string waiting_time;         // RFC 3339: when `waiting` was computed
  ResourceList usage;
  ResourceList borrowed;
  double weighted_share = 0;  // dominant share of borrowed capacity / weight
  std::vector<Condition> conditions;
  bool operator==(const QueueStatus&) const = default;
};

struct Queue {
  std::string api_version = kApiVersion;
  std::string kind = kQueueKind;
  ObjectMeta metadata;
  QueueSpec spec;
  QueueStatus status;
  bool operator==(const Queue&) const = default;

  // Does this queue admit jobs from `namespace_name`?
  bool Serves(const std::string& namespace_name) const;
};

// As ParseTrainingJob: defaults applied, every problem appended, never throws.
Queue ParseQueue(const nlohmann::json& object, FieldErrors* errors);
absl::StatusOr<Queue> QueueFromJson(const nlohmann::json& object);
FieldErrors ValidateQueue(const Queue& queue);
nlohmann::json ToJson(const Queue& queue);

}  // namespace tandem::api
