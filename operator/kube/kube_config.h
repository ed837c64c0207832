// Where the API server is and how to authenticate to it: in-cluster (service account) or from a
// kubeconfig file.
//
//   TANDEM_ASSIGN_OR_RETURN(kube::KubeConfig cfg, kube::LoadKubeConfig(ProcessEnvironment(), flag_kubeconfig));
//   kube::KubeClient client(cfg);
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/environment.h"

namespace tandem::kube {

struct KubeConfig {
  std::string server{};  // "https://10.0.0.1:443"
  // Bearer token, or the file to (re-)read it from (bound service-account tokens rotate).
  std::string token{};
  std::string token_file{};
  // PEM data for the CA bundle and the client certificate/key (files are read when loaded).
  std::string ca_pem{};
  std::string client_cert_pem{};
  std::string client_key_pem{};
  bool insecure_skip_tls_verify = false;
  std::string username{}, password{};  // basic auth (kubeconfig only)
  std::string default_namespace = "default";
  std::string source{};  // "in-cluster" or the kubeconfig path and context, for messages
};

// Reads an in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT, the service-account token,
// CA bundle and namespace under `sa_dir` (default /var/run/secrets/kubernetes.io/serviceaccount).
// `env` is the process environment the main read once (common/environment.h).
absl::StatusOr<KubeConfig> LoadInClusterConfig(
    const Environment& env,
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// Reads a kubeconfig file (YAML). `context` empty uses current-context. Supports cluster
// server/certificate-authority(-data)/insecure-skip-tls-verify, user token/tokenFile/
// client-certificate(-data)/client-key(-data)/username+password, and context namespace. Relative
// file paths resolve against the kubeconfig's folder. exec/auth-provider plugins are refused.
absl::StatusOr<KubeConfig> LoadKubeconfigFile(const std::string& path,
                                              const std::string& context = "");

// The usual order: `explicit_path` if set, else $KUBECONFIG (first entry), else in-cluster when
// KUBERNETES_SERVICE_HOST is set, else $HOME/.kube/config; the variables are read from `env`.
absl::StatusOr<KubeConfig> LoadKubeConfig(const Environment& env, const std::string& explicit_path = "",
                                          const std::string& context = "");

}  // namespace tandem::kube
