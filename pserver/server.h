// PServer: one shard served over gRPC, with token authentication, request limits, metrics and
// scheduled checkpoints.
//
//   PServerOptions o;
//   o.shard = {.shard = 0, .num_shards = 2, .num_trainers = 2};
//   o.port = 0;                          // pick a free port
//   o.token = "secret";
//   o.checkpoint_dir = "/ckpt";          // restores the newest checkpoint of this shard, if any
//   TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<PServer> ps, PServer::Start(o));
//   ... ps->port() ...
//   ps->Stop(/*final_checkpoint=*/true); // what SIGTERM does
//
// Every RPC must carry metadata `authorization: Bearer <token>` (UNAUTHENTICATED otherwise) when
// a token is set. With `tls` the port speaks mutual TLS only (pserver/tls_credentials.h): a client
// must present a certificate of the job's CA; then the token is optional (checked when set).
// A request larger than max_request_bytes is answered INVALID_ARGUMENT; the transport refuses
// messages beyond max_request_bytes + 1 MiB outright (RESOURCE_EXHAUSTED) without reading them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/job_certificates.h"
#include "pserver/shard.h"
#include "pserver/shard_checkpoint.h"

namespace grpc {
class Server;
}

namespace tandem::pserver {

struct PServerOptions {
  ShardOptions shard;
  std::string host = "0.0.0.0";
  int port = 0;  // 0: pick a free port (see PServer::port())
  // The job's shared secret. REQUIRES: not empty unless `tls` is set.
  std::string token;
  // Mutual TLS with the job's certificates (none: plaintext). The files are re-read every
  // `tls_reload_interval` (rotation).
  tls::TlsFiles tls;
  absl::Duration tls_reload_interval = absl::Seconds(60);
  // Checkpoints: none when empty. Written every `checkpoint_interval` versions (0: only on
  // request and at Stop(true)); the newest `checkpoint_keep` are kept.
  std::string checkpoint_dir;
  uint64_t checkpoint_interval = 0;
  int checkpoint_keep = 3;
  // Published models (docs/serving.md): where rank 0 assembles snapshots that this shard writes
  // its tables into (Publish RPC); empty: the RPC is refused (FAILED_PRECONDITION).
  std::string publish_dir;
  size_t max_request_bytes = size_t{64} << 20;
  // Longest a StepBarrier waits before DEADLINE_EXCEEDED (the client then retries).
  absl::Duration barrier_timeout = absl::Seconds(30);
};

class PServer {
 public:
  // Restores the newest checkpoint (if any), then listens. Errors: unreadable checkpoints, a
  // checkpoint of another layout, a port that cannot be bound.
  static absl::StatusOr<std::unique_ptr<PServer>> Start(const PServerOptions& options);
  ~PServer();

  int port() const { return port_; }
  Shard& shard() { return *shard_; }

  // Writes a checkpoint now; returns its path. FAILED_PRECONDITION without a checkpoint_dir.
  absl::StatusOr<std::string> CheckpointNow();
  uint64_t last_checkpoint_version() const;
  // The trainers' consistent checkpoint of `step` (see CheckpointRequest); idempotent per step.
  absl::Status CheckpointAtStep(uint64_t step, CheckpointResponse* resp);
  // Rolls the shard back to its checkpoint of req.step (see RestoreRequest).
  absl::Status RestoreToStep(const RestoreRequest& req, RestoreResponse* resp);
  // Checkpoint files held, ascending.
  std::vector<uint64_t> CheckpointSteps() const;
  // Writes the shard's tables into the snapshot directory `req.snapshot` under publish_dir (see
  // PublishRequest). INVALID_ARGUMENT for a name that is not a staging directory's.
  absl::Status Publish(const PublishRequest& req, PublishResponse* resp);

  // Resharding (proto/pserver.proto "Resharding"): sends the rows and blocks the new layout of
  // `epoch` puts on other shards to them (ReshardReceive, authenticated as every call: the job
  // token and, with `tls`, the job's certificate), in parallel per receiving shard.
  absl::Status SendReshard(uint64_t epoch, ReshardSendResponse* resp);

  // Stops serving (in-flight calls finish, waiting barriers fail UNAVAILABLE), then writes a
  // final checkpoint when asked and a directory is set. Idempotent.
  absl::Status Stop(bool final_checkpoint);

 private:
  class Service;
  explicit PServer(const PServerOptions& options);
  void CheckpointLoop();

  const PServerOptions options_;
  std::unique_ptr<Shard> shard_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ShardCheckpointer> checkpointer_;
  int port_ = 0;

  absl::Mutex checkpoint_mu_;  // serialises checkpoint writes
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  uint64_t seen_version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_checkpoint_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool has_checkpoint_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_cut_step_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_cut_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_cut_path_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread checkpoint_thread_;
};

}  // namespace tandem::pserver
