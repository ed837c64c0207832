#include "common/http_request_reader.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace tandem {

size_t BufferSource::Read(char* buf, size_t n, int /*timeout_s*/) {
  const size_t k = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, k);
  pos_ += k;
  return k;
}

bool HttpRequestReader::Fill(size_t want) {
  while (buf_.size() - pos_ < want) {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    char tmp[16384];
    const size_t n = source_->Read(tmp, sizeof(tmp), limits_.idle_timeout_s);
    if (n == 0) return false;
    bytes_read_ += n;
    buf_.append(tmp, n);
  }
  return true;
}

bool HttpRequestReader::ReadHead(std::string* head, size_t limit, bool* too_large) {
  *too_large = false;
  for (;;) {
    size_t end = buf_.find("\r\n\r\n", pos_);
    if (end != std::string::npos) {
      // Also when the whole head arrived in one read: the limit is on the head, not on reads.
      if (end - pos_ > limit) {
        *too_large = true;
        return false;
      }
      *head = buf_.substr(pos_, end - pos_);
      pos_ = end + 4;
      return true;
    }
    if (buf_.size() - pos_ > limit) {
      *too_large = true;
      return false;
    }
    if (!Fill(buf_.size() - pos_ + 1)) return false;
  }
}

bool HttpRequestReader::ReadExact(size_t n, std::string* out) {
  if (!Fill(n)) return false;
  out->append(buf_, pos_, n);
  pos_ += n;
  return true;
}

bool HttpRequestReader::ReadLine(std::string* line, size_t limit) {
  for (;;) {
    size_t end = buf_.find("\r\n", pos_);
    if (end != std::string::npos) {
      *line = buf_.substr(pos_, end - pos_);
      pos_ = end + 2;
      return true;
    }
    if (buf_.size() - pos_ > limit) return false;
    if (!Fill(buf_.size() - pos_ + 1)) return false;
  }
}

HttpReadResult HttpRequestReader::Next(HttpRequest* req) {
  auto reject = [](int status, std::string message) {
    HttpReadResult r;
    r.kind = HttpReadResult::kRejected;
    r.status = status;
    r.message = std::move(message);
    return r;
  };
  const HttpReadResult closed;
  std::string head;
  bool too_large = false;
  if (!ReadHead(&head, limits_.max_header_bytes, &too_large)) {
    return too_large ? reject(431, "request head too large\n") : closed;
  }
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return reject(400, "malformed request line\n");
  }
  req->method = std::string(parts[0]);
  req->target = std::string(parts[1]);
  const bool http10 = parts[2] == "HTTP/1.0";
  size_t q = req->target.find('?');
  req->path = PercentDecode(req->target.substr(0, q));
  req->query = q != std::string::npos ? req->target.substr(q + 1) : "";
  req->headers.clear();
  req->body.clear();
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) return reject(400, "malformed header line\n");
    req->headers.emplace_back(absl::AsciiStrToLower(lines[i].substr(0, colon)),
                              std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  // Body: Content-Length or chunked transfer coding.
  std::string te = absl::AsciiStrToLower(req->Header("transfer-encoding"));
  std::string cl = req->Header("content-length");
  if (te.find("chunked") != std::string::npos) {
    for (;;) {
      std::string size_line;
      if (!ReadLine(&size_line, 1024)) return closed;
      size_t semi = size_line.find(';');
      uint64_t size = 0;
      if (!absl::SimpleHexAtoi(size_line.substr(0, semi), &size)) {
        return reject(400, "malformed chunk size\n");
      }
      // Compared without adding: a chunk size near 2^64 must not wrap the sum below the limit.
      if (size > limits_.max_body_bytes - req->body.size()) {
        return reject(413, "request body too large\n");
      }
      if (size == 0) {
        std::string trailer;
        size_t trailer_bytes = 0;
        do {
          if (!ReadLine(&trailer, 8192)) return closed;
          trailer_bytes += trailer.size() + 2;
          if (trailer_bytes > limits_.max_header_bytes) {
            return reject(431, "request trailers too large\n");
          }
        } while (!trailer.empty());
        break;
      }
      std::string crlf;
      if (!ReadExact(size, &req->body) || !ReadExact(2, &crlf)) return closed;
    }
  } else if (!cl.empty()) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(cl, &n)) return reject(400, "malformed Content-Length\n");
    if (n > limits_.max_body_bytes) return reject(413, "request body too large\n");
    if (n > 0 && !ReadExact(n, &req->body)) return closed;
  }
  std::string connection = absl::AsciiStrToLower(req->Header("connection"));
  HttpReadResult r;
  r.kind = HttpReadResult::kRequest;
  r.close_after = http10 ? connection != "keep-alive" : connection == "close";
  return r;
}

}  // namespace tandem
