#include "trainer/collective/hierarchical_allreduce.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "trainer/collective/reduce_kernels.h"

namespace tandem::collective {
namespace {

constexpr uint32_t kInfoMagic = 0x48494552;  // "HIER"

// What each rank tells every other one at negotiation (fixed size: broadcast as bytes).
struct RankInfo {
  uint32_t magic = kInfoMagic;
  uint32_t willing = 0;  // shared memory enabled and both extra listeners bound
  uint32_t local_port = 0;
  uint32_t cross_port = 0;
  char host[320] = {};
};

}  // namespace

ShmHierarchicalAllReducer::ShmHierarchicalAllReducer(Transport& global, std::unique_ptr<TcpTransport> local,
                                               std::unique_ptr<TcpTransport> cross,
                                               std::unique_ptr<ShmAllReducer> shm, int hosts,
                                               int local_size, int local_rank)
    : global_(global),
      local_(std::move(local)),
      cross_(std::move(cross)),
      shm_(std::move(shm)),
      hosts_(hosts),
      local_size_(local_size),
      local_rank_(local_rank) {
  // A failure seen by any of the three rings wakes whoever waits in the segment.
  ShmAllReducer* seg = shm_.get();
  local_->SetFailureHook([seg] { seg->Abort(); });
  cross_->SetFailureHook([seg] { seg->Abort(); });
  global_.SetFailureHook([seg] { seg->Abort(); });
  for (Transport* t : {static_cast<Transport*>(local_.get()), static_cast<Transport*>(cross_.get()), &global_})
    if (!t->health().ok()) seg->Abort();  // failed before its hook was in place
}

ShmHierarchicalAllReducer::~ShmHierarchicalAllReducer() {
  global_.SetFailureHook(nullptr);
  cross_->SetFailureHook(nullptr);
  local_->SetFailureHook(nullptr);
  shm_.reset();  // before the transport that carries its liveness
}

absl::StatusOr<std::unique_ptr<ShmHierarchicalAllReducer>> ShmHierarchicalAllReducer::Negotiate(
    Transport& global, const PeerList& peers, const TcpTransportOptions& transport,
    const RingOptions& ring, RingScratch& scratch, const ShmOptions& shm) {
  const int n = global.world_size(), rank = global.rank();
  if (n < 4) return nullptr;  // at least 2 hosts of 2 ranks
  RankInfo mine;
  Listener local_listener, cross_listener;
  if (shm.enabled) {
    auto l = Listener::Bind(transport.bind_host, 0);
    auto c = Listener::Bind(transport.bind_host, 0);
    if (l.ok() && c.ok()) {
      local_listener = *std::move(l);
      cross_listener = *std::move(c);
      mine.willing = 1;
      mine.local_port = static_cast<uint32_t>(local_listener.port());
      mine.cross_port = static_cast<uint32_t>(cross_listener.port());
    } else {
      TANDEM_LOG(warn, "collective rank {}: no listener for the hierarchical all-reduce ({})", rank,
                 (l.ok() ? c.status() : l.status()).ToString());
    }
  }
  std::snprintf(mine.host, sizeof(mine.host), "%s", ShmHostIdentity(shm).c_str());

  // Everyone's info, by one broadcast from each rank (small, once per job).
  std::vector<RankInfo> info(n);
  for (int root = 0; root < n; ++root) {
    if (root == rank) info[root] = mine;
    OpStats stats;
    TANDEM_RETURN_IF_ERROR(RingBroadcast(global, ring, scratch, &info[root], sizeof(RankInfo), root, &stats));
  }

  // The same decision on every rank, from the same table.
  std::vector<std::string> host_of(n);
  std::vector<std::string> order;            // hosts in order of their first rank
  std::map<std::string, std::vector<int>> members;
  std::string why_not;
  for (int r = 0; r < n; ++r) {
    if (info[r].magic != kInfoMagic) return absl::DataLossError("hierarchical negotiation: bad record");
    host_of[r].assign(info[r].host, strnlen(info[r].host, sizeof(info[r].host)));
    if (!members.count(host_of[r])) order.push_back(host_of[r]);
    members[host_of[r]].push_back(r);
    if (!info[r].willing && why_not.empty())
      why_not = absl::StrCat("rank ", r, " does not take part (TANDEM_COLLECTIVE_SHM=0 or no listener)");
  }
  const int hosts = static_cast<int>(order.size());
  const int local_size = static_cast<int>(members[order[0]].size());
  if (why_not.empty() && hosts < 2) why_not = "every rank is on one host";
  if (why_not.empty() && local_size < 2) why_not = "one rank per host";
  for (const std::string& h : order)
    if (why_not.empty() && static_cast<int>(members[h].size()) != local_size)
      why_not = absl::StrCat("hosts hold different numbers of ranks (", members[h].size(), " and ",
                             local_size, ")");
  if (!why_not.empty()) {
    if (rank == 0) TANDEM_LOG(info, "collective: no hierarchical all-reduce: {}", why_not);
    return nullptr;
  }

  // The two sub-groups of this rank.
  const std::vector<int>& host_ranks = members[host_of[rank]];
  const int local_rank = static_cast<int>(std::find(host_ranks.begin(), host_ranks.end(), rank) -
                                          host_ranks.begin());
  const int host_index =
      static_cast<int>(std::find(order.begin(), order.end(), host_of[rank]) - order.begin());
  PeerList local_peers{.rank = local_rank, .endpoints = {}};
  for (int r : host_ranks)
    local_peers.endpoints.push_back({peers.endpoints[r].host, static_cast<int>(info[r].local_port)});
  PeerList cross_peers{.rank = host_index, .endpoints = {}};
  for (const std::string& h : order) {
    const int r = members[h][local_rank];
    cross_peers.endpoints.push_back({peers.endpoints[r].host, static_cast<int>(info[r].cross_port)});
  }
  TcpTransportOptions local_options = transport, cross_options = transport;
  local_options.job_id = absl::StrCat(transport.job_id, "/host-local");
  cross_options.job_id = absl::StrCat(transport.job_id, "/cross-host-", local_rank);
  // Local groups first, then columns, on every rank: each rendezvous involves only ranks that
  // reach it in the same order, so none can wait on another.
  auto local = TcpTransport::Connect(local_options, local_peers, std::move(local_listener));
  if (!local.ok()) return Annotate(local.status(), "connecting the ranks of this host");
  auto cross = TcpTransport::Connect(cross_options, cross_peers, std::move(cross_listener));
  if (!cross.ok()) return Annotate(cross.status(), "connecting the ranks across hosts");
  RingScratch local_scratch;
  auto seg = ShmAllReducer::Negotiate(**local, ring, local_scratch, shm);
  if (!seg.ok()) return Annotate(seg.status(), "negotiating this host's shared memory");

  // Every host must have its segment, or all ranks stay on the flat ring.
  float ok = *seg ? 1.0f : 0.0f;
  OpStats stats;
  TANDEM_RETURN_IF_ERROR(RingAllReduce(global, ring, scratch, &ok, 1, ReduceOp::kSum, Compression::kNone, &stats));
  if (ok < static_cast<float>(n)) {
    if (rank == 0)
      TANDEM_LOG(info, "collective: no hierarchical all-reduce: {} of {} ranks could not share "
                       "memory with their host", n - static_cast<int>(ok), n);
    return nullptr;
  }
  if (rank == 0)
    TANDEM_LOG(info, "collective: hierarchical all-reduce: {} hosts x {} ranks (shared memory "
                     "inside a host, {} TCP rings of {} ranks across hosts)",
               hosts, local_size, local_size, hosts);
  return std::unique_ptr<ShmHierarchicalAllReducer>(new ShmHierarchicalAllReducer(
      global, *std::move(local), *std::move(cross), *std::move(seg), hosts, local_size, local_rank));
}

absl::Status ShmHierarchicalAllReducer::FailAll(const absl::Status& why) {
  // The first failure names the culprit; the others are told so that every ring aborts.
  absl::Status s = global_.Fail(why);
  (void)local_->Fail(s);
  (void)cross_->Fail(s);
  return s;
}

absl::Status ShmHierarchicalAllReducer::AllReduce(const RingOptions& o, float* data, size_t count,
                                               ReduceOp op, Compression compression,
                                               OpStats* stats) {
  if (absl::Status h = global_.health(); !h.ok()) return FailAll(h);
  if (count == 0) return absl::OkStatus();  // every rank skips alike
  // 1. The host's sum on every rank of the host.
  absl::Status s = shm_->AllReduce(*local_, o, local_scratch_, data, count, ReduceOp::kSum,
                                   Compression::kNone, stats);
  if (!s.ok()) return FailAll(s);
  // 2. This rank's slice across hosts.
  const size_t begin = count * static_cast<size_t>(local_rank_) / static_cast<size_t>(local_size_);
  const size_t end = count * static_cast<size_t>(local_rank_ + 1) / static_cast<size_t>(local_size_);
  s = RingAllReduce(*cross_, o, cross_scratch_, data + begin, end - begin, ReduceOp::kSum,
                    compression, stats);
  if (!s.ok()) return FailAll(s);
  // 3. All-gather inside the host: every other slice zeroed, summed with the owners'.
  std::memset(data, 0, begin * sizeof(float));
  std::memset(data + end, 0, (count - end) * sizeof(float));
  s = shm_->AllReduce(*local_, o, local_scratch_, data, count, ReduceOp::kSum, Compression::kNone,
                      stats);
  if (!s.ok()) return FailAll(s);
  if (op == ReduceOp::kAverage)
    ScaleInPlace(data, 1.0f / static_cast<float>(hosts_ * local_size_), count);
  return absl::OkStatus();
}

}  // namespace tandem::collective
