// A network endpoint "host:port" and lists of them, as workers receive them (TANDEM_PEERS,
// TANDEM_PSERVERS). IPv6 literals are bracketed: "[::1]:7070".
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem {

struct Endpoint {
  std::string host;
  int port = 0;
  std::string ToString() const;  // "host:port" ("[v6]:port" for IPv6 literals)
  bool operator==(const Endpoint&) const = default;
};

// Parses "host:port,host:port,..." (IPv6 literals as "[::1]:port"). Errors name the entry:
// "entry 1 'h:0': port must be an integer in 1..65535".
absl::StatusOr<std::vector<Endpoint>> ParseEndpointList(absl::string_view text);

// The inverse: "host:port,host:port".
std::string EndpointListToString(const std::vector<Endpoint>& endpoints);

}  // namespace tandem
