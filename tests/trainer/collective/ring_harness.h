// Runs N ranks as N threads over real loopback TCP: each rank binds 127.0.0.1:0 first, so the
// peer list is known before anyone connects and no port can be stolen.
#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "trainer/collective/communicator.h"

namespace tandem::collective::testing {

inline CommunicatorOptions FastOptions() {
  CommunicatorOptions o;
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
      result[rank] = body(rank, **comm);
    });
  }
  for (auto& t : threads) t.join();
  return result;
}

}  // namespace tandem::collective::testing
