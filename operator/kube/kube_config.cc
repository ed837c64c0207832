#include "operator/kube/kube_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "common/yaml_json.h"

namespace tandem::kube {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoToStatus(errno, absl::StrCat("read ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return absl::StrCat(base_dir, "/", path);
}

absl::StatusOr<std::string> Base64Field(const nlohmann::json& obj, const std::string& field,
                                        const std::string& where) {
  std::string decoded;
  if (!absl::Base64Unescape(obj[field].get<std::string>(), &decoded)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", field, ": not valid base64"));
  }
  return decoded;
}

// Finds the entry named `name` in a kubeconfig list ("clusters", "users", "contexts").
const nlohmann::json* Named(const nlohmann::json& doc, const char* list, const std::string& name) {
  auto it = doc.find(list);
  if (it == doc.end() || !it->is_array()) return nullptr;
  for (const auto& e : *it) {
    if (e.is_object() && e.value("name", "") == name) return &e;
  }
  return nullptr;
}

std::string Str(const nlohmann::json& o, const char* f) {
  auto it = o.find(f);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

absl::StatusOr<KubeConfig> LoadInClusterConfig(const Environment& env, const std::string& sa_dir) {
  std::string host = EnvValue(env, "KUBERNETES_SERVICE_HOST").value_or("");
  std::string port = EnvValue(env, "KUBERNETES_SERVICE_PORT").value_or("");
  if (host.empty() || port.empty()) {
    return absl::FailedPreconditionError(
        "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  }
  KubeConfig cfg;
  // An IPv6 host needs brackets in a URL.
  if (host.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
  cfg.server = absl::StrCat("https://", host, ":", port);
  cfg.token_file = sa_dir + "/token";
  TANDEM_ASSIGN_OR_RETURN(cfg.token, ReadFile(cfg.token_file));
  cfg.token = std::string(absl::StripAsciiWhitespace(cfg.token));
  TANDEM_ASSIGN_OR_RETURN(cfg.ca_pem, ReadFile(sa_dir + "/ca.crt"));
  auto ns = ReadFile(sa_dir + "/namespace");
  if (ns.ok()) cfg.default_namespace = std::string(absl::StripAsciiWhitespace(*ns));
  cfg.source = "in-cluster";
  return cfg;
}

absl::StatusOr<KubeConfig> LoadKubeconfigFile(const std::string& path, const std::string& context) {
  TANDEM_ASSIGN_OR_RETURN(auto docs, YamlFileToJson(path));
  if (docs.size() != 1 || !docs[0].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected one kubeconfig document"));
  }
  const nlohmann::json& doc = docs[0];
  std::string ctx_name = context.empty() ? Str(doc, "current-context") : context;
  if (ctx_name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no current-context and none given"));
  }
  const nlohmann::json* ctx = Named(doc, "contexts", ctx_name);
  if (ctx == nullptr || !ctx->contains("context") || !(*ctx)["context"].is_object()) {
    return absl::NotFoundError(absl::StrCat(path, ": context '", ctx_name, "' not found"));
  }
  const nlohmann::json& c = (*ctx)["context"];
  std::string base_dir = path.find('/') == std::string::npos ? "" : path.substr(0, path.rfind('/'));
  KubeConfig cfg;
  cfg.source = absl::StrCat(path, " (context ", ctx_name, ")");
  if (!Str(c, "namespace").empty()) cfg.default_namespace = Str(c, "namespace");

  const nlohmann::json* cluster = Named(doc, "clusters", Str(c, "cluster"));
  if (cluster == nullptr || !cluster->contains("cluster") || !(*cluster)["cluster"].is_object()) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cluster '", Str(c, "cluster"), "' of context '", ctx_name, "' not found"));
  }
  const nlohmann::json& cl = (*cluster)["cluster"];
  std::string where = absl::StrCat(path, ": clusters[", Str(c, "cluster"), "]");
  cfg.server = Str(cl, "server");
  if (cfg.server.empty()) return absl::InvalidArgumentError(where + ".server: missing");
  while (!cfg.server.empty() && cfg.server.back() == '/') cfg.server.pop_back();
  if (cl.contains("insecure-skip-tls-verify") && cl["insecure-skip-tls-verify"].is_boolean()) {
    cfg.insecure_skip_tls_verify = cl["insecure-skip-tls-verify"].get<bool>();
  }
  if (!Str(cl, "certificate-authority-data").empty()) {
    TANDEM_ASSIGN_OR_RETURN(cfg.ca_pem, Base64Field(cl, "certificate-authority-data", where));
  } else if (!Str(cl, "certificate-authority").empty()) {
    TANDEM_ASSIGN_OR_RETURN(cfg.ca_pem, ReadFile(Resolve(base_dir, Str(cl, "certificate-authority"))));
  }

  std::string user_name = Str(c, "user");
  if (!user_name.empty()) {
    const nlohmann::json* user = Named(doc, "users", user_name);
    if (user == nullptr) {
      return absl::NotFoundError(absl::StrCat(path, ": user '", user_name, "' not found"));
    }
    nlohmann::json u = user->contains("user") && (*user)["user"].is_object() ? (*user)["user"]
                                                                             : nlohmann::json::object();
    std::string uw = absl::StrCat(path, ": users[", user_name, "]");
    if (u.contains("exec") || u.contains("auth-provider")) {
      return absl::UnimplementedError(
          uw + ": exec and auth-provider credential plugins are not supported; use a token or client certificate");
    }
    cfg.token = Str(u, "token");
    if (cfg.token.empty() && !Str(u, "tokenFile").empty()) {
      cfg.token_file = Resolve(base_dir, Str(u, "tokenFile"));
      TANDEM_ASSIGN_OR_RETURN(cfg.token, ReadFile(cfg.token_file));
      cfg.token = std::string(absl::StripAsciiWhitespace(cfg.token));
    }
    if (!Str(u, "client-certificate-data").empty()) {
      TANDEM_ASSIGN_OR_RETURN(cfg.client_cert_pem, Base64Field(u, "client-certificate-data", uw));
    } else if (!Str(u, "client-certificate").empty()) {
      TANDEM_ASSIGN_OR_RETURN(cfg.client_cert_pem, ReadFile(Resolve(base_dir, Str(u, "client-certificate"))));
    }
    if (!Str(u, "client-key-data").empty()) {
      TANDEM_ASSIGN_OR_RETURN(cfg.client_key_pem, Base64Field(u, "client-key-data", uw));
    } else if (!Str(u, "client-key").empty()) {
      TANDEM_ASSIGN_OR_RETURN(cfg.client_key_pem, ReadFile(Resolve(base_dir, Str(u, "client-key"))));
    }
    if (cfg.client_cert_pem.empty() != cfg.client_key_pem.empty()) {
      return absl::InvalidArgumentError(uw + ": client certificate and client key must be given together");
    }
    cfg.username = Str(u, "username");
    cfg.password = Str(u, "password");
  }
  return cfg;
}

absl::StatusOr<KubeConfig> LoadKubeConfig(const Environment& env, const std::string& explicit_path,
                                          const std::string& context) {
  if (!explicit_path.empty()) return LoadKubeconfigFile(explicit_path, context);
  if (std::optional<std::string> list = EnvValue(env, "KUBECONFIG")) {
    return LoadKubeconfigFile(list->substr(0, list->find(':')), context);
  }
  if (EnvValue(env, "KUBERNETES_SERVICE_HOST")) return LoadInClusterConfig(env);
  std::optional<std::string> home = EnvValue(env, "HOME");
  if (!home) return absl::FailedPreconditionError("no kubeconfig: set --kubeconfig or KUBECONFIG");
  return LoadKubeconfigFile(absl::StrCat(*home, "/.kube/config"), context);
}

}  // namespace tandem::kube
