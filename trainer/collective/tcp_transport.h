// TcpTransport: the ring's links over TCP, with rendezvous and failure detection.
//
// Rendezvous: every rank listens on its own endpoint from the peer list, opens `channels` data
// connections plus one control connection to its right neighbour (retrying with back-off while that
// peer is still starting, up to `rendezvous_timeout`), and accepts the same from its left
// neighbour. A hello/ack exchange checks the job id, world size and ranks, so a mis-ordered peer
// list or a stale process of another job is refused with an error naming the endpoint.
//
// Elastic jobs (trainer/engine/elastic_world.h) set `epoch`, their membership's: the hello carries
// it beside the job id, so a peer of the same job on another epoch is told apart from a stranger.
// A rank that hears a NEWER epoch ends its rendezvous at once with NewerEpochError (its membership
// is behind: the caller re-reads it and meets the peer there); a rank that hears an OLDER one
// refuses it with an answer naming its own epoch, which ends the older rank's rendezvous the same
// way. An elastic rank refuses a peer of another job with an answer saying so, and that peer
// fails at once with an error naming the endpoint. An elastic rank whose right neighbour closes the connection
// before answering (it left to join another epoch) dials it again until the deadline.
//
// Failure detection: a monitor thread exchanges heartbeats with both neighbours over the control
// connections (TCP_NODELAY). A neighbour that closes its connections (crash, kill) or stays silent
// for `peer_timeout` (stopped, partitioned) fails the transport with an Unavailable error that
// names it; the failure is forwarded around the ring on the control connections, so every rank
// reports the same culprit within about peer_timeout plus a few milliseconds per hop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/socket.h"
#include "trainer/collective/peer_list.h"
#include "trainer/collective/transport.h"

namespace tandem::collective {

// The sockets the transport is built on (common/socket.h).
using net::Clock;
using net::Fd;
using net::Listener;

struct TcpTransportOptions {
  // Data connections per neighbour and direction; a message's chunks are spread over them.
  int channels = 4;
  // SO_SNDBUF/SO_RCVBUF of data connections; 0 keeps the kernel's autotuning.
  int socket_buffer_bytes = 1 << 20;
  // Address to listen on; "" means every IPv4 interface (the port is the peer list's).
  std::string bind_host;
  // How long to wait for neighbours to come up and connect.
  std::chrono::milliseconds rendezvous_timeout{std::chrono::minutes(5)};
  // A neighbour silent this long (no heartbeat) is declared failed. Heartbeats go every 1/5.
  std::chrono::milliseconds peer_timeout{std::chrono::seconds(30)};
  // Ranks only accept peers presenting the same job id (TANDEM_JOB_NAME).
  std::string job_id;
  // Elastic jobs: the membership epoch this ring is formed for (see the top of this file); -1: a
  // fixed job, whose hellos all carry -1.
  int64_t epoch = -1;
  // Polled about every 100 ms while the rendezvous waits for a neighbour; an error ends the
  // rendezvous with it (elastic start-up: the membership file moved on). Unset: wait until
  // rendezvous_timeout. Called on the thread that called Connect.
  std::function<absl::Status()> keep_waiting;
};

// The rendezvous met a peer of this job at membership epoch `epoch`, newer than this rank's
// (Unavailable, so a trainer that cannot recover from it in place exits 75 and is restarted into
// the current epoch). `message` names the peer.
absl::Status NewerEpochError(int64_t epoch, const std::string& message);
// The newer epoch of a NewerEpochError, annotated or not; nullopt for any other status.
std::optional<int64_t> NewerEpochOf(const absl::Status& status);

class TcpTransport final : public Transport {
 public:
  // Rendezvous with both neighbours. `listener` may be a socket bound in advance (tests bind port
  // 0); when it is not valid, the transport binds peers.endpoints[peers.rank].port itself.
  static absl::StatusOr<std::unique_ptr<TcpTransport>> Connect(const TcpTransportOptions& options,
                                                               const PeerList& peers,
                                                               Listener listener = {});
  ~TcpTransport() override;  // says goodbye to both neighbours, then closes

  int rank() const override { return peers_.rank; }
  int world_size() const override { return peers_.world_size(); }
  int channels() const override { return static_cast<int>(data_out_.size()); }
  absl::StatusOr<size_t> SendSome(int ch, const void* data, size_t n) override;
  absl::StatusOr<size_t> RecvSome(int ch, void* data, size_t n) override;
  absl::Status Wait(uint64_t send_mask, uint64_t recv_mask,
                    std::chrono::milliseconds max_wait) override;
  absl::Status health() const override;
  absl::Status Fail(const absl::Status& why) override;
  std::string Describe(int peer_rank) const override { return peers_.Describe(peer_rank); }
  void SetFailureHook(std::function<void()> hook) override;

  // Testing hooks: simulate a crashed process (every socket closed at once, no goodbye) and a
  // stopped one (heartbeats cease, sockets stay open).
  void CrashForTesting();
  void StopHeartbeatsForTesting() { heartbeats_stopped_.store(true); }

 private:
  TcpTransport(const TcpTransportOptions& options, PeerList peers);
  absl::Status Rendezvous(Listener listener);
  void MonitorLoop();
  void SendControl(int side, uint32_t type, const absl::Status& status);
  int left() const { return (peers_.rank + world_size() - 1) % world_size(); }
  int right() const { return (peers_.rank + 1) % world_size(); }

  const TcpTransportOptions options_;
  const PeerList peers_;
  std::vector<Fd> data_out_;  // to the right neighbour
  std::vector<Fd> data_in_;   // from the left neighbour
  Fd ctrl_[2];                // [0]: with the left neighbour, [1]: with the right neighbour

  mutable absl::Mutex mu_;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> failed_{false};
  absl::Mutex ctrl_write_mu_;  // serialises control records
  std::atomic<bool> stop_{false};
  std::atomic<bool> heartbeats_stopped_{false};
  std::atomic<bool> crashed_{false};
  int wake_fd_ = -1;          // eventfd: wakes Wait() and the monitor on failure/stop
  std::thread monitor_;
  absl::Mutex hook_mu_;
  std::function<void()> failure_hook_ ABSL_GUARDED_BY(hook_mu_);
};

}  // namespace tandem::collective
