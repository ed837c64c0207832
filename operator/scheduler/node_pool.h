// Free capacity of the cluster's nodes, indexed for GPU-aware best-fit placement. Internal to
// the scheduler; exposed for its tests.
//
// Nodes are bucketed by their free GPU count. A worker needing g GPUs goes to the node with the
// fewest free GPUs that still fits it (buckets g, g+1, ...), which packs GPU jobs onto
// partly-used nodes and keeps whole nodes free for large workers; CPU-only workers start at
// bucket 0 (nodes with no free GPU), so they do not strand GPUs either.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "operator/scheduler/resources.h"
#include "operator/scheduler/snapshot.h"

namespace tandem::scheduler {

class NodePool {
 public:
  explicit NodePool(const std::vector<NodeInfo>& nodes);

  int size() const { return static_cast<int>(free_.size()); }
  const Resources& Free(int node) const { return free_[node]; }
  // Sum over schedulable nodes of their free capacity (an over-committed node counts as 0): a
  // quick necessary condition for a placement.
  const Resources& TotalFree() const { return total_free_; }
  // Adds/removes usage on a node (a negative free capacity is representable: it means the node
  // is already over-committed by pods outside Tandem's control, and nothing more fits there).
  void Use(int node, const Resources& r);
  void Release(int node, const Resources& r) { Use(node, Resources{} - r); }

  // Places `n` workers of `r` on nodes matching `selector`, all or none. On success appends the
  // node of each worker to `out`, commits the usage and returns true; on failure changes nothing.
  bool PlaceGang(const Resources& r, int n, const std::map<std::string, std::string>& selector,
                 std::vector<int>* out);
  void ReleaseGang(const Resources& r, const std::vector<int>& nodes) {
    for (int node : nodes) Release(node, r);
  }

  // Why `n` workers of `r` do not fit right now: names the short resource. `reason` gets a
  // CamelCase reason (InsufficientResources, or NeverFits when no matching node could ever hold
  // one worker even when empty). The returned text depends only on the request and the nodes'
  // sizes; `detail` (when not null) gets what depends on the current usage ("free capacity fits
  // 2 (free 2, at most 1 on one node)"), or "" when there is none.
  std::string ExplainShortage(const Resources& r, int n, const std::map<std::string, std::string>& selector,
                              std::string* reason, std::string* detail = nullptr, int* kind = nullptr) const;
  // The text ExplainShortage gives for `n` workers when its `kind` was >= -1 (short of resource
  // `kind`, or -1: fragmented): the same shortage, said for another gang size (kind -2: the text
  // does not depend on n).
  static std::string ShortageText(int kind, const Resources& r, int n);

  bool Matches(int node, const std::map<std::string, std::string>& selector) const;

 private:
  static constexpr int kMaxBucket = 64;
  int BucketFor(int node) const;
  void Rebucket(int node);
  int PlaceOne(const Resources& r, const std::map<std::string, std::string>& selector) const;

  const std::vector<NodeInfo>* nodes_;
  std::vector<Resources> free_;
  Resources total_free_;
  std::vector<std::vector<int>> buckets_;  // free GPUs (capped) -> schedulable nodes
  std::vector<int> bucket_of_;             // -1: unschedulable
  std::vector<int> pos_;                   // index of the node in its bucket
};

}  // namespace tandem::scheduler
