// Runs N ranks as N threads over real loopback TCP: each rank binds 127.0.0.1:0 first, so the
// peer list is known before anyone connects and no port can be stolen.
#pragma once

#include <functional>
#include <string>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "trainer/collective/communicator.h"

namespace tandem::collective::testing {

// Which wire all-reduce runs over: the TCP ring, or shared memory (every rank of a test shares
// this host). Tests of the correctness matrix and of faults run on both.
enum class Wire { kTcp, kShm };
inline const char* WireName(Wire w) { return w == Wire::kShm ? "shm" : "tcp"; }

inline CommunicatorOptions FastOptions(Wire wire = Wire::kTcp) {
  CommunicatorOptions o;
  o.shm.enabled = wire == Wire::kShm;
  o.transport.rendezvous_timeout = std::chrono::seconds(20);
  o.transport.peer_timeout = std::chrono::seconds(5);
  o.transport.socket_buffer_bytes = 256 << 10;
  o.ring.op_timeout = std::chrono::seconds(30);
  o.registry = nullptr;
  return o;
}

struct Ring {
  std::vector<Listener> listeners;
  std::vector<PeerEndpoint> endpoints;
};

inline Ring BindRing(int n) {
  Ring r;
  for (int i = 0; i < n; ++i) {
    auto l = Listener::Bind("127.0.0.1", 0);
    EXPECT_TRUE(l.ok()) << l.status();
    r.endpoints.push_back({"127.0.0.1", l->port()});
    r.listeners.push_back(*std::move(l));
  }
  return r;
}

// Connects N communicators (in parallel) and runs `body(rank, comm)` on each rank's thread.
// Returns each rank's status (the connect error, or body's result).
inline std::vector<absl::Status> RunRanks(
    int n, const CommunicatorOptions& options,
    const std::function<absl::Status(int, Communicator&)>& body,
    const std::function<void(int)>& before_connect = nullptr) {
  Ring ring = BindRing(n);
  std::vector<absl::Status> result(n);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < n; ++rank) {
    threads.emplace_back([&, rank] {
      if (before_connect) before_connect(rank);
      auto peers = MakePeerList(ring.endpoints, rank, n);
      if (!peers.ok()) {
        result[rank] = peers.status();
        return;
      }
      auto comm = Communicator::Connect(options, *peers, std::move(ring.listeners[rank]));
      if (!comm.ok()) {
        result[rank] = comm.status();
        return;
      }
      // Shared memory is used exactly when asked for (and there is someone to share with).
      const char* want = options.shm.enabled && n > 1 ? "shm" : "tcp";
      if (std::string((*comm)->allreduce_transport()) != want) {
        result[rank] = absl::InternalError(std::string("all-reduce runs over ") +
                                           (*comm)->allreduce_transport() + ", expected " + want);
        return;
      }
      result[rank] = body(rank, **comm);
    });
  }
  for (auto& t : threads) t.join();
  return result;
}

}  // namespace tandem::collective::testing
