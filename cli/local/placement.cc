#include "cli/local/placement.h"

#include <arpa/inet.h>

#include <cctype>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/yaml_json.h"

namespace tandem::local {
namespace {

bool IsHostName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

// An IPv4/IPv6 literal or a DNS name: what Endpoint carries as its host ("h:80" is neither).
bool IsAddress(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  if (s.find(':') != std::string::npos) {
    in6_addr v6;
    return inet_pton(AF_INET6, s.c_str(), &v6) == 1;
  }
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) return false;
  return true;
}

// `field` (a list of host names, one per process) as indices into `hosts`; absent: `fallback`.
absl::StatusOr<std::vector<int>> HostIndices(const nlohmann::json& doc, const char* field,
                                             int workers, const std::map<std::string, int>& index,
                                             const std::string& source,
                                             const std::vector<int>& fallback) {
  auto it = doc.find(field);
  if (it == doc.end() || it->is_null()) return fallback;
  if (!it->is_array())
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", field, ": must be a list of host names, one per worker"));
  if (static_cast<int>(it->size()) != workers)
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", field, ": has ", it->size(),
                                                   " entries, the job has ", workers, " workers"));
  std::vector<std::string> names;
  for (const auto& [name, i] : index) names.push_back(name);
  std::vector<int> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const nlohmann::json& v = (*it)[i];
    const std::string at = absl::StrCat(source, ": ", field, "[", i, "]");
    if (!v.is_string()) return absl::InvalidArgumentError(absl::StrCat(at, ": must be a host name"));
    auto found = index.find(v.get<std::string>());
    if (found == index.end())
      return absl::InvalidArgumentError(absl::StrCat(at, ": host '", v.get<std::string>(),
                                                     "' is not one of hosts (",
                                                     absl::StrJoin(names, ", "), ")"));
    out.push_back(found->second);
  }
  return out;
}

}  // namespace

absl::StatusOr<Placement> ParsePlacement(const nlohmann::json& doc, int workers,
                                         const std::string& source) {
  if (!doc.is_object())
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": must be a mapping with 'hosts' (and optionally 'workers', 'pservers')"));
  for (const auto& [key, value] : doc.items())
    if (key != "hosts" && key != "workers" && key != "pservers")
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": unknown field '", key, "' (known: hosts, workers, pservers)"));
  auto hosts = doc.find("hosts");
  if (hosts == doc.end() || !hosts->is_array() || hosts->empty())
    return absl::InvalidArgumentError(absl::StrCat(source, ": hosts: a non-empty list is required"));
  Placement p;
  std::map<std::string, int> index;
  for (size_t i = 0; i < hosts->size(); ++i) {
    const nlohmann::json& h = (*hosts)[i];
    const std::string at = absl::StrCat(source, ": hosts[", i, "]");
    if (!h.is_object())
      return absl::InvalidArgumentError(absl::StrCat(at, ": must be a mapping (name, address, exec)"));
    for (const auto& [key, value] : h.items())
      if (key != "name" && key != "address" && key != "exec")
        return absl::InvalidArgumentError(
            absl::StrCat(at, ": unknown field '", key, "' (known: name, address, exec)"));
    PlacementHost host;
    if (auto n = h.find("name"); n != h.end() && n->is_string()) host.name = n->get<std::string>();
    if (!IsHostName(host.name))
      return absl::InvalidArgumentError(
          absl::StrCat(at, ".name: '", host.name, "': 1 to 63 characters of [A-Za-z0-9._-] are required"));
    if (index.count(host.name))
      return absl::InvalidArgumentError(
          absl::StrCat(at, ".name: '", host.name, "' is already the name of hosts[", index[host.name], "]"));
    if (auto a = h.find("address"); a != h.end() && a->is_string()) host.address = a->get<std::string>();
    if (!IsAddress(host.address))
      return absl::InvalidArgumentError(absl::StrCat(
          at, ".address: '", host.address,
          "': an IPv4 or IPv6 address or a host name (no port, no brackets) is required"));
    if (auto e = h.find("exec"); e != h.end() && !e->is_null()) {
      if (!e->is_array())
        return absl::InvalidArgumentError(absl::StrCat(at, ".exec: must be a list of strings (argv)"));
      for (size_t j = 0; j < e->size(); ++j) {
        if (!(*e)[j].is_string() || (*e)[j].get<std::string>().empty())
          return absl::InvalidArgumentError(
              absl::StrCat(at, ".exec[", j, "]: must be a non-empty string"));
        host.exec.push_back((*e)[j].get<std::string>());
      }
    }
    index[host.name] = static_cast<int>(i);
    p.hosts.push_back(std::move(host));
  }
  std::vector<int> round_robin;
  for (int i = 0; i < workers; ++i) round_robin.push_back(i % static_cast<int>(p.hosts.size()));
  TANDEM_ASSIGN_OR_RETURN(p.worker_hosts,
                          HostIndices(doc, "workers", workers, index, source, round_robin));
  TANDEM_ASSIGN_OR_RETURN(p.pserver_hosts,
                          HostIndices(doc, "pservers", workers, index, source, p.worker_hosts));
  return p;
}

absl::StatusOr<Placement> LoadPlacement(const std::string& path, int workers) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<nlohmann::json> docs, YamlFileToJson(path));
  if (docs.size() != 1)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": holds ", docs.size(), " documents, a placement is one"));
  return ParsePlacement(docs[0], workers, path);
}

}  // namespace tandem::local
