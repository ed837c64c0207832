// A small, bounded HTTP/1.1 GET for scraping metrics endpoints from the operator.
//
//   auto body = HttpGet({.host = "10.1.2.3", .port = 9100, .path = "/metrics", .timeout_s = 2});
//
// Bounded in every dimension a misbehaving peer could stretch: `host` must be a numeric IPv4 or
// IPv6 address (no DNS lookups that could block), the whole exchange (connect, send, receive)
// ends at `timeout_s`, and a body over `max_body_bytes` is refused. Handles Content-Length,
// chunked and read-until-close bodies. Errors: DeadlineExceeded (timeout), Unavailable
// (connection refused or reset), FailedPrecondition (HTTP status not 200), InvalidArgument
// (malformed response, bad host, body too large). Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace tandem::controller {

struct HttpGetRequest {
  std::string host;  // numeric IPv4 or IPv6 address
  int port = 0;
  std::string path = "/";
  double timeout_s = 2;
  size_t max_body_bytes = 4 << 20;
  std::string accept = "text/plain;version=0.0.4";
};

absl::StatusOr<std::string> HttpGet(const HttpGetRequest& request);

}  // namespace tandem::controller
