// common/socket.h over real loopback sockets: free ports, listen/accept/connect, exact-size I/O,
// and the deadlines of each wait.
#include "common/socket.h"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace tandem::net {
namespace {

Clock::time_point In(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(seconds));
}

TEST(PickFreeLoopbackPortsTest, DistinctPorts) {
  auto ports = PickFreeLoopbackPorts(16);
  ASSERT_TRUE(ports.ok()) << ports.status();
  std::set<int> unique(ports->begin(), ports->end());
  EXPECT_EQ(unique.size(), 16u);
  for (int p : *ports) EXPECT_GT(p, 0);
}

TEST(PickFreeLoopbackPortsTest, BelowTheEphemeralRangeAndFreeOnEveryAddress) {
  const PortRange range = PickablePortRange();
  int ephemeral_lo = 0, ephemeral_hi = 0;
  std::ifstream(kEphemeralPortRangeFile) >> ephemeral_lo >> ephemeral_hi;
  if (ephemeral_lo > 21000) {
    EXPECT_EQ(range.begin, 20000);
    EXPECT_EQ(range.end, std::min(30000, ephemeral_lo));
  }
  auto ports = PickFreeLoopbackPorts(8);
  ASSERT_TRUE(ports.ok()) << ports.status();
  for (int p : *ports) {
    if (range.end > range.begin) {
      EXPECT_GE(p, range.begin);
      EXPECT_LT(p, range.end);
    }
    // Released on return, and free on 0.0.0.0 too (the metrics endpoints bind there).
    auto listener = Listener::Bind("0.0.0.0", p);
    EXPECT_TRUE(listener.ok()) << "port " << p << ": " << listener.status();
  }
}

TEST(PickFreeLoopbackPortsTest, NeverPicksAPortInUse) {
  // Occupy a tenth of the range on loopback; 200 picks must avoid every one of them.
  const PortRange range = PickablePortRange();
  if (range.end <= range.begin) GTEST_SKIP() << "the kernel picks the ports on this machine";
  std::vector<Listener> busy;
  std::set<int> busy_ports;
  for (int p = range.begin; p < range.end; p += 10) {
    auto l = Listener::Bind("127.0.0.1", p);
    if (l.ok()) {
      busy.push_back(*std::move(l));
      busy_ports.insert(p);
    }
  }
  ASSERT_GT(busy_ports.size(), 100u);
  for (int round = 0; round < 25; ++round) {
    auto ports = PickFreeLoopbackPorts(8);
    ASSERT_TRUE(ports.ok()) << ports.status();
    for (int p : *ports) EXPECT_EQ(busy_ports.count(p), 0u) << "picked busy port " << p;
  }
}

TEST(SocketTest, ConnectAcceptAndExactSizeIo) {
  auto listener = Listener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_GT(listener->port(), 0);
  std::string received(11, '\0');
  absl::Status server_status;
  std::thread server([&] {
    auto conn = listener->Accept(In(10));
    if (!conn.ok()) {
      server_status = conn.status();
      return;
    }
    server_status = ReadFully(conn->get(), received.data(), received.size(), In(10), "server");
    if (server_status.ok()) server_status = WriteFully(conn->get(), "ok", 2, In(10), "server");
  });
  auto client = ConnectOnce("127.0.0.1", listener->port(), In(10));
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(TuneSocket(client->get(), {.no_delay = true}).ok());
  EXPECT_TRUE(WriteFully(client->get(), "hello world", 11, In(10), "client").ok());
  char reply[2];
  EXPECT_TRUE(ReadFully(client->get(), reply, 2, In(10), "client").ok());
  server.join();
  EXPECT_TRUE(server_status.ok()) << server_status;
  EXPECT_EQ(received, "hello world");
  EXPECT_EQ(std::string(reply, 2), "ok");
  // The peer closed: a read now fails as Unavailable and names who read.
  char more;
  absl::Status closed = ReadFully(client->get(), &more, 1, In(10), "client");
  EXPECT_EQ(closed.code(), absl::StatusCode::kUnavailable) << closed;
  EXPECT_NE(closed.message().find("client"), std::string::npos) << closed;
}

TEST(SocketTest, WaitsEndAtTheirDeadline) {
  auto listener = Listener::Bind("127.0.0.1", 0);
  ASSERT_TRUE(listener.ok()) << listener.status();
  EXPECT_EQ(listener->Accept(In(0.05)).status().code(), absl::StatusCode::kDeadlineExceeded);
  auto client = ConnectOnce("127.0.0.1", listener->port(), In(10));  // queued, never accepted
  ASSERT_TRUE(client.ok()) << client.status();
  absl::Status idle = WaitReady(client->get(), POLLIN, In(0.05), "waiting for a reply");
  EXPECT_EQ(idle.code(), absl::StatusCode::kDeadlineExceeded) << idle;
  EXPECT_NE(idle.message().find("waiting for a reply"), std::string::npos) << idle;
  char byte;
  EXPECT_EQ(ReadFully(client->get(), &byte, 1, In(0.05), "reply").code(),
            absl::StatusCode::kDeadlineExceeded);
}

// (No name lookups here: a resolver query would leave the machine.)
TEST(SocketTest, ARefusedConnectIsUnavailable) {
  auto ports = PickFreeLoopbackPorts(1);
  ASSERT_TRUE(ports.ok()) << ports.status();
  EXPECT_EQ(ConnectOnce("127.0.0.1", (*ports)[0], In(5)).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tandem::net
