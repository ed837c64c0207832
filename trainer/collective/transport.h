// The seam between collective algorithms and the wire, in Gloo's spirit: an algorithm sees its two
// ring neighbours as `channels()` ordered byte streams to the right (rank+1) and from the left
// (rank-1), never sockets. TcpTransport implements it over TCP; a shared-memory or RDMA transport
// would implement the same five calls.
//
// Thread-safety: SendSome/RecvSome/Wait are called by one thread at a time (the communicator
// serialises operations); health/Fail/Describe may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem::collective {

class Transport {
 public:
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Parallel ordered streams per neighbour (>= 1 when world_size() > 1). REQUIRES: <= 64.
  virtual int channels() const = 0;

  // Non-blocking: moves up to `n` bytes on channel `ch` to the right neighbour. Returns how many
  // bytes moved; 0 means "would block". Errors (the peer closed, reset) name the peer.
  virtual absl::StatusOr<size_t> SendSome(int ch, const void* data, size_t n) = 0;
  // Non-blocking: moves up to `n` bytes from channel `ch` of the left neighbour.
  virtual absl::StatusOr<size_t> RecvSome(int ch, void* data, size_t n) = 0;

  // Blocks up to `max_wait` until a channel whose bit is set in `send_mask` / `recv_mask` can make
  // progress. Returns the transport's failure as soon as it has failed (a neighbour died, timed
  // out, or a rank anywhere in the ring reported a failure).
  virtual absl::Status Wait(uint64_t send_mask, uint64_t recv_mask,
                            std::chrono::milliseconds max_wait) = 0;

  // OK while healthy; afterwards the first failure, for good.
  virtual absl::Status health() const = 0;

  // Declares the transport failed because of `why` (which names the peer at fault), tells both
  // neighbours so that every rank learns the cause, and returns the failure that wins: a cause
  // reported by a neighbour first (for example the rank that actually died) beats a local symptom
  // such as "connection closed".
  virtual absl::Status Fail(const absl::Status& why) = 0;

  // "rank 2 (10.0.0.3:7070)": how errors name a peer.
  virtual std::string Describe(int peer_rank) const = 0;

  // `hook` runs once, on whichever thread fails the transport (Fail, or a failure the transport
  // detects itself), right after health() turns non-OK; nullptr removes it. Other wires (shared
  // memory) use it to wake their waiters at once. The default transport has no such event: users
  // must also poll health().
  virtual void SetFailureHook(std::function<void()> hook) { (void)hook; }
};

}  // namespace tandem::collective
