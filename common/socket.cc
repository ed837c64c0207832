#include "common/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::net {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) Reset(o.release());
  return *this;
}

void Fd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

int MillisUntil(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (ms < 0) return 0;
  if (ms > INT_MAX) return INT_MAX;
  return static_cast<int>(ms);
}

absl::Status WaitReady(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int ms = MillisUntil(deadline);
    if (ms == 0) return absl::DeadlineExceededError(absl::StrCat("timed out ", what));
    const int n = ::poll(&p, 1, ms);
    if (n > 0) return absl::OkStatus();
    if (n == 0) return absl::DeadlineExceededError(absl::StrCat("timed out ", what));
    if (errno != EINTR) return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
  }
}

namespace {

// Binds a TCP socket to 0.0.0.0:`port` (0: the kernel's choice) without SO_REUSEADDR, so it
// fails while any socket on any local address holds the port, listening or connected.
absl::StatusOr<Fd> BindAnyAddress(int port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoToStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return ErrnoToStatus(errno, absl::StrCat("bind to port ", port));
  return fd;
}

absl::StatusOr<int> BoundPort(const Fd& fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return ErrnoToStatus(errno, "getsockname of a free port");
  return ntohs(addr.sin_port);
}

}  // namespace

PortRange PickablePortRange() {
  // Below the ephemeral range: the kernel hands these ports to no bind(0) and no connect(), so
  // once picked, only another process that picks a fixed port can take one. [20000, 30000)
  // keeps clear of the well-known services (below 10000), the kubelet's 10248-10259 and the
  // NodePort range (30000-32767).
  PortRange r{20000, 30000};
  std::ifstream in(kEphemeralPortRangeFile);
  int lo = 0, hi = 0;
  if (in >> lo >> hi && lo > 0) r.end = std::min(r.end, lo);
  if (r.end - r.begin < 1000) return PortRange{0, 0};  // no room: take the kernel's choice
  return r;
}

absl::StatusOr<std::vector<int>> PickFreeLoopbackPorts(int n) {
  std::vector<Fd> held;  // every picked port stays bound until all are picked: n distinct ports
  std::vector<int> ports;
  const PortRange range = PickablePortRange();
  const int span = range.end - range.begin;
  std::mt19937_64 rng(std::random_device{}() ^ (static_cast<uint64_t>(::getpid()) << 32) ^
                      static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  for (int i = 0; i < n; ++i) {
    if (span <= 0) {
      TANDEM_ASSIGN_OR_RETURN(Fd fd, BindAnyAddress(0));
      TANDEM_ASSIGN_OR_RETURN(int port, BoundPort(fd));
      ports.push_back(port);
      held.push_back(std::move(fd));
      continue;
    }
    // Random candidates, so that two processes picking at the same moment rarely meet.
    bool found = false;
    for (int attempt = 0; attempt < 4 * span && !found; ++attempt) {
      const int port = range.begin + static_cast<int>(rng() % static_cast<uint64_t>(span));
      absl::StatusOr<Fd> fd = BindAnyAddress(port);
      if (!fd.ok()) continue;
      ports.push_back(port);
      held.push_back(*std::move(fd));
      found = true;
    }
    if (!found)
      return absl::ResourceExhaustedError(absl::StrCat("no free TCP port in [", range.begin, ", ",
                                                       range.end, ") after ", 4 * span, " tries"));
  }
  return ports;
}

absl::Status SetNonBlocking(int fd, bool on) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0) return ErrnoToStatus(errno, "fcntl(F_GETFL)");
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (fcntl(fd, F_SETFL, flags) < 0) return ErrnoToStatus(errno, "fcntl(F_SETFL)");
  return absl::OkStatus();
}

absl::Status TuneSocket(int fd, const SocketTuning& tuning) {
  if (tuning.buffer_bytes > 0) {
    int v = tuning.buffer_bytes;
    // As root (in our containers) the FORCE variants lift the net.core.[rw]mem_max cap.
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) != 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)) != 0)
      return ErrnoToStatus(errno, "setsockopt(SO_SNDBUF)");
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) != 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) != 0)
      return ErrnoToStatus(errno, "setsockopt(SO_RCVBUF)");
  }
  int nd = tuning.no_delay ? 1 : 0;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof(nd)) != 0)
    return ErrnoToStatus(errno, "setsockopt(TCP_NODELAY)");
  return absl::OkStatus();
}

absl::StatusOr<Listener> Listener::Bind(const std::string& bind_host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const char* host = (bind_host.empty() || bind_host == "0.0.0.0") ? nullptr : bind_host.c_str();
  if (host == nullptr) hints.ai_family = AF_INET;
  std::string port_text = std::to_string(port);
  int rc = getaddrinfo(host, port_text.c_str(), &hints, &res);
  if (rc != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("resolve bind address '", bind_host, "': ", gai_strerror(rc)));
  absl::Status last = absl::UnavailableError("no address");
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Fd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = ErrnoToStatus(errno, "socket");
      continue;
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last = ErrnoToStatus(errno, absl::StrCat("bind ", bind_host.empty() ? "0.0.0.0" : bind_host,
                                               ":", port));
      continue;
    }
    if (listen(fd.get(), 128) != 0) {
      last = ErrnoToStatus(errno, "listen");
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    Listener l;
    l.port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    l.fd_ = std::move(fd);
    freeaddrinfo(res);
    return l;
  }
  freeaddrinfo(res);
  return last;
}

absl::StatusOr<Fd> Listener::Accept(Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd_.get(), POLLIN, 0};
    int rc = poll(&p, 1, MillisUntil(deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "poll(listen)");
    }
    if (rc == 0) return absl::DeadlineExceededError("no incoming connection");
    int c = accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      return ErrnoToStatus(errno, "accept");
    }
    return Fd(c);
  }
}

absl::StatusOr<Fd> ConnectOnce(const std::string& host, int port, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_text = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (rc != 0)
    return absl::UnavailableError(absl::StrCat("resolve '", host, "': ", gai_strerror(rc)));
  absl::Status last = absl::UnavailableError("no address");
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Fd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd.valid()) {
      last = ErrnoToStatus(errno, "socket");
      continue;
    }
    if (connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = ErrnoToStatus(errno, "connect");
        continue;
      }
      pollfd p{fd.get(), POLLOUT, 0};
      int prc;
      do prc = poll(&p, 1, MillisUntil(deadline));
      while (prc < 0 && errno == EINTR);
      if (prc <= 0) {
        last = absl::DeadlineExceededError("connect timed out");
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = ErrnoToStatus(err, "connect");
        continue;
      }
    }
    freeaddrinfo(res);
    return fd;
  }
  freeaddrinfo(res);
  return last;
}

absl::Status WriteFully(int fd, const void* data, size_t n, Clock::time_point deadline,
                        const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pf{fd, POLLOUT, 0};
      int rc = poll(&pf, 1, MillisUntil(deadline));
      if (rc == 0) return absl::DeadlineExceededError(absl::StrCat(what, ": send timed out"));
      continue;
    }
    return absl::UnavailableError(absl::StrCat(what, ": send failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status ReadFully(int fd, void* data, size_t n, Clock::time_point deadline,
                       const std::string& what) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return absl::UnavailableError(absl::StrCat(what, ": connection closed by peer"));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd pf{fd, POLLIN, 0};
      int rc = poll(&pf, 1, MillisUntil(deadline));
      if (rc == 0) return absl::DeadlineExceededError(absl::StrCat(what, ": receive timed out"));
      continue;
    }
    return absl::UnavailableError(absl::StrCat(what, ": receive failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace tandem::net
