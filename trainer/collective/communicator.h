// Communicator: the collective operations a data-parallel trainer needs, over a ring of ranks.
//
//   TANDEM_ASSIGN_OR_RETURN(auto comm, Communicator::ConnectWorker(contract, env));
//   TANDEM_RETURN_IF_ERROR(comm->Broadcast(weights, bytes, /*root=*/0));   // same start
//   ...
//   absl::Status s = comm->AllReduce(grads, n, ReduceOp::kAverage);
//   if (!s.ok()) return ExitCodeFor(s);   // 75 when a peer died or stalled: restart me
//
// Every rank must issue the same operations in the same order (checked on the wire: a mismatch
// fails with an error naming the neighbour). After any failure the communicator stays failed and
// every later call returns the same error; build a new one (a new process) to continue.
// Thread-safety: operations may be called from any thread; they run one at a time.
#pragma once

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "api/worker_contract.h"
#include "common/environment.h"
#include "common/metrics.h"
#include "trainer/collective/hierarchical_allreduce.h"
#include "trainer/collective/peer_list.h"
#include "trainer/collective/ring_collectives.h"
#include "trainer/collective/shm_allreduce.h"
#include "trainer/collective/tcp_transport.h"

namespace tandem::collective {

struct CommunicatorOptions {
  TcpTransportOptions transport;
  RingOptions ring;
  // All-reduce through shared memory when every rank is on this host (see ShmAllReducer).
  ShmOptions shm;
  // Where tandem_collective_* metrics go (labelled with the rank); nullptr: not exported.
  metrics::Registry* registry = &metrics::Registry::Default();
};

// Defaults, overridden by the tuning variables of `env` (the main's ProcessEnvironment()); `job_id`
// is checked at rendezvous (the worker contract's job name). TANDEM_COLLECTIVE_TIMEOUT_S (peer_timeout; op_timeout is 10x; default 30),
// TANDEM_COLLECTIVE_RENDEZVOUS_TIMEOUT_S (default 300), TANDEM_COLLECTIVE_CHANNELS (default 4),
// TANDEM_COLLECTIVE_CHUNK_KIB (default 512), TANDEM_COLLECTIVE_SOCKET_BUFFER_KIB (default 1024; 0: autotuning),
// TANDEM_COLLECTIVE_SHM (1/0, true/false, on/off; default 1: shared memory between ranks of one
// host), TANDEM_COLLECTIVE_SHM_SLOT_KIB (default 512).
absl::StatusOr<CommunicatorOptions> CommunicatorOptionsFromEnv(const Environment& env,
                                                               const std::string& job_id = "");

class Communicator {
 public:
  // Rendezvous with the peers (see TcpTransport), then, unless options.shm.enabled is false on any
  // rank, negotiate the shared-memory all-reduce. `listener`: optionally pre-bound (tests).
  static absl::StatusOr<std::unique_ptr<Communicator>> Connect(const CommunicatorOptions& options,
                                                               const PeerList& peers,
                                                               Listener listener = {});
  // A trainer process: Connect() to the peers of its worker contract (api/worker_contract.h),
  // with the options of CommunicatorOptionsFromEnv(env, contract.job_name) and `registry`.
  static absl::StatusOr<std::unique_ptr<Communicator>> ConnectWorker(
      const api::WorkerContract& contract, const Environment& env,
      metrics::Registry* registry = &metrics::Registry::Default());
  // Any transport (tests, other wires); all-reduce runs over it (no shared memory).
  Communicator(const CommunicatorOptions& options, std::unique_ptr<Transport> transport);
  ~Communicator();

  int rank() const { return transport_->rank(); }
  int world_size() const { return transport_->world_size(); }

  // In-place sum (or average) of `count` floats across all ranks. With Compression::kBf16 the
  // values travel as bf16 (half the bytes; about 3 significant digits per hop) and every rank
  // ends with bit-identical results.
  absl::Status AllReduce(float* data, size_t count, ReduceOp op = ReduceOp::kSum,
                         Compression compression = Compression::kNone);
  // Copies `bytes` bytes of `root`'s `data` to every rank's `data`.
  absl::Status Broadcast(void* data, size_t bytes, int root);
  // Returns when every rank has called Barrier() (through shared memory when all-reduce is).
  absl::Status Barrier();

  // OK, or the failure that ended this communicator.
  absl::Status health() const { return transport_->health(); }
  Transport& transport() { return *transport_; }

  // "shm" when all-reduce runs through shared memory (every rank on this host), "hierarchical"
  // when shared memory inside each host and TCP rings across hosts (ShmHierarchicalAllReducer),
  // else "tcp" (the transport's wire).
  const char* allreduce_transport() const { return shm_ ? "shm" : hier_ ? "hierarchical" : "tcp"; }
  // The /dev/shm name of the segment (already unlinked), "" without shared memory.
  std::string shared_memory_segment() const { return shm_ ? shm_->segment_name() : ""; }

 private:
  absl::Status SetUpSharedMemory();
  absl::Status SetUpHierarchy(const PeerList& peers);
  // wire: 0 tcp, 1 shm, 2 hierarchical (the transport label of the all-reduce series).
  void Record(const char* op, size_t payload_bytes, double seconds, const OpStats& stats,
              const absl::Status& status, int wire = 0);

  const CommunicatorOptions options_;
  std::unique_ptr<Transport> transport_;
  absl::Mutex op_mu_;          // one operation at a time
  RingScratch scratch_ ABSL_GUARDED_BY(op_mu_);
  std::unique_ptr<ShmAllReducer> shm_;  // set once by Connect, before any operation
  std::unique_ptr<ShmHierarchicalAllReducer> hier_;  // likewise; only without shm_
  struct Metrics;
  std::unique_ptr<Metrics> metrics_;
};

}  // namespace tandem::collective
