// ShmHierarchicalAllReducer: all-reduce for ranks spread over several hosts with several ranks on
// each: shared memory inside a host, TCP rings across hosts. Chosen by the communicator at
// start-up when the ranks are not all on one host (then ShmAllReducer serves them alone), every
// host holds the same number L >= 2 of ranks and every host's ranks can share a segment.
//
// Hosts: a rank's host is its shared-memory identity (boot id and host name, plus the worker
// contract's TANDEM_HOST: ShmOptions::host), so ranks placed on different namespaced hosts of
// one kernel count as different hosts. Local rank = order of the global rank inside its host.
//
// Per all-reduce of S bytes (H hosts, L ranks each, local rank k):
//   1. host all-reduce through shared memory (ShmAllReducer over the host's ranks): every rank of
//      the host holds the host's sum;
//   2. slice k (S/L bytes) all-reduced over TCP among the k-th ranks of all hosts (L rings of H
//      ranks run in parallel, each on its own connections): rank k holds the global sum of its
//      slice. A host sends 2(H-1)/H * S bytes in all, the lower bound, against 2(N-1)/N * S for
//      the flat ring of N = H*L ranks placed host by host;
//   3. every rank zeroes the slices it does not own and the host all-reduces again (an
//      all-gather: each element has one non-zero term, so every rank ends bit-identical);
//   4. kAverage scales by 1/N. bf16 compression applies to the cross-host ring only (step 2).
//
// Sub-groups: each rank binds two extra listeners on port 0 (any free port, on the address it
// listens on in the peer list), sends their ports and its host identity to every rank over the
// global ring, and then every rank builds the same groups: a TCP transport among the ranks of its
// host (liveness of the segment, as for ShmAllReducer) and one among its column (the k-th rank of
// every host). The global transport stays up for broadcast, barrier and liveness.
//
// Failures: any error in any step fails all three transports (the abort travels around every
// ring it touches) and the communicator stays failed, as with the flat ring; a failure detected
// by any transport wakes waiters in the segment at once.
//
// Thread-safety: AllReduce runs one at a time (the communicator serialises operations).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/collective/peer_list.h"
#include "trainer/collective/ring_collectives.h"
#include "trainer/collective/shm_allreduce.h"
#include "trainer/collective/tcp_transport.h"

namespace tandem::collective {

class ShmHierarchicalAllReducer {
 public:
  // Collective over `global` (every rank must call it, after the global rendezvous): returns a
  // reducer when the layout above holds and every host's shared memory works, nullptr (the caller
  // keeps the flat ring) otherwise, with the reason logged. `peers`: the global peer list (the
  // sub-groups listen on its addresses); `transport`: options for the sub-groups' transports.
  // Errors: the global ring's (a peer died during negotiation).
  static absl::StatusOr<std::unique_ptr<ShmHierarchicalAllReducer>> Negotiate(
      Transport& global, const PeerList& peers, const TcpTransportOptions& transport,
      const RingOptions& ring, RingScratch& scratch, const ShmOptions& shm);
  ~ShmHierarchicalAllReducer();

  // Same contract as RingAllReduce. `stats` counts this rank's bytes on the cross-host wire and
  // into the segment.
  absl::Status AllReduce(const RingOptions& o, float* data, size_t count, ReduceOp op,
                         Compression compression, OpStats* stats);

  int hosts() const { return hosts_; }
  int local_size() const { return local_size_; }
  int local_rank() const { return local_rank_; }

 private:
  ShmHierarchicalAllReducer(Transport& global, std::unique_ptr<TcpTransport> local,
                         std::unique_ptr<TcpTransport> cross, std::unique_ptr<ShmAllReducer> shm,
                         int hosts, int local_size, int local_rank);
  absl::Status FailAll(const absl::Status& why);

  Transport& global_;
  std::unique_ptr<TcpTransport> local_;  // the ranks of this host
  std::unique_ptr<TcpTransport> cross_;  // the ranks of this local rank, one per host
  std::unique_ptr<ShmAllReducer> shm_;   // over local_
  RingScratch local_scratch_, cross_scratch_;
  const int hosts_, local_size_, local_rank_;
};

}  // namespace tandem::collective
