#include "common/endpoint.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tandem {

std::string Endpoint::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<std::vector<Endpoint>> ParseEndpointList(absl::string_view text) {
  std::vector<Endpoint> out;
  int index = 0;
  for (absl::string_view raw : absl::StrSplit(text, ',')) {
    absl::string_view entry = absl::StripAsciiWhitespace(raw);
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("entry ", index, " '", entry, "': ", why));
    };
    if (entry.empty()) return bad("empty (expected host:port)");
    Endpoint ep;
    absl::string_view port_text;
    if (entry.front() == '[') {
      size_t close = entry.find(']');
      if (close == absl::string_view::npos || close + 1 >= entry.size() || entry[close + 1] != ':')
        return bad("expected [ipv6]:port");
      ep.host = std::string(entry.substr(1, close - 1));
      port_text = entry.substr(close + 2);
    } else {
      size_t colon = entry.rfind(':');
      if (colon == absl::string_view::npos) return bad("missing ':port'");
      ep.host = std::string(entry.substr(0, colon));
      port_text = entry.substr(colon + 1);
      if (ep.host.find(':') != std::string::npos) return bad("IPv6 hosts must be bracketed");
    }
    if (ep.host.empty()) return bad("empty host");
    if (!absl::SimpleAtoi(port_text, &ep.port) || ep.port < 1 || ep.port > 65535)
      return bad("port must be an integer in 1..65535");
    out.push_back(std::move(ep));
    ++index;
  }
  return out;
}

std::string EndpointListToString(const std::vector<Endpoint>& endpoints) {
  return absl::StrJoin(endpoints, ",", [](std::string* out, const Endpoint& e) {
    out->append(e.ToString());
  });
}

}  // namespace tandem
