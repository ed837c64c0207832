#include "common/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/http_request_reader.h"
#include "common/logging.h"
#include "common/status.h"

namespace tandem {
namespace {

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string PercentDecode(const std::string& s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string HttpRequest::Header(const std::string& name) const {
  std::string lower = absl::AsciiStrToLower(name);
  for (const auto& [k, v] : headers) {
    if (k == lower) return v;
  }
  return "";
}

std::map<std::string, std::string> HttpRequest::QueryParams() const {
  std::map<std::string, std::string> out;
  if (query.empty()) return out;
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    size_t eq = part.find('=');
    std::string key(part.substr(0, eq));
    std::string value = eq == absl::string_view::npos ? "" : std::string(part.substr(eq + 1));
    out[PercentDecode(key, true)] = PercentDecode(value, true);
  }
  return out;
}

struct HttpServer::Connection {
  int fd = -1;
  std::string remote;
  std::thread thread;
  std::atomic<bool> done{false};
};

namespace {

// The connection's socket as a ByteSource; polls in short slices so Stop() is noticed promptly.
class SocketSource : public ByteSource {
 public:
  SocketSource(int fd, const std::atomic<bool>* stopping) : fd_(fd), stopping_(stopping) {}

  size_t Read(char* buf, size_t n, int timeout_s) override {
    for (;;) {
      int waited_ms = 0;
      for (;;) {
        if (stopping_->load()) return 0;
        pollfd p{fd_, POLLIN, 0};
        int r = ::poll(&p, 1, 200);
        if (r > 0) break;
        if (r < 0 && errno != EINTR) return 0;
        waited_ms += 200;
        if (waited_ms >= timeout_s * 1000) return 0;
      }
      ssize_t got = ::recv(fd_, buf, n, 0);
      if (got < 0 && errno == EINTR) continue;
      return got <= 0 ? 0 : static_cast<size_t>(got);
    }
  }

 private:
  int fd_;
  const std::atomic<bool>* stopping_;
};

class SocketWriter : public HttpResponseWriter {
 public:
  SocketWriter(int fd, const std::atomic<bool>* stopping, bool head_only)
      : fd_(fd), stopping_(stopping), head_only_(head_only) {}

  void Respond(int status, const std::string& content_type, const std::string& body,
               const std::vector<std::pair<std::string, std::string>>& headers) override {
    if (responded_) return;
    responded_ = true;
    std::string out = StatusLine(status, content_type, headers);
    absl::StrAppend(&out, "Content-Length: ", body.size(), "\r\n");
    if (close_after_) out += "Connection: close\r\n";
    out += "\r\n";
    if (!head_only_) out += body;
    ok_ = SendAll(fd_, out.data(), out.size());
  }

  bool BeginChunked(int status, const std::string& content_type,
                    const std::vector<std::pair<std::string, std::string>>& headers) override {
    if (responded_) return false;
    responded_ = chunked_ = true;
    std::string out = StatusLine(status, content_type, headers);
    out += "Transfer-Encoding: chunked\r\n";
    if (close_after_) out += "Connection: close\r\n";
    out += "\r\n";
    ok_ = SendAll(fd_, out.data(), out.size());
    return ok_;
  }

  bool WriteChunk(const std::string& data) override {
    if (!chunked_ || !ok_ || stopping_->load()) return false;
    if (data.empty()) return true;  // an empty chunk would end the stream
    char size[32];
    int n = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    std::string out(size, static_cast<size_t>(n));
    out += data;
    out += "\r\n";
    ok_ = SendAll(fd_, out.data(), out.size());
    return ok_;
  }

  void EndChunked() override {
    if (!chunked_ || ended_) return;
    ended_ = true;
    if (ok_) ok_ = SendAll(fd_, "0\r\n\r\n", 5);
  }

  bool Alive() override {
    if (!ok_ || stopping_->load()) return false;
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    int r = ::poll(&p, 1, 0);
    if (r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) return false;
    return true;
  }

  bool responded() const { return responded_; }
  bool ok() const { return ok_; }
  bool chunked() const { return chunked_; }
  void set_close_after(bool c) { close_after_ = c; }

