// TCP sockets for every component: an owned descriptor, a listener, connect, exact-size I/O and
// waits with deadlines, free loopback ports. The collective's TCP transport and rendezvous, the
// operator's metrics scraper, `tandem run` and the tests use these; nothing else opens sockets by
// hand (the HTTP server keeps its own dual-stack listen; gRPC and cpprestsdk bring their own).
// Collective algorithms never see sockets: they talk to a Transport (trainer/collective).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem::net {

using Clock = std::chrono::steady_clock;

// An owned file descriptor; closes on destruction. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A listening TCP socket. Bind before the peer list is final to reserve a port (port 0 picks a
// free one; tests use that).
class Listener {
 public:
  // Binds `bind_host:port` (SO_REUSEADDR). "" or "0.0.0.0" means every IPv4 interface.
  static absl::StatusOr<Listener> Bind(const std::string& bind_host, int port);
  Listener() = default;
  Listener(Listener&&) = default;
  Listener& operator=(Listener&&) = default;

  int port() const { return port_; }
  bool valid() const { return fd_.valid(); }
  // Waits until `deadline` for one connection. DeadlineExceeded when none came.
  absl::StatusOr<Fd> Accept(Clock::time_point deadline);

 private:
  Fd fd_;
  int port_ = 0;
};

// One attempt to connect to host:port (blocking connect with a deadline).
absl::StatusOr<Fd> ConnectOnce(const std::string& host, int port, Clock::time_point deadline);

struct SocketTuning {
  int buffer_bytes = 0;  // SO_SNDBUF/SO_RCVBUF; 0 keeps the kernel's autotuning
  bool no_delay = false; // TCP_NODELAY
};
absl::Status TuneSocket(int fd, const SocketTuning& tuning);
absl::Status SetNonBlocking(int fd, bool on);

// Blocking exact-size I/O on a blocking or non-blocking socket, bounded by `deadline`.
// Errors: DeadlineExceeded, Unavailable (closed/reset), with `what` in the message.
absl::Status WriteFully(int fd, const void* data, size_t n, Clock::time_point deadline,
                        const std::string& what);
absl::Status ReadFully(int fd, void* data, size_t n, Clock::time_point deadline,
                       const std::string& what);

// Milliseconds from now to `deadline`, clamped to [0, INT_MAX].
int MillisUntil(Clock::time_point deadline);

// Waits until `fd` is ready for `events` (POLLIN, POLLOUT) or `deadline` passes:
// DeadlineExceeded "timed out <what>", or Unavailable with the poll error.
absl::Status WaitReady(int fd, short events, Clock::time_point deadline, const std::string& what);

// The ports PickFreeLoopbackPorts chooses from: [begin, end), [20000, 30000) cut at the start of
// the kernel's ephemeral range (kEphemeralPortRangeFile); {0, 0} when under 1000 ports remain,
// and the kernel then picks (bind to port 0).
struct PortRange {
  int begin = 0;
  int end = 0;
};
inline constexpr char kEphemeralPortRangeFile[] = "/proc/sys/net/ipv4/ip_local_port_range";
PortRange PickablePortRange();

// `n` distinct TCP ports, each free on every local address when chosen (bound to 0.0.0.0 without
// SO_REUSEADDR; all are held until every port is picked, then closed), drawn at random from
// PickablePortRange(). That range lies below the ephemeral ports, so no other process's bind(0)
// or outgoing connection takes a port between this call and its user's bind; only a process
// that picks fixed ports could. ResourceExhausted when the range has no free port left.
absl::StatusOr<std::vector<int>> PickFreeLoopbackPorts(int n);

}  // namespace tandem::net
