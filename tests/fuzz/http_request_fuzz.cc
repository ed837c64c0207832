// The HTTP server's request parser on arbitrary bytes, as a client would send them on one
// keep-alive connection. Besides not crashing, it must keep its limits: a request is answered or
// refused after reading a bounded number of bytes, whatever the client keeps sending. The input
// is followed by an endless-looking stream of filler so that a parser that reads without bound
// (a body size that wraps the limit check) is caught rather than stopped by the end of the input.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/http_request_reader.h"

namespace {

constexpr size_t kFiller = 1 << 20;

class FuzzSource : public tandem::ByteSource {
 public:
  FuzzSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t Read(char* buf, size_t n, int) override {
    if (pos_ < size_) {
      const size_t k = std::min(n, size_ - pos_);
      std::memcpy(buf, data_ + pos_, k);
      pos_ += k;
      return k;
    }
    const size_t k = std::min(n, size_ + kFiller - pos_);
    std::memset(buf, 'a', k);
    pos_ += k;
    return k;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const tandem::HttpRequestLimits limits{.max_header_bytes = 1024, .max_body_bytes = 64};
  // The most one request may take from the socket: its head and trailers, the body, per chunk a
  // size line (<= 1024) and CRLF, and one read of slack the reader may buffer ahead.
  const uint64_t bound = 2 * (limits.max_header_bytes + 8192 + 4) + limits.max_body_bytes +
                         (limits.max_body_bytes + 1) * (1024 + 4) + 16384;
  FuzzSource source(data, size);
  tandem::HttpRequestReader reader(&source, limits);
  for (int i = 0; i < 64; ++i) {
    const uint64_t before = reader.bytes_read();
    tandem::HttpRequest req;
    const tandem::HttpReadResult r = reader.Next(&req);
    if (reader.bytes_read() - before > bound) std::abort();
    if (r.kind != tandem::HttpReadResult::kRequest) {
      if (r.kind == tandem::HttpReadResult::kRejected && (r.status < 400 || r.message.empty()))
        std::abort();
      break;
    }
    if (req.body.size() > limits.max_body_bytes) std::abort();
    (void)req.QueryParams();
  }
  return 0;
}