 private:
  std::string StatusLine(int status, const std::string& content_type,
                         const std::vector<std::pair<std::string, std::string>>& headers) {
    std::string out = absl::StrCat("HTTP/1.1 ", status, " ", ReasonPhrase(status), "\r\n");
    if (!content_type.empty()) absl::StrAppend(&out, "Content-Type: ", content_type, "\r\n");
    for (const auto& [k, v] : headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
    return out;
  }

  int fd_;
  const std::atomic<bool>* stopping_;
  bool head_only_;
  bool responded_ = false, chunked_ = false, ended_ = false, ok_ = true, close_after_ = false;
};

void SendSimple(int fd, int status, const std::string& body) {
  std::string out = absl::StrCat("HTTP/1.1 ", status, " ", ReasonPhrase(status),
                                 "\r\nContent-Type: text/plain\r\nContent-Length: ", body.size(),
                                 "\r\nConnection: close\r\n\r\n", body);
  SendAll(fd, out.data(), out.size());
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options) : options_(options) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Handle(const std::string& method, const std::string& path, HttpHandler handler) {
  exact_[path][method] = std::move(handler);
}

void HttpServer::HandlePrefix(const std::string& prefix, HttpHandler handler) {
  prefixes_.emplace_back(prefix, std::move(handler));
  std::sort(prefixes_.begin(), prefixes_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

absl::Status HttpServer::Start(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_str = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port_str.c_str(), &hints, &res);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("http server: cannot resolve '", host, "': ", gai_strerror(rc)));
  }
  int fd = -1;
  int last_errno = 0;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 128) == 0) break;
    last_errno = errno;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    return ErrnoToStatus(last_errno, absl::StrCat("http server: listen on ", host, ":", port));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  listen_fd_ = fd;
  stopping_ = false;
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  std::list<std::unique_ptr<Connection>> conns;
  {
    absl::MutexLock lock(&mu_);
    for (auto& c : connections_) ::shutdown(c->fd, SHUT_RDWR);
    conns.swap(connections_);
  }
  for (auto& c : conns) {
    if (c->thread.joinable()) c->thread.join();
    ::close(c->fd);
  }
}

void HttpServer::ReapFinished() {
  std::list<std::unique_ptr<Connection>> finished;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if ((*it)->done.load()) {
        finished.push_back(std::move(*it));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : finished) {
    if (c->thread.joinable()) c->thread.join();
    ::close(c->fd);
  }
}

void HttpServer::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, 200);
    ReapFinished();
    if (r <= 0) continue;
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char host[INET6_ADDRSTRLEN] = "?";
    int rport = 0;
    if (addr.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
      rport = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
      rport = ntohs(a->sin6_port);
    }
    absl::MutexLock lock(&mu_);
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      SendSimple(fd, 503, "too many connections\n");
      ::close(fd);
      continue;
    }
    auto conn = std::make_unique<Connection>();
    conn->fd = fd;
    conn->remote = absl::StrCat(host, ":", rport);
    Connection* raw = conn.get();
    connections_.push_back(std::move(conn));
    raw->thread = std::thread([this, raw] {
      Serve(raw);
      // The peer sees the end now (a FIN after what was written), not when the accept loop next
      // reaps this connection (up to its 200 ms poll later): clients that read a response to its
      // end of stream waited that long. The descriptor stays open until reaped, so its number is
      // not reused while this thread object exists.
      ::shutdown(raw->fd, SHUT_WR);
      raw->done = true;
    });
  }
}

const HttpHandler* HttpServer::Route(const HttpRequest& req, bool* method_mismatch) const {
  *method_mismatch = false;
  auto it = exact_.find(req.path);
  if (it != exact_.end()) {
    auto m = it->second.find(req.method);
    if (m != it->second.end()) return &m->second;
    if (req.method == "HEAD") {
      m = it->second.find("GET");
      if (m != it->second.end()) return &m->second;
    }
    *method_mismatch = true;
    return nullptr;
  }
  for (const auto& [prefix, handler] : prefixes_) {
    if (req.path.compare(0, prefix.size(), prefix) == 0) return &handler;
  }
  return nullptr;
}

void HttpServer::Serve(Connection* conn) {
  SocketSource source(conn->fd, &stopping_);
  HttpRequestReader reader(&source, {.max_header_bytes = options_.max_header_bytes,
                                     .max_body_bytes = options_.max_body_bytes,
                                     .idle_timeout_s = options_.idle_timeout_s});
  for (;;) {
    HttpRequest req;
    req.remote = conn->remote;
    const HttpReadResult read = reader.Next(&req);
    if (read.kind == HttpReadResult::kRejected) SendSimple(conn->fd, read.status, read.message);
    if (read.kind != HttpReadResult::kRequest) return;
    const bool close_after = read.close_after;

    SocketWriter writer(conn->fd, &stopping_, req.method == "HEAD");
    writer.set_close_after(close_after);
    HttpResponseWriter& w = writer;
    bool method_mismatch = false;
    const HttpHandler* handler = Route(req, &method_mismatch);
    if (handler == nullptr) {
      w.Respond(method_mismatch ? 405 : 404, "text/plain",
                     method_mismatch ? "method not allowed\n" : "not found\n");
    } else {
      (*handler)(req, writer);
      if (!writer.responded()) w.Respond(500, "text/plain", "handler sent no response\n");
      if (writer.chunked()) writer.EndChunked();
    }
    if (!writer.ok() || close_after || stopping_.load()) return;
  }
}

}  // namespace tandem
