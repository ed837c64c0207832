// The fair-share gang scheduler: pure code over a Snapshot (no API calls, no clock, no
// threads), so every decision is reproducible in a test.
//
//   scheduler::SchedulingResult r = scheduler::Schedule(snapshot);
//   for (const auto& a : r.admissions)  ...  // create a.placement.size() workers on those nodes
//   for (const auto& p : r.preemptions) ...  // SIGTERM p.victim's workers; it checkpoints, requeues
//   for (const auto& q : r.pending)     ...  // status.pendingReason = q.message (stable); q.detail and
//                                            // q.position go to the Queue's status, not the job's
//
// One pass, in this order (docs/scheduler.md has the details and the reasoning):
// 1. Usage: admitted jobs and other pods are charged to their nodes and queues.
// 2. Queue order: the queue whose next job fits within its guarantee goes first; then the queue
//    with the lowest weighted dominant share of borrowed capacity (max over cpu, memory, GPUs of
//    usage beyond guarantee / cluster capacity, divided by weight). Within a queue: higher
//    priority, then older, first.
// 3. A job is admitted only if all its workers are placed (a gang; elastic jobs may shrink to
//    minCount) and its queue stays within guaranteed + borrowingLimit. Placement is GPU-aware
//    best fit (node_pool.h). A node is never over-committed.
// 4. A job that does not fit, and would stay within its queue's guarantee, may reclaim: it
//    preempts jobs of queues that borrow beyond their guarantee (lowest priority, then newest,
//    first; only as many as needed). With withinQueue: LowerPriority it may also preempt
//    lower-priority jobs of its own queue. It is admitted on a later pass, once they are gone.
//    Before stopping any job whole it shrinks elastic jobs of those queues toward their
//    minCount (highest ranks first); only when shrinking cannot make room are whole jobs
//    preempted.
// 5. Elastic jobs grow toward maxCount, one worker at a time, the queue with the lowest
//    weighted share first, into capacity no waiting job is short of, within their queue's
//    guaranteed + borrowingLimit. A job with a resize in flight is left alone; one in its
//    cool-down may shrink but not grow.
// 6. Every job left pending gets a reason naming the short resource, the binding queue limit,
//    or the preemption it waits for, and its position in its queue. The message stays the same
//    while the job waits for the same thing (it is written into the job's status); the figures
//    that change with every pass (position, free capacity, the queue's usage) are in `detail`.
#pragma once

#include <string>
#include <vector>

#include "operator/scheduler/resources.h"
#include "operator/scheduler/snapshot.h"

namespace tandem::scheduler {

struct Admission {
  std::string job;                     // JobInfo::key
  std::vector<std::string> placement;  // node of each worker, rank order
  int workers = 0;                     // placement.size(); < count for a shrunken elastic job
};

struct Preemption {
  std::string victim;     // JobInfo::key of an admitted job to stop (SIGTERM, checkpoint, requeue)
  std::string preemptor;  // the pending job it makes room for
  std::string reason;     // "ReclaimBorrowed" or "LowerPriority"
  std::string message;
};

// An elastic job's new size. Grow: `placement` is the old one plus a node for each new worker
// (new ranks at the end). Shrink: the old one without its highest ranks (rank 0 always stays).
struct Resize {
  std::string job;
  int from = 0;
  int to = 0;
  std::vector<std::string> placement;  // rank order, to entries
  // Grow (idle capacity), ReclaimBorrowed (another queue reclaims its guarantee) or
  // LowerPriority (a higher-priority job of the same queue, withinQueue: LowerPriority).
  std::string reason;
  std::string message;
  std::string preemptor;  // shrinks: the pending job it makes room for
};

struct PendingJob {
  std::string job;
  // InsufficientResources, NeverFits, QueueLimit, NoSuchQueue, NamespaceNotServed,
  // WaitingForPreemption, Preempting, Shrinking.
  std::string reason;
  // Stable while the job waits for the same thing: "in queue team-a: insufficient nvidia.com/gpu:
  // 3 workers need 4 each on one node". No position, no free-capacity figures.
  std::string message;
  // What changes from pass to pass: "position 2 of 5; free capacity fits 2 (free 6, at most 3
  // on one node)". Empty when there is nothing to add.
  std::string detail;
  int position = 0;     // 1-based among the queue's pending jobs; 0 when it has no queue
};

struct QueueReport {
  std::string name;
  Resources usage;     // after this pass's admissions
  Resources borrowed;  // usage beyond the guarantee
  double weighted_share = 0;
  int admitted = 0;    // admitted jobs, including this pass's
  int pending = 0;
};

struct SchedulingResult {
  std::vector<Admission> admissions;
  std::vector<Preemption> preemptions;
  std::vector<Resize> resizes;  // at most one per job
  std::vector<PendingJob> pending;
  std::vector<QueueReport> queues;
};

SchedulingResult Schedule(const Snapshot& snapshot);

// Weighted dominant share of the capacity `usage` borrows beyond `guaranteed`.
double WeightedShare(const Resources& usage, const Resources& guaranteed, int64_t weight,
                     const Resources& capacity);

}  // namespace tandem::scheduler
