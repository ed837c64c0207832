#include "operator/controller/http_get.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/socket.h"

namespace tandem::controller {

namespace {

using net::Clock;
using net::Fd;
using net::WaitReady;

// Decodes a chunked body; false on malformed framing. Trailers are ignored.
bool Dechunk(absl::string_view in, size_t max, std::string* out, bool* too_large) {
  size_t pos = 0;
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == absl::string_view::npos) return false;
    absl::string_view size_text = in.substr(pos, eol - pos);
    if (size_t semi = size_text.find(';'); semi != absl::string_view::npos) size_text = size_text.substr(0, semi);
    size_text = absl::StripAsciiWhitespace(size_text);
    if (size_text.empty() || size_text.size() > 15) return false;
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(size_text, &size)) return false;
    pos = eol + 2;
    if (size == 0) return true;
    if (out->size() + size > max) {
      *too_large = true;
      return false;
    }
    if (in.size() < pos + size + 2 || in.substr(pos + size, 2) != "\r\n") return false;
    out->append(in.data() + pos, size);
    pos += size + 2;
  }
}

// True once `in` holds a whole response whose length is known from its headers (Content-Length,
// or a chunked body's last chunk), so a peer that keeps the connection open despite
// "Connection: close" does not hold the scrape until its deadline.
bool Complete(absl::string_view in) {
  size_t header_end = in.find("\r\n\r\n");
  if (header_end == absl::string_view::npos) return false;
  std::string headers = absl::AsciiStrToLower(in.substr(0, header_end));
  absl::string_view body = in.substr(header_end + 4);
  if (headers.find("transfer-encoding:") != std::string::npos && headers.find("chunked") != std::string::npos) {
    return absl::StartsWith(body, "0\r\n\r\n") || body.find("\r\n0\r\n\r\n") != absl::string_view::npos;
  }
  size_t cl = headers.find("\r\ncontent-length:");
  if (cl == std::string::npos) return false;
  size_t start = cl + 17, end = headers.find("\r\n", start);
  int64_t length = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(headers).substr(start, end == std::string::npos ? std::string::npos : end - start)), &length)) {
    return false;
  }
  return length >= 0 && body.size() >= static_cast<size_t>(length);
}

}  // namespace

absl::StatusOr<std::string> HttpGet(const HttpGetRequest& req) {
  const std::string where = absl::StrCat("http://", req.host.find(':') != std::string::npos ? "[" + req.host + "]" : req.host,
                                         ":", req.port, req.path);
  if (req.port <= 0 || req.port > 65535) return absl::InvalidArgumentError(absl::StrCat(where, ": invalid port"));
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  int family = AF_INET;
  if (auto* a4 = reinterpret_cast<sockaddr_in*>(&addr); ::inet_pton(AF_INET, req.host.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(req.port));
    addr_len = sizeof(sockaddr_in);
  } else if (auto* a6 = reinterpret_cast<sockaddr_in6*>(&addr);
             ::inet_pton(AF_INET6, req.host.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(req.port));
    addr_len = sizeof(sockaddr_in6);
    family = AF_INET6;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(where, ": host is not a numeric IP address"));
  }
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(std::max(0.001, req.timeout_s)));
  Fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::UnavailableError(absl::StrCat(where, ": socket: ", std::strerror(errno)));

  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
    if (errno != EINPROGRESS) {
      return absl::UnavailableError(absl::StrCat(where, ": connect: ", std::strerror(errno)));
    }
    if (absl::Status s = WaitReady(fd.get(), POLLOUT, deadline, "connecting to " + where); !s.ok()) return s;
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return absl::UnavailableError(absl::StrCat(where, ": connect: ", std::strerror(err)));
  }

  const std::string request = absl::StrCat("GET ", req.path, " HTTP/1.1\r\nHost: ", req.host, ":", req.port,
                                           "\r\nAccept: ", req.accept,
                                           "\r\nUser-Agent: tandem-operator\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (absl::Status s = WaitReady(fd.get(), POLLOUT, deadline, "sending to " + where); !s.ok()) return s;
    } else {
      return absl::UnavailableError(absl::StrCat(where, ": send: ", std::strerror(errno)));
    }
  }

  // Headers are bounded at 64 KiB; the body by max_body_bytes (plus chunk framing).
  const size_t max_total = req.max_body_bytes + (64 << 10) + req.max_body_bytes / 8;
  std::string in;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
      if (in.size() > max_total) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": response larger than ", req.max_body_bytes, " bytes"));
      }
      if (Complete(in)) break;
      continue;
    }
    if (n == 0) break;  // the peer closed: Connection: close
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (absl::Status s = WaitReady(fd.get(), POLLIN, deadline, "reading from " + where); !s.ok()) return s;
      continue;
    }
    return absl::UnavailableError(absl::StrCat(where, ": recv: ", std::strerror(errno)));
  }

  size_t header_end = in.find("\r\n\r\n");
  if (header_end == std::string::npos || header_end > (64 << 10)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": malformed HTTP response (no header end)"));
  }
  std::vector<absl::string_view> lines = absl::StrSplit(absl::string_view(in).substr(0, header_end), "\r\n");
  std::vector<absl::string_view> status_line = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  int code = 0;
  if (status_line.size() < 2 || !absl::StartsWith(status_line[0], "HTTP/1.") || !absl::SimpleAtoi(status_line[1], &code)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": malformed HTTP status line"));
  }
  bool chunked = false;
  int64_t content_length = -1;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) continue;
    std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    absl::string_view value = absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
    if (name == "transfer-encoding" && absl::AsciiStrToLower(value).find("chunked") != std::string::npos) chunked = true;
    if (name == "content-length" && (!absl::SimpleAtoi(value, &content_length) || content_length < 0)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": malformed Content-Length"));
    }
  }
  if (code != 200) return absl::FailedPreconditionError(absl::StrCat(where, ": HTTP ", code));
  absl::string_view raw = absl::string_view(in).substr(header_end + 4);
  std::string body;
  if (chunked) {
    bool too_large = false;
    if (!Dechunk(raw, req.max_body_bytes, &body, &too_large)) {
      return absl::InvalidArgumentError(absl::StrCat(where, too_large ? ": response larger than limit"
                                                                       : ": malformed chunked body"));
    }
  } else {
    if (content_length >= 0) {
      if (static_cast<size_t>(content_length) > raw.size()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": body shorter than its Content-Length"));
      }
      raw = raw.substr(0, static_cast<size_t>(content_length));
    }
    if (raw.size() > req.max_body_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": response larger than ", req.max_body_bytes, " bytes"));
    }
    body.assign(raw.data(), raw.size());
  }
  return body;
}

}  // namespace tandem::controller
