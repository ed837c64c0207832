// The HTTP/1.1 request parser behind HttpServer, fed from any byte source (the server's socket,
// a buffer in tests and the fuzzer), so that hostile input can be tried without a network.
//
//   BufferSource source("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
//   HttpRequestReader reader(&source, {});
//   HttpRequest req;
//   HttpReadResult r = reader.Next(&req);   // r.kind == HttpReadResult::kRequest
//
// Limits: the request head (request line and headers) and the trailer section of a chunked body
// each at most `max_header_bytes` (a trailer line at most 8192); the body at most `max_body_bytes`
// however it is framed; a chunk-size line at most 1024 bytes. A request beyond them is rejected
// before its body is read.
// Not thread-safe: one reader per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/http_server.h"

namespace tandem {

// Where a reader's bytes come from.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads at most `n` (> 0) bytes into `buf`, waiting at most `timeout_s` seconds for the first.
  // Returns how many were read; 0 on end of stream, error, timeout or shutdown.
  virtual size_t Read(char* buf, size_t n, int timeout_s) = 0;
};

// A fixed string, then end of stream.
class BufferSource : public ByteSource {
 public:
  explicit BufferSource(std::string data) : data_(std::move(data)) {}
  size_t Read(char* buf, size_t n, int timeout_s) override;

 private:
  std::string data_;
  size_t pos_ = 0;
};

struct HttpRequestLimits {
  size_t max_header_bytes = 64 * 1024;
  size_t max_body_bytes = 64 * 1024 * 1024;
  int idle_timeout_s = 60;  // passed to ByteSource::Read
};

struct HttpReadResult {
  enum Kind {
    kRequest,   // *req holds a complete request
    kClosed,    // end of stream, timeout or a truncated request: close without answering
    kRejected,  // malformed or too large: answer `status` with `message`, then close
  };
  Kind kind = kClosed;
  int status = 0;
  std::string message;
  bool close_after = false;  // kRequest: close the connection after answering (Connection, 1.0)
};

class HttpRequestReader {
 public:
  HttpRequestReader(ByteSource* source, HttpRequestLimits limits)
      : source_(source), limits_(limits) {}

  // Reads the next request of the connection into *req (method, target, path, query, headers,
  // body; `remote` is left as it is).
  HttpReadResult Next(HttpRequest* req);

  // Bytes taken from the source so far (parsed or buffered).
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  bool Fill(size_t want);
  bool ReadHead(std::string* head, size_t limit, bool* too_large);
  bool ReadExact(size_t n, std::string* out);
  bool ReadLine(std::string* line, size_t limit);

  ByteSource* const source_;
  const HttpRequestLimits limits_;
  std::string buf_;
  size_t pos_ = 0;
  uint64_t bytes_read_ = 0;
};

}  // namespace tandem
