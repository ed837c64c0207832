#include "api/membership.h"

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace tandem::api {

int Membership::RankOf(const Endpoint& self) const {
  for (size_t i = 0; i < peers.size(); ++i)
    if (peers[i].host == self.host && peers[i].port == self.port) return static_cast<int>(i);
  return -1;
}

std::string RenderMembership(const Membership& m) {
  nlohmann::json peers = nlohmann::json::array();
  for (const Endpoint& e : m.peers) peers.push_back(e.ToString());
  nlohmann::json j = {{"epoch", m.epoch}, {"peers", peers}, {"reason", m.reason}};
  if (!m.pservers.empty()) {
    nlohmann::json shards = nlohmann::json::array();
    for (const PServerShard& s : m.pservers)
      shards.push_back({{"slot", s.slot}, {"endpoint", s.endpoint.ToString()}});
    j["pserverEpoch"] = m.pserver_epoch;
    j["pservers"] = shards;
  }
  return j.dump();
}

absl::StatusOr<Membership> ParseMembership(absl::string_view text, absl::string_view source) {
  auto fail = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("membership ", source, ": ", what));
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return fail("not a JSON object");
  Membership m;
  if (!j.contains("epoch") || !j["epoch"].is_number_integer() || j["epoch"].get<int64_t>() < 0)
    return fail("epoch: required, an integer >= 0");
  m.epoch = j["epoch"].get<int64_t>();
  if (!j.contains("peers") || !j["peers"].is_array() || j["peers"].empty())
    return fail("peers: required, a non-empty list of host:port");
  std::set<std::string> seen;
  for (size_t i = 0; i < j["peers"].size(); ++i) {
    const nlohmann::json& p = j["peers"][i];
    if (!p.is_string()) return fail(absl::StrCat("peers[", i, "]: must be a host:port string"));
    auto list = ParseEndpointList(p.get<std::string>());
    if (!list.ok() || list->size() != 1)
      return fail(absl::StrCat("peers[", i, "]: '", p.get<std::string>(), "' is not host:port"));
    if (!seen.insert((*list)[0].ToString()).second)
      return fail(absl::StrCat("peers[", i, "]: ", p.get<std::string>(), " is listed twice"));
    m.peers.push_back((*list)[0]);
  }
  if (j.contains("reason") && j["reason"].is_string()) m.reason = j["reason"].get<std::string>();
  if (j.contains("pservers")) {
    if (!j["pservers"].is_array() || j["pservers"].empty())
      return fail("pservers: a non-empty list of {slot, endpoint} when present");
    if (!j.contains("pserverEpoch") || !j["pserverEpoch"].is_number_integer() ||
        j["pserverEpoch"].get<int64_t>() < 0 || j["pserverEpoch"].get<int64_t>() > m.epoch)
      return fail("pserverEpoch: required with pservers, an integer in [0, epoch]");
    m.pserver_epoch = j["pserverEpoch"].get<int64_t>();
    std::set<int> slots;
    for (size_t i = 0; i < j["pservers"].size(); ++i) {
      const nlohmann::json& s = j["pservers"][i];
      const std::string at = absl::StrCat("pservers[", i, "]");
      if (!s.is_object() || !s.contains("slot") || !s["slot"].is_number_integer() ||
          s["slot"].get<int64_t>() < 0 || s["slot"].get<int64_t>() > 1 << 20)
        return fail(absl::StrCat(at, ".slot: required, an integer >= 0"));
      if (!s.contains("endpoint") || !s["endpoint"].is_string())
        return fail(absl::StrCat(at, ".endpoint: required, host:port"));
      auto list = ParseEndpointList(s["endpoint"].get<std::string>());
      if (!list.ok() || list->size() != 1)
        return fail(absl::StrCat(at, ".endpoint: '", s["endpoint"].get<std::string>(),
                                 "' is not host:port"));
      PServerShard shard{.slot = s["slot"].get<int>(), .endpoint = (*list)[0]};
      if (!slots.insert(shard.slot).second)
        return fail(absl::StrCat(at, ".slot: ", shard.slot, " is listed twice"));
      m.pservers.push_back(std::move(shard));
    }
  } else if (j.contains("pserverEpoch")) {
    return fail("pserverEpoch: only with pservers");
  }
  return m;
}

absl::Status WriteMembershipFile(const std::string& path, const Membership& m) {
  const std::string temp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(temp, std::ios::trunc);
    out << RenderMembership(m) << '\n';
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("cannot write membership file ", temp));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0)
    return absl::InternalError(absl::StrCat("cannot rename ", temp, " to ", path, ": errno ", errno));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Membership>> ReadMembershipFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::optional<Membership>();
    return absl::NotFoundError(absl::StrCat("cannot read membership file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  auto m = ParseMembership(text.str(), path);
  if (!m.ok()) return m.status();
  return std::optional<Membership>(*std::move(m));
}

}  // namespace tandem::api
