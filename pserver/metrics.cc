#include "pserver/metrics.h"

namespace tandem::pserver {

PServerMetrics& PServerMetrics::Get() {
  static PServerMetrics* m = [] {
    auto* m = new PServerMetrics();
    auto& r = metrics::Registry::Default();
    const char* sides[] = {"server", "client"};
    const char* kinds[] = {"dense", "sparse"};
    const char* ops[] = {"pull", "push"};
    auto& pull = r.AddHistogram("tandem_pserver_pull_latency_seconds",
                                "Pull latency (server: handling; client: end to end, all shards).",
                                {"side", "kind"}, metrics::LatencyBuckets());
    auto& push = r.AddHistogram("tandem_pserver_push_latency_seconds",
                                "Push latency (server: handling; client: end to end, all shards).",
                                {"side", "kind"}, metrics::LatencyBuckets());
    auto& rows = r.AddCounter("tandem_pserver_rows_total", "Sparse rows (dense: blocks) moved.",
                              {"side", "op"});
    auto& bytes = r.AddCounter("tandem_pserver_bytes_total",
                               "Parameter and gradient payload bytes moved.", {"side", "op"});
    for (int s = 0; s < 2; ++s) {
      for (int k = 0; k < 2; ++k) {
        m->pull_latency[s][k] = pull.WithLabels({sides[s], kinds[k]});
        m->push_latency[s][k] = push.WithLabels({sides[s], kinds[k]});
      }
      for (int o = 0; o < 2; ++o) {
        m->rows[s][o] = rows.WithLabels({sides[s], ops[o]});
        m->bytes[s][o] = bytes.WithLabels({sides[s], ops[o]});
      }
    }
    m->stale_dropped = r.AddCounter("tandem_pserver_stale_gradients_dropped_total",
                                    "Async pushes dropped because their parameters were more "
                                    "than `staleness` versions old.")
                           .Get();
    m->ignored_pushes = r.AddCounter("tandem_pserver_ignored_pushes_total",
                                     "Sync pushes ignored: repeated, or for a step already "
                                     "applied or lost.")
                            .Get();
    m->checkpoint_duration = r.AddHistogram("tandem_pserver_checkpoint_duration_seconds",
                                            "Time to snapshot and write one shard checkpoint.", {},
                                            metrics::LatencyBuckets())
                                 .Get();
    auto& ckpts =
        r.AddCounter("tandem_pserver_checkpoints_total", "Shard checkpoints written.", {"result"});
    m->checkpoints_ok = ckpts.WithLabels({"ok"});
    m->checkpoints_failed = ckpts.WithLabels({"error"});
    auto& rejected = r.AddCounter("tandem_pserver_rejected_requests_total",
                                  "Requests refused before reaching the shard.", {"reason"});
    m->rejected_unauthenticated = rejected.WithLabels({"unauthenticated"});
    m->rejected_invalid = rejected.WithLabels({"invalid_argument"});
    m->rejected_other = rejected.WithLabels({"other"});
    auto& tls_rejected = r.AddCounter("tandem_pserver_tls_rejected_peers_total",
                                      "TLS handshakes refused: the peer's certificate does not "
                                      "chain to this job's CA (another job's, or expired).",
                                      {"side"});
    for (int s = 0; s < 2; ++s) m->tls_rejected_peers[s] = tls_rejected.WithLabels({sides[s]});
    m->version = r.AddGauge("tandem_pserver_version",
                            "Shard version: the next sync step to apply (async: 1 + newest step).")
                     .Get();
    m->steps_lost =
        r.AddGauge("tandem_pserver_steps_lost", "Steps whose updates this shard lost to restarts.")
            .Get();
    m->rollbacks = r.AddCounter("tandem_pserver_rollbacks_total",
                                "Times this shard was rolled back to the trainers' consistent "
                                "checkpoint (a trainer or a shard restarted).")
                       .Get();
    m->aborted_steps = r.AddCounter("tandem_pserver_aborted_steps_total",
                                    "Steps in flight aborted because a trainer restarted.")
                           .Get();
    auto& reshards = r.AddCounter("tandem_pserver_reshards_total",
                                  "Reshards of an elastic job's shards, by outcome on this shard.",
                                  {"result"});
    m->reshards_committed = reshards.WithLabels({"committed"});
    m->reshards_aborted = reshards.WithLabels({"aborted"});
    auto& moved = r.AddCounter("tandem_pserver_reshard_moved_total",
                               "Sparse rows and dense blocks this shard sent or received at "
                               "reshards.",
                               {"direction"});
    m->reshard_sent = moved.WithLabels({"sent"});
    m->reshard_received = moved.WithLabels({"received"});
    m->layout_epoch = r.AddGauge("tandem_pserver_layout_epoch",
                                 "Membership epoch of the layout this shard serves (elastic jobs; "
                                 "0 for fixed ones).")
                          .Get();
    m->shard_balance = r.AddGauge("tandem_pserver_shard_balance_ratio",
                                  "Max over min rows moved per shard, seen by this client "
                                  "(1 is perfect; Paddle's guard was 2).")
                           .Get();
    m->client_retries = r.AddCounter("tandem_pserver_client_retries_total",
                                     "RPCs the client retried after a shard was unavailable.")
                            .Get();
    m->client_steps_lost = r.AddGauge("tandem_pserver_client_steps_lost",
                                      "Largest number of steps any shard reported lost.")
                               .Get();
    return m;
  }();
  return *m;
}

}  // namespace tandem::pserver
