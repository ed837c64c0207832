#include "common/http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/socket.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

using testing::HttpRequestTo;

// A blocking connection to the server on loopback; the test closes it.
int Connect(int port) {
  auto fd = net::ConnectOnce("127.0.0.1", port, net::Clock::now() + std::chrono::seconds(10));
  EXPECT_TRUE(fd.ok()) << fd.status();
  if (!fd.ok()) return -1;
  EXPECT_TRUE(net::SetNonBlocking(fd->get(), false).ok());
  return fd->release();
}

std::string ReadSome(int fd, size_t at_least) {
  std::string out;
  char buf[4096];
  while (out.size() < at_least) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Handle("GET", "/hello", [](const HttpRequest& r, HttpResponseWriter& w) {
      auto q = r.QueryParams();
      w.Respond(200, "text/plain", "hello " + q["name"]);
    });
    server_.Handle("POST", "/echo", [](const HttpRequest& r, HttpResponseWriter& w) {
      w.Respond(201, "application/octet-stream", r.body);
    });
    server_.HandlePrefix("/stream/", [this](const HttpRequest& r, HttpResponseWriter& w) {
      w.BeginChunked(200, "application/json");
      for (int i = 0; i < 3; ++i) w.WriteChunk("{\"n\":" + std::to_string(i) + "}\n");
      if (r.path == "/stream/forever") {
        while (w.WriteChunk("x")) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        stream_ended_ = true;
      }
    });
    ASSERT_TRUE(server_.Start("127.0.0.1", 0).ok());
  }

  HttpServer server_;
  std::atomic<bool> stream_ended_{false};
};

TEST_F(HttpServerTest, RoutesExactPathsWithQuery) {
  auto r = HttpRequestTo(server_.port(), "GET", "/hello?name=a%20b");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello a b");
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405) {
  EXPECT_EQ(HttpRequestTo(server_.port(), "GET", "/nope").status, 404);
  EXPECT_EQ(HttpRequestTo(server_.port(), "DELETE", "/hello").status, 405);
}

TEST_F(HttpServerTest, EchoesContentLengthBody) {
  std::string big(300000, 'z');
  auto r = HttpRequestTo(server_.port(), "POST", "/echo", big);
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, big);
}

TEST_F(HttpServerTest, ParsesChunkedRequestBodies) {
  int fd = Connect(server_.port());
  std::string req =
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  ::send(fd, req.data(), req.size(), 0);
  std::string resp = ReadSome(fd, 1 << 20);
  ::close(fd);
  EXPECT_NE(resp.find("HTTP/1.1 201"), std::string::npos);
  EXPECT_NE(resp.find("\r\n\r\nhello world"), std::string::npos);
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  int fd = Connect(server_.port());
  std::string req = "GET /hello?name=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello?name=2 HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(fd, req.data(), req.size(), 0);
  std::string resp;
  char buf[4096];
  while (resp.find("hello 2") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_NE(resp.find("hello 1"), std::string::npos);
  EXPECT_NE(resp.find("hello 2"), std::string::npos);
}

TEST_F(HttpServerTest, StreamsChunks) {
  auto r = HttpRequestTo(server_.port(), "GET", "/stream/three");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
}

TEST_F(HttpServerTest, StreamingHandlerNoticesClientGoneAndStop) {
  int fd = Connect(server_.port());
  std::string req = "GET /stream/forever HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(fd, req.data(), req.size(), 0);
  ReadSome(fd, 20);
  ::close(fd);
  for (int i = 0; i < 200 && !stream_ended_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(stream_ended_);
  // A second endless stream must not keep Stop() from returning.
  int fd2 = Connect(server_.port());
  ::send(fd2, req.data(), req.size(), 0);
  ReadSome(fd2, 20);
  server_.Stop();
  ::close(fd2);
}

TEST_F(HttpServerTest, MalformedRequestsGet400AndServerKeepsRunning) {
  for (std::string bad : {"NONSENSE\r\n\r\n", "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
                          "POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n"}) {
    int fd = Connect(server_.port());
    ::send(fd, bad.data(), bad.size(), 0);
    std::string resp = ReadSome(fd, 1 << 20);
    ::close(fd);
    EXPECT_NE(resp.find("HTTP/1.1 400"), std::string::npos) << bad;
  }
  EXPECT_EQ(HttpRequestTo(server_.port(), "GET", "/hello").status, 200);
}

TEST_F(HttpServerTest, OversizedBodyIs413) {
  int fd = Connect(server_.port());
  std::string req = "POST /echo HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n";
  ::send(fd, req.data(), req.size(), 0);
  std::string resp = ReadSome(fd, 1 << 20);
  ::close(fd);
  EXPECT_NE(resp.find("HTTP/1.1 413"), std::string::npos);
}

TEST(HttpServerStartTest, PortInUseIsAnError) {
  HttpServer a, b;
  ASSERT_TRUE(a.Start("127.0.0.1", 0).ok());
  absl::Status s = b.Start("127.0.0.1", a.port());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find(std::to_string(a.port())), std::string::npos);
}

}  // namespace
}  // namespace tandem
