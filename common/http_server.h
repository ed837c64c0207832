// A small HTTP/1.1 server on POSIX sockets, for /metrics, /healthz, /readyz and the in-repo
// Kubernetes API server stand-in. It supports keep-alive, Content-Length and chunked request
// bodies, plain responses and chunked streaming responses (watch streams).
//
//   tandem::HttpServer server;
//   server.Handle("GET", "/healthz", [](const HttpRequest&, HttpResponseWriter& w) {
//     w.Respond(200, "text/plain", "ok\n");
//   });
//   TANDEM_RETURN_IF_ERROR(server.Start("127.0.0.1", 0));   // port 0: pick a free port
//   int port = server.port();
//
// Each connection is served by its own thread (at most `max_connections`; beyond that new
// connections get 503). Handlers run on those threads and must be thread-safe. Stop() closes the
// listener and every connection, and joins all threads; a streaming handler sees
// HttpResponseWriter::WriteChunk return false and must then return.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace tandem {

struct HttpRequest {
  std::string method;   // "GET"
  std::string target;   // "/api/v1/pods?watch=true"
  std::string path;     // "/api/v1/pods" (percent-decoded)
  std::string query;    // "watch=true" (raw)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string remote;  // "127.0.0.1:53422"

  // The first header named `name` (case-insensitive), or "" when absent.
  std::string Header(const std::string& name) const;
  // Query parameters, percent-decoded; a repeated key keeps its last value.
  std::map<std::string, std::string> QueryParams() const;
};

class HttpResponseWriter {
 public:
  virtual ~HttpResponseWriter() = default;
  // Sends a complete response. Call at most once, and not after BeginChunked.
  virtual void Respond(int status, const std::string& content_type, const std::string& body,
                       const std::vector<std::pair<std::string, std::string>>& headers = {}) = 0;
  // Starts a chunked response; then WriteChunk any number of times and EndChunked.
  virtual bool BeginChunked(int status, const std::string& content_type,
                            const std::vector<std::pair<std::string, std::string>>& headers = {}) = 0;
  // Writes and flushes one chunk. False when the client is gone or the server is stopping.
  virtual bool WriteChunk(const std::string& data) = 0;
  virtual void EndChunked() = 0;
  // True while the client is connected and the server is not stopping (non-blocking probe).
  virtual bool Alive() = 0;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponseWriter&)>;

struct HttpServerOptions {
  // Most concurrent connections; further ones are answered 503 and closed.
  int max_connections = 256;
  // Largest accepted request head (request line + headers) and body, in bytes.
  size_t max_header_bytes = 64 * 1024;
  size_t max_body_bytes = 64 * 1024 * 1024;
  // An idle keep-alive connection is closed after this many seconds.
  int idle_timeout_s = 60;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options = {});
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes `method` + exact `path`. Call before Start().
  void Handle(const std::string& method, const std::string& path, HttpHandler handler);
  // Routes every request whose path starts with `prefix` and matched no exact route; the
  // longest prefix wins. Call before Start().
  void HandlePrefix(const std::string& prefix, HttpHandler handler);

  // Binds and listens on host:port (port 0 picks a free one) and starts accepting.
  absl::Status Start(const std::string& host, int port);
  void Stop();
  int port() const { return port_; }

 private:
  struct Connection;
  void AcceptLoop();
  void Serve(Connection* conn);
  const HttpHandler* Route(const HttpRequest& req, bool* method_mismatch) const;
  void ReapFinished();

  const HttpServerOptions options_;
  std::map<std::string, std::map<std::string, HttpHandler>> exact_;  // path -> method -> handler
  std::vector<std::pair<std::string, HttpHandler>> prefixes_;

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  absl::Mutex mu_;
  std::list<std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
};

// "%41b" -> "Ab"; '+' stays '+' (paths) unless `plus_is_space`.
std::string PercentDecode(const std::string& s, bool plus_is_space = false);

}  // namespace tandem
