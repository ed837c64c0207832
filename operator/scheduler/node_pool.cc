#include "operator/scheduler/node_pool.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::scheduler {
namespace {
Resources Positive(const Resources& r) { return r.ExcessOver(Resources{}); }
}  // namespace

NodePool::NodePool(const std::vector<NodeInfo>& nodes)
    : nodes_(&nodes), buckets_(kMaxBucket + 1), bucket_of_(nodes.size(), -1), pos_(nodes.size(), -1) {
  free_.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    free_.push_back(nodes[i].allocatable);
    if (!nodes[i].schedulable) continue;
    total_free_ += Positive(nodes[i].allocatable);
    int b = BucketFor(static_cast<int>(i));
    bucket_of_[i] = b;
    pos_[i] = static_cast<int>(buckets_[b].size());
    buckets_[b].push_back(static_cast<int>(i));
  }
}

int NodePool::BucketFor(int node) const {
  return static_cast<int>(std::clamp<int64_t>(free_[node].gpu, 0, kMaxBucket));
}

void NodePool::Rebucket(int node) {
  int old = bucket_of_[node];
  if (old < 0) return;  // unschedulable nodes are never placement targets
  int b = BucketFor(node);
  if (b == old) return;
  std::vector<int>& from = buckets_[old];
  int last = from.back();
  from[pos_[node]] = last;
  pos_[last] = pos_[node];
  from.pop_back();
  bucket_of_[node] = b;
  pos_[node] = static_cast<int>(buckets_[b].size());
  buckets_[b].push_back(node);
}

void NodePool::Use(int node, const Resources& r) {
  if (bucket_of_[node] >= 0) total_free_ -= Positive(free_[node]);
  free_[node] -= r;
  if (bucket_of_[node] >= 0) total_free_ += Positive(free_[node]);
  Rebucket(node);
}

bool NodePool::Matches(int node, const std::map<std::string, std::string>& selector) const {
  const auto& labels = (*nodes_)[node].labels;
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

int NodePool::PlaceOne(const Resources& r, const std::map<std::string, std::string>& selector) const {
  int first = static_cast<int>(std::clamp<int64_t>(r.gpu, 0, kMaxBucket));
  for (int b = first; b <= kMaxBucket; ++b) {
    for (int node : buckets_[b]) {
      if (r.FitsIn(free_[node]) && (selector.empty() || Matches(node, selector))) return node;
    }
  }
  return -1;
}

bool NodePool::PlaceGang(const Resources& r, int n, const std::map<std::string, std::string>& selector,
                         std::vector<int>* out) {
  const size_t start = out->size();
  if (!(r * n).FitsIn(total_free_)) return false;  // not even in aggregate
  for (int w = 0; w < n; ++w) {
    int node = PlaceOne(r, selector);
    if (node < 0) {
      for (size_t i = start; i < out->size(); ++i) Release((*out)[i], r);
      out->resize(start);
      return false;
    }
    Use(node, r);
    out->push_back(node);
  }
  return true;
}

std::string NodePool::ExplainShortage(const Resources& r, int n,
                                      const std::map<std::string, std::string>& selector,
                                      std::string* reason, std::string* detail, int* kind) const {
  if (detail != nullptr) detail->clear();
  if (kind != nullptr) *kind = -2;
  int64_t fits[3] = {0, 0, 0};
  int64_t free_total[3] = {0, 0, 0};
  int64_t largest_alloc[3] = {0, 0, 0};
  int64_t largest_free[3] = {0, 0, 0};
  int matching = 0;
  for (int node = 0; node < size(); ++node) {
    if (bucket_of_[node] < 0 || !Matches(node, selector)) continue;
    ++matching;
    for (int d = 0; d < 3; ++d) {
      int64_t want = Component(r, d), have = std::max<int64_t>(0, Component(free_[node], d));
      free_total[d] += have;
      largest_free[d] = std::max(largest_free[d], have);
      largest_alloc[d] = std::max(largest_alloc[d], Component((*nodes_)[node].allocatable, d));
      fits[d] += want > 0 ? have / want : n;
    }
  }
  *reason = "InsufficientResources";
  if (matching == 0) {
    *reason = "NeverFits";
    if (selector.empty()) return "no schedulable node in the cluster";
    std::vector<std::string> kv;
    for (const auto& [k, v] : selector) kv.push_back(k + "=" + v);
    return absl::StrCat("no schedulable node matches nodeSelector ", absl::StrJoin(kv, ","));
  }
  for (int d = 0; d < 3; ++d) {
    if (Component(r, d) > largest_alloc[d]) {
      *reason = "NeverFits";
      return absl::StrCat("a worker needs ", FormatComponent(d, Component(r, d)), " ", kResourceNames[d],
                          " (its trainer and any pserver) but the largest node has ", FormatComponent(d, largest_alloc[d]));
    }
  }
  // The dimension that fits the fewest workers is the short one.
  int short_d = -1;
  for (int d = 0; d < 3; ++d)
    if (Component(r, d) > 0 && fits[d] < n && (short_d < 0 || fits[d] < fits[short_d])) short_d = d;
  if (short_d >= 0) {
    if (detail != nullptr) {
      *detail = absl::StrCat("free capacity fits ", fits[short_d], " (free ", FormatComponent(short_d, free_total[short_d]),
                             ", at most ", FormatComponent(short_d, largest_free[short_d]), " on one node)");
    }
    if (kind != nullptr) *kind = short_d;
    return ShortageText(short_d, r, n);
  }
  if (kind != nullptr) *kind = -1;
  return ShortageText(-1, r, n);
}

std::string NodePool::ShortageText(int kind, const Resources& r, int n) {
  if (kind >= 0) {
    return absl::StrCat("insufficient ", kResourceNames[kind], ": ", n, " workers need ",
                        FormatComponent(kind, Component(r, kind)), " each on one node");
  }
  return absl::StrCat("fragmented: each resource alone has room for ", n, " workers of ", r.ToString(),
                      ", but no set of nodes fits them together");
}

}  // namespace tandem::scheduler
