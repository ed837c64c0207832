// The pserver's Prometheus metrics (tandem_pserver_*), shared by the server and the client
// library (label side="server" or side="client"). Registered once in the default registry;
// pointers are resolved once and stay valid, so hot paths only do atomic adds.
#pragma once

#include "common/metrics.h"

namespace tandem::pserver {

struct PServerMetrics {
  // side x kind (dense, sparse)
  metrics::Histogram* pull_latency[2][2];
  metrics::Histogram* push_latency[2][2];
  // side x op (pull, push): sparse rows (dense: blocks) and payload bytes
  metrics::Counter* rows[2][2];
  metrics::Counter* bytes[2][2];
  metrics::Counter* stale_dropped;
  metrics::Counter* ignored_pushes;
  metrics::Histogram* checkpoint_duration;
  metrics::Counter* checkpoints_ok;
  metrics::Counter* checkpoints_failed;
  metrics::Counter* rejected_unauthenticated;
  metrics::Counter* rejected_invalid;
  metrics::Counter* rejected_other;
  // side: TLS peers refused because their certificate does not chain to the job's CA (another
  // job's certificate, a self-made one, an expired one)
  metrics::Counter* tls_rejected_peers[2];
  metrics::Gauge* version;
  metrics::Gauge* steps_lost;
  metrics::Counter* rollbacks;       // RestoreToStep calls that replaced the shard's state
  metrics::Counter* aborted_steps;   // steps in flight aborted because a trainer re-joined
  // Resharding (elastic jobs): reshards this shard committed / aborted, rows and dense blocks it
  // sent and received, and the membership epoch of the layout it serves.
  metrics::Counter* reshards_committed;
  metrics::Counter* reshards_aborted;
  metrics::Counter* reshard_sent;
  metrics::Counter* reshard_received;
  metrics::Gauge* layout_epoch;
  // client side
  metrics::Gauge* shard_balance;  // max/min rows moved per shard, from the client's view
  metrics::Counter* client_retries;
  metrics::Gauge* client_steps_lost;

  static constexpr int kServer = 0, kClient = 1;
  static constexpr int kDense = 0, kSparse = 1;
  static constexpr int kPull = 0, kPush = 1;

  static PServerMetrics& Get();
};

}  // namespace tandem::pserver
