// ShmAllReducer: all-reduce through one POSIX shared-memory segment, for ranks that share a host
// (as under `tandem run`). The communicator negotiates it over the TCP ring at start-up and then
// routes AllReduce and Barrier here; broadcast stays on TCP, and the TCP connections stay up as the
// liveness channel (a neighbour's EOF or silent heartbeat fails the transport, which wakes every
// rank waiting in the segment).
//
// Segment: a header, one control block per rank (sequence counters staged/reduced/consumed, the
// running operation's descriptor, a sleeper count) and two staging slots per rank of
// `slot_bytes` each, independent of the tensor size: n * 2 * slot_bytes plus a few KiB.
//
// Algorithm (N ranks, rank j): the tensor is cut into rounds of N slices of S elements
// (S = slot_bytes / (N * element size)); slice i of every round belongs to rank i. Per round:
//   stage   j copies its N-1 foreign slices into its slot (its own slice stays in its buffer);
//   reduce  j adds slice j of every other rank's slot straight into its own buffer (in cache),
//           applies the average / bf16 rounding, and publishes the result in the hole of its slot;
//   gather  j copies every other rank's published slice i into its buffer.
// Slots alternate between rounds, so a rank stages round r+1 while slower ranks still read round
// r. Each rank writes (N-1)S + S and reads 2(N-1)S elements of the segment per round.
// Waiting: a rank spins briefly on a counter when ranks <= online CPUs, then sleeps on it with
// FUTEX_WAIT (shared, not private: the words live in a shared mapping) in slices of 50 ms, checking
// the transport's health and the operation timeout between slices.
//
// Barrier: each rank bumps its own counter and waits until every other rank's has reached it.
//
// Thread-safety: AllReduce and Barrier run one at a time (the communicator serialises operations); Abort may
// be called from any thread (the transport's failure hook).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/collective/ring_collectives.h"
#include "trainer/collective/shm_segment.h"
#include "trainer/collective/transport.h"

namespace tandem::collective {

struct ShmOptions {
  // Use shared memory when every rank is on this host and can map the segment. Every rank must
  // agree; one rank that opts out (TANDEM_COLLECTIVE_SHM=0) puts the whole ring on TCP.
  bool enabled = true;
  // Staging slot per rank and buffer (two per rank). Rank 0's value is used by all. The default
  // keeps one rank's working set of a round (its slice plus the peers' copies) in L2.
  size_t slot_bytes = 512 << 10;
  // The host this rank runs on as its producer placed it (the worker contract's TANDEM_HOST):
  // ranks share memory only when their fingerprints (boot id, host name) and these agree, so
  // ranks placed on different hosts of one kernel (network namespaces) stay on TCP. "": the
  // machine's fingerprint alone.
  std::string host;
};

// The identity ranks compare to decide that they share a host: the machine's fingerprint
// (HostFingerprint) plus `options.host` when set.
std::string ShmHostIdentity(const ShmOptions& options);

class ShmAllReducer {
 public:
  // Collective over `t` (a broadcast from rank 0, then a vote): returns a reducer when every rank
  // is on this host, wants shared memory and mapped the segment rank 0 created; nullptr (TCP only)
  // otherwise, with the reason logged. The segment is unlinked before this returns on every rank,
  // so nothing is left in /dev/shm whatever happens later. Errors are the ring's (a peer died).
  static absl::StatusOr<std::unique_ptr<ShmAllReducer>> Negotiate(Transport& t,
                                                                  const RingOptions& ring,
                                                                  RingScratch& scratch,
                                                                  const ShmOptions& options);
  ~ShmAllReducer();

  // Same contract as RingAllReduce (sum/average, bf16 staging with bit-identical results).
  absl::Status AllReduce(Transport& t, const RingOptions& o, RingScratch& s, float* data,
                         size_t count, ReduceOp op, Compression compression, OpStats* stats);

  // Returns once every rank has entered Barrier (one counter per rank; no data moves).
  absl::Status Barrier(Transport& t, const RingOptions& o, RingScratch& s, OpStats* stats);

  // Marks the segment failed and wakes every rank sleeping on it. Any thread, idempotent.
  void Abort();

  const std::string& segment_name() const { return segment_.name(); }
  size_t segment_bytes() const { return segment_.size(); }

  // The segment's layout (defined in the .cc).
  struct Header;
  struct Control;

 private:
  enum Word { kStaged = 0, kReduced = 1, kConsumed = 2, kBarrier = 3 };

  ShmAllReducer(SharedSegment segment, int rank, int world_size, size_t slot_bytes);
  Header* header() const;
  Control* control(int rank) const;
  char* slot(int rank, uint32_t round) const;
  void Publish(Word w, uint32_t value);
  // Blocks until control(peer)->word[w] >= target (mod 2^32). Errors: the transport's failure,
  // the segment's abort, or DeadlineExceeded after op_timeout without progress.
  absl::Status WaitFor(Transport& t, const RingOptions& o, int peer, Word w, uint32_t target,
                       OpStats* stats);
  absl::Status Aborted(Transport& t);

  SharedSegment segment_;
  const int rank_, n_;
  const size_t slot_bytes_;
  size_t data_offset_ = 0;
  bool spin_ = false;
  uint32_t round_ = 0;     // rounds completed by this communicator; equal on every rank
  uint32_t barriers_ = 0;  // barriers entered; equal on every rank
};

}  // namespace tandem::collective
