// The request parser fed from byte strings (no sockets): framing, keep-alive, every rejection,
// and the limits, including inputs found by fuzzing (tests/fuzz/http_request_fuzz.cc).
#include "common/http_request_reader.h"

#include <string>

#include "gtest/gtest.h"

namespace tandem {
namespace {

HttpReadResult ReadOne(const std::string& bytes, HttpRequest* req,
                       HttpRequestLimits limits = {.max_header_bytes = 1024, .max_body_bytes = 64}) {
  BufferSource source(bytes);
  HttpRequestReader reader(&source, limits);
  return reader.Next(req);
}

TEST(HttpRequestReaderTest, KeepAliveRequestsInOneStream) {
  BufferSource source(
      "GET /a%20b?x=1&y=%41 HTTP/1.1\r\nHost: h\r\nX-Thing:  v \r\n\r\n"
      "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
      "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
      "GET /d HTTP/1.0\r\n\r\n");
  HttpRequestReader reader(&source, {});
  HttpRequest req;
  HttpReadResult r = reader.Next(&req);
  ASSERT_EQ(r.kind, HttpReadResult::kRequest);
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/a b");
  EXPECT_EQ(req.QueryParams()["y"], "A");
  EXPECT_EQ(req.Header("x-thing"), "v");
  EXPECT_FALSE(r.close_after);
  r = reader.Next(&req);
  ASSERT_EQ(r.kind, HttpReadResult::kRequest);
  EXPECT_EQ(req.body, "hello");
  r = reader.Next(&req);
  ASSERT_EQ(r.kind, HttpReadResult::kRequest);
  EXPECT_EQ(req.method, "PUT");
  EXPECT_EQ(req.body, "abcde");
  r = reader.Next(&req);
  ASSERT_EQ(r.kind, HttpReadResult::kRequest);
  EXPECT_TRUE(r.close_after);  // HTTP/1.0 without keep-alive
  EXPECT_TRUE(req.body.empty());
  EXPECT_EQ(reader.Next(&req).kind, HttpReadResult::kClosed);
}

TEST(HttpRequestReaderTest, Rejections) {
  struct Case {
    std::string bytes;
    int status;
  };
  const Case cases[] = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET / FTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", 413},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n", 413},
      {"GET / HTTP/1.1\r\n" + std::string(2000, 'a'), 431},           // no end in sight
      {"GET / HTTP/1.1\r\nA: " + std::string(2000, 'a') + "\r\n\r\n", 431},  // complete
  };
  for (const Case& c : cases) {
    HttpRequest req;
    HttpReadResult r = ReadOne(c.bytes, &req);
    EXPECT_EQ(r.kind, HttpReadResult::kRejected) << c.bytes;
    EXPECT_EQ(r.status, c.status) << c.bytes;
    EXPECT_FALSE(r.message.empty());
  }
}

TEST(HttpRequestReaderTest, TruncatedRequestsCloseQuietly) {
  for (const std::string& bytes :
       {std::string(""), std::string("GET / HTTP/1.1\r\n"),
        std::string("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"),
        std::string("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")}) {
    HttpRequest req;
    EXPECT_EQ(ReadOne(bytes, &req).kind, HttpReadResult::kClosed) << bytes;
  }
}

// Found by reading the parser for the fuzz target's invariant: a chunk size near 2^64 wrapped
// `body.size() + size` below the body limit, so the reader then tried to buffer 2^64 bytes of
// whatever the client kept sending (memory without bound) instead of answering 413.
TEST(HttpRequestReaderTest, ChunkSizeThatWouldWrapTheBodyLimitIsRefused) {
  HttpRequest req;
  const std::string bytes =
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n" +
      std::string(1 << 16, 'x');
  HttpReadResult r = ReadOne(bytes, &req);
  EXPECT_EQ(r.kind, HttpReadResult::kRejected);
  EXPECT_EQ(r.status, 413);
}

// Trailer lines are bounded one by one (8 KiB) and, together, by max_header_bytes: a client
// could otherwise hold the connection open forever with endless short trailer lines.
TEST(HttpRequestReaderTest, EndlessTrailersAreRefused) {
  std::string bytes = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 1000; ++i) bytes += "X-T: 1\r\n";
  HttpRequest req;
  HttpReadResult r = ReadOne(bytes, &req);
  EXPECT_EQ(r.kind, HttpReadResult::kRejected);
  EXPECT_EQ(r.status, 431);
}

}  // namespace
}  // namespace tandem
