#include "trainer/collective/peer_list.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status.h"

namespace tandem::collective {

std::string PeerEndpoint::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

std::string PeerList::Describe(int peer_rank) const {
  if (peer_rank < 0 || peer_rank >= world_size()) return absl::StrCat("rank ", peer_rank);
  return absl::StrCat("rank ", peer_rank, " (", endpoints[peer_rank].ToString(), ")");
}

absl::StatusOr<std::vector<PeerEndpoint>> ParsePeerEndpoints(absl::string_view text) {
  std::vector<PeerEndpoint> out;
  int index = 0;
  for (absl::string_view raw : absl::StrSplit(text, ',')) {
    absl::string_view entry = absl::StripAsciiWhitespace(raw);
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("peer list entry ", index, " '", entry, "': ", why));
    };
    if (entry.empty()) return bad("empty (expected host:port)");
    PeerEndpoint ep;
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

absl::StatusOr<PeerList> MakePeerList(std::vector<PeerEndpoint> endpoints, int rank,
                                      int world_size) {
  if (world_size < 1)
    return absl::InvalidArgumentError(absl::StrCat("world size ", world_size, " must be >= 1"));
  if (static_cast<int>(endpoints.size()) != world_size)
    return absl::InvalidArgumentError(absl::StrCat("peer list has ", endpoints.size(),
                                                   " entries but the world size is ", world_size));
  if (rank < 0 || rank >= world_size)
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is outside [0, ", world_size, ")"));
  PeerList list;
  list.rank = rank;
  list.endpoints = std::move(endpoints);
  return list;
}

namespace {
absl::StatusOr<int> IntFromEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0')
    return absl::FailedPreconditionError(absl::StrCat(name, " is not set"));
  int out = 0;
  if (!absl::SimpleAtoi(v, &out))
    return absl::InvalidArgumentError(absl::StrCat(name, "='", v, "': not an integer"));
  return out;
}
}  // namespace

absl::StatusOr<PeerList> PeerListFromEnv() {
  const char* peers = std::getenv("TANDEM_PEERS");
  if (peers == nullptr || *peers == '\0')
    return absl::FailedPreconditionError("TANDEM_PEERS is not set");
  auto endpoints = ParsePeerEndpoints(peers);
  if (!endpoints.ok()) return Annotate(endpoints.status(), "TANDEM_PEERS");
  TANDEM_ASSIGN_OR_RETURN(int rank, IntFromEnv("TANDEM_RANK"));
  TANDEM_ASSIGN_OR_RETURN(int world, IntFromEnv("TANDEM_WORLD_SIZE"));
  auto list = MakePeerList(*std::move(endpoints), rank, world);
  if (!list.ok()) return Annotate(list.status(), "TANDEM_PEERS/TANDEM_RANK/TANDEM_WORLD_SIZE");
  return list;
}

}  // namespace tandem::collective
