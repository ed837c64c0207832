#include "trainer/collective/communicator.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"

namespace tandem::collective {
namespace {

std::chrono::milliseconds Ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

}  // namespace

absl::StatusOr<CommunicatorOptions> CommunicatorOptionsFromEnv(const Environment& env,
                                                               const std::string& job_id) {
  CommunicatorOptions o;
  o.transport.job_id = job_id;
  double timeout_s = 30, rendezvous_s = 300, channels = o.transport.channels,
         chunk_kib = static_cast<double>(o.ring.chunk_bytes >> 10),
         buffer_kib = o.transport.socket_buffer_bytes >> 10,
         slot_kib = static_cast<double>(o.shm.slot_bytes >> 10);
  TANDEM_RETURN_IF_ERROR(ReadEnvNumber(env, "TANDEM_COLLECTIVE_TIMEOUT_S", &timeout_s));
  TANDEM_RETURN_IF_ERROR(ReadEnvNumber(env, "TANDEM_COLLECTIVE_RENDEZVOUS_TIMEOUT_S", &rendezvous_s));
  TANDEM_RETURN_IF_ERROR(ReadEnvNumber(env, "TANDEM_COLLECTIVE_CHANNELS", &channels));
  TANDEM_RETURN_IF_ERROR(ReadEnvNumber(env, "TANDEM_COLLECTIVE_CHUNK_KIB", &chunk_kib));
  TANDEM_RETURN_IF_ERROR(ReadEnvNumber(env, "TANDEM_COLLECTIVE_SOCKET_BUFFER_KIB", &buffer_kib, true));
  TANDEM_RETURN_IF_ERROR(ReadEnvBool(env, "TANDEM_COLLECTIVE_SHM", &o.shm.enabled));
  TANDEM_RETURN_IF_ERROR(ReadEnvNumber(env, "TANDEM_COLLECTIVE_SHM_SLOT_KIB", &slot_kib));
  if (slot_kib > (1 << 20))
    return absl::InvalidArgumentError("TANDEM_COLLECTIVE_SHM_SLOT_KIB: must be <= 1048576");
  o.shm.slot_bytes = static_cast<size_t>(slot_kib * 1024);
  if (channels > 32)
    return absl::InvalidArgumentError("TANDEM_COLLECTIVE_CHANNELS: must be <= 32");
  o.transport.peer_timeout = Ms(timeout_s);
  o.transport.rendezvous_timeout = Ms(rendezvous_s);
  o.transport.channels = static_cast<int>(channels);
  o.transport.socket_buffer_bytes = static_cast<int>(buffer_kib * 1024);
  o.ring.chunk_bytes = static_cast<size_t>(chunk_kib * 1024);
  o.ring.op_timeout = Ms(timeout_s * 10);
  return o;
}

struct Communicator::Metrics {
  metrics::Histogram* allreduce_seconds = nullptr;
  metrics::Gauge* busbw = nullptr;
  metrics::Counter* peer_wait = nullptr;
  metrics::Counter* bytes[3] = {};
  metrics::Counter* ops[3] = {};
  metrics::Counter* failures = nullptr;
  // [0]: tcp, [1]: shm, [2]: hierarchical
  metrics::Counter* transport_ops[3] = {};
  metrics::Counter* transport_seconds[3] = {};
  metrics::Gauge* shm_active = nullptr;
};

Communicator::Communicator(const CommunicatorOptions& options,
                           std::unique_ptr<Transport> transport)
    : options_(options), transport_(std::move(transport)) {
  if (options_.registry == nullptr) return;
  metrics_ = std::make_unique<Metrics>();
  auto& r = *options_.registry;
  const std::string rank = std::to_string(transport_->rank());
  metrics_->allreduce_seconds =
      r.AddHistogram("tandem_collective_allreduce_seconds",
                     "Wall time of one all-reduce, from the call to the result.", {"rank"},
                     metrics::ExponentialBuckets(50e-6, 2, 20))
          .WithLabels({rank});
  metrics_->busbw = r.AddGauge("tandem_collective_allreduce_bus_bandwidth_bytes_per_second",
                               "Bus bandwidth of the last all-reduce: 2(n-1)/n * bytes / time.",
                               {"rank"})
                        .WithLabels({rank});
  metrics_->peer_wait =
      r.AddCounter("tandem_collective_peer_wait_seconds_total",
                   "Time collectives spent blocked with nothing to send, waiting for a peer's "
                   "data (stragglers, slow links).",
                   {"rank"})
          .WithLabels({rank});
  auto& bytes = r.AddCounter("tandem_collective_sent_bytes_total",
                             "Bytes this rank sent on the wire in collectives.", {"rank", "op"});
  auto& ops = r.AddCounter("tandem_collective_operations_total",
                           "Collective operations completed successfully.", {"rank", "op"});
  const char* names[3] = {"allreduce", "broadcast", "barrier"};
  for (int i = 0; i < 3; ++i) {
    metrics_->bytes[i] = bytes.WithLabels({rank, names[i]});
    metrics_->ops[i] = ops.WithLabels({rank, names[i]});
  }
  metrics_->failures = r.AddCounter("tandem_collective_failures_total",
                                    "Collective operations that failed (peer died, stalled, ...).",
                                    {"rank"})
                           .WithLabels({rank});
  auto& tops = r.AddCounter("tandem_collective_allreduce_transport_operations_total",
                            "All-reduces completed, by the transport that carried them (tcp: the "
                            "ring over sockets; shm: shared memory between ranks of one host; "
                            "hierarchical: shared memory inside hosts, TCP rings across them).",
                            {"rank", "transport"});
  auto& tsec = r.AddCounter("tandem_collective_allreduce_transport_seconds_total",
                            "Wall time of completed all-reduces, by transport.",
                            {"rank", "transport"});
  const char* transports[3] = {"tcp", "shm", "hierarchical"};
  for (int i = 0; i < 3; ++i) {
    metrics_->transport_ops[i] = tops.WithLabels({rank, transports[i]});
    metrics_->transport_seconds[i] = tsec.WithLabels({rank, transports[i]});
  }
  metrics_->shm_active =
      r.AddGauge("tandem_collective_shared_memory_active",
                 "1 when all-reduce runs through shared memory (every rank on this host), else 0.",
                 {"rank"})
          .WithLabels({rank});
}

Communicator::~Communicator() {
  // The transport may fail (and call the hook) until it is destroyed; the segment goes first.
  transport_->SetFailureHook(nullptr);
  hier_.reset();
}

absl::Status Communicator::SetUpSharedMemory() {
  absl::MutexLock lock(&op_mu_);
  auto shm = ShmAllReducer::Negotiate(*transport_, options_.ring, scratch_, options_.shm);
  if (!shm.ok()) return Annotate(shm.status(), "negotiating shared memory");
  shm_ = *std::move(shm);
  scratch_.sequence = 0;  // the user's first operation is #0 on every rank, whatever the wire
  if (metrics_) metrics_->shm_active->Set(shm_ ? 1 : 0);
  if (!shm_) return absl::OkStatus();
  transport_->SetFailureHook([shm = shm_.get()] { shm->Abort(); });
  if (!transport_->health().ok()) shm_->Abort();  // failed before the hook was in place
  return absl::OkStatus();
}

absl::Status Communicator::SetUpHierarchy(const PeerList& peers) {
  absl::MutexLock lock(&op_mu_);
  auto hier = ShmHierarchicalAllReducer::Negotiate(*transport_, peers, options_.transport,
                                                options_.ring, scratch_, options_.shm);
  if (!hier.ok()) return Annotate(hier.status(), "negotiating the hierarchical all-reduce");
  hier_ = *std::move(hier);
  scratch_.sequence = 0;  // as after SetUpSharedMemory: the user's first operation is #0
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Connect(
    const CommunicatorOptions& options, const PeerList& peers, Listener listener) {
  TANDEM_ASSIGN_OR_RETURN(auto transport,
                          TcpTransport::Connect(options.transport, peers, std::move(listener)));
  auto comm = std::make_unique<Communicator>(options, std::move(transport));
  TANDEM_RETURN_IF_ERROR(comm->SetUpSharedMemory());
  if (!comm->shm_) TANDEM_RETURN_IF_ERROR(comm->SetUpHierarchy(peers));
  return comm;
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::ConnectWorker(
    const api::WorkerContract& contract, const Environment& env, metrics::Registry* registry) {
  TANDEM_ASSIGN_OR_RETURN(CommunicatorOptions options, CommunicatorOptionsFromEnv(env, contract.job_name));
  options.registry = registry;
  options.shm.host = contract.host;
  TANDEM_ASSIGN_OR_RETURN(PeerList peers, MakePeerList(contract.peers, contract.rank, contract.world_size));
  return Connect(options, peers);
}

void Communicator::Record(const char* op, size_t payload_bytes, double seconds,
                          const OpStats& stats, const absl::Status& status, int wire) {
  if (!metrics_) return;
  int i = op[0] == 'a' ? 0 : op[1] == 'r' ? 1 : 2;
  metrics_->bytes[i]->Inc(static_cast<double>(stats.bytes_sent));
  metrics_->peer_wait->Inc(stats.wait_seconds);
  if (!status.ok()) {
    metrics_->failures->Inc();
    return;
  }
  metrics_->ops[i]->Inc();
  if (i == 0) {
    metrics_->transport_ops[wire]->Inc();
    metrics_->transport_seconds[wire]->Inc(seconds);
    metrics_->allreduce_seconds->Observe(seconds);
    const int n = world_size();
    if (seconds > 0 && n > 1)
      metrics_->busbw->Set(2.0 * (n - 1) / n * static_cast<double>(payload_bytes) / seconds);
  }
}

absl::Status Communicator::AllReduce(float* data, size_t count, ReduceOp op,
                                     Compression compression) {
  absl::MutexLock lock(&op_mu_);
  OpStats stats;
  const auto start = Clock::now();
  absl::Status s =
      shm_    ? shm_->AllReduce(*transport_, options_.ring, scratch_, data, count, op, compression,
                                &stats)
      : hier_ ? hier_->AllReduce(options_.ring, data, count, op, compression, &stats)
              : RingAllReduce(*transport_, options_.ring, scratch_, data, count, op, compression,
                              &stats);
  Record("allreduce", count * sizeof(float),
         std::chrono::duration<double>(Clock::now() - start).count(), stats, s,
         shm_ ? 1 : hier_ ? 2 : 0);
  return s;
}

absl::Status Communicator::Broadcast(void* data, size_t bytes, int root) {
  absl::MutexLock lock(&op_mu_);
  OpStats stats;
  const auto start = Clock::now();
  absl::Status s = RingBroadcast(*transport_, options_.ring, scratch_, data, bytes, root, &stats);
  Record("broadcast", bytes, std::chrono::duration<double>(Clock::now() - start).count(), stats,
         s);
  return s;
}

absl::Status Communicator::Barrier() {
  absl::MutexLock lock(&op_mu_);
  OpStats stats;
  const auto start = Clock::now();
  absl::Status s = shm_ ? shm_->Barrier(*transport_, options_.ring, scratch_, &stats)
                        : RingBarrier(*transport_, options_.ring, scratch_, &stats);
  Record("barrier", 0, std::chrono::duration<double>(Clock::now() - start).count(), stats, s);
  return s;
}

}  // namespace tandem::collective
