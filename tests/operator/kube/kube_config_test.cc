#include "operator/kube/kube_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "operator/kube/selector.h"

namespace tandem::kube {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("tandem_kube_config_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

void Write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

TEST(KubeConfigTest, InCluster) {
  fs::path d = TempDir("sa");
  Write(d / "token", "tok-123\n");
  Write(d / "ca.crt", "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n");
  Write(d / "namespace", "ml\n");
  const Environment env = {{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  auto cfg = LoadInClusterConfig(env, d.string());
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, "https://10.0.0.1:443");
  EXPECT_EQ(cfg->token, "tok-123");
  EXPECT_EQ(cfg->token_file, (d / "token").string());
  EXPECT_NE(cfg->ca_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(cfg->default_namespace, "ml");

  auto none = LoadInClusterConfig(Environment{}, d.string());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
}

// The lookup order reads only the Environment it is given: an explicit path, then $KUBECONFIG's
// first entry, then in-cluster, then $HOME/.kube/config; none of them is an error.
TEST(KubeConfigTest, LookupOrderFromTheGivenEnvironment) {
  fs::path d = TempDir("order");
  fs::create_directories(d / "home" / ".kube");
  const std::string one = "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: a\n  cluster: {server: \"https://one:1\"}\nusers:\n- name: a\n  user: {token: t}\ncontexts:\n- name: a\n  context: {cluster: a, user: a}\n";
  std::string two = one;
  two.replace(two.find("https://one:1"), 13, "https://two:2");
  Write(d / "one", one);
  Write(d / "home" / ".kube" / "config", two);

  auto from_list = LoadKubeConfig({{"KUBECONFIG", (d / "one").string() + ":/nonexistent"}});
  ASSERT_TRUE(from_list.ok()) << from_list.status();
  EXPECT_EQ(from_list->server, "https://one:1");
  auto explicit_path = LoadKubeConfig({{"KUBECONFIG", "/nonexistent"}}, (d / "home/.kube/config").string());
  ASSERT_TRUE(explicit_path.ok()) << explicit_path.status();
  EXPECT_EQ(explicit_path->server, "https://two:2");
  auto from_home = LoadKubeConfig({{"HOME", (d / "home").string()}});
  ASSERT_TRUE(from_home.ok()) << from_home.status();
  EXPECT_EQ(from_home->server, "https://two:2");
  EXPECT_EQ(LoadKubeConfig(Environment{}).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(KubeConfigTest, KubeconfigContextsUsersAndFiles) {
  fs::path d = TempDir("kc");
  Write(d / "ca.pem", "CA-PEM");
  Write(d / "token", "file-token\n");
  Write(d / "config", R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster: {server: "https://k8s.example:6443/", certificate-authority: ca.pem}
- name: c2
  cluster: {server: "http://127.0.0.1:8080", insecure-skip-tls-verify: true}
users:
- name: u1
  user: {token: abc}
- name: u2
  user: {tokenFile: token, client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
- name: u3
  user: {exec: {command: aws}}
contexts:
- name: dev
  context: {cluster: c1, user: u1, namespace: team-a}
- name: local
  context: {cluster: c2, user: u2}
- name: plugin
  context: {cluster: c2, user: u3}
)");
  auto dev = LoadKubeconfigFile((d / "config").string());
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->server, "https://k8s.example:6443");
  EXPECT_EQ(dev->ca_pem, "CA-PEM");
  EXPECT_EQ(dev->token, "abc");
  EXPECT_EQ(dev->default_namespace, "team-a");

  auto local = LoadKubeconfigFile((d / "config").string(), "local");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_TRUE(local->insecure_skip_tls_verify);
  EXPECT_EQ(local->token, "file-token");
  EXPECT_EQ(local->client_cert_pem, "CERT");
  EXPECT_EQ(local->client_key_pem, "KEY");
  EXPECT_EQ(local->default_namespace, "default");

  auto plugin = LoadKubeconfigFile((d / "config").string(), "plugin");
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kUnimplemented);
  auto missing = LoadKubeconfigFile((d / "config").string(), "nope");
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_NE(missing.status().message().find("context 'nope'"), std::string::npos);
  auto nofile = LoadKubeconfigFile((d / "absent").string());
  EXPECT_FALSE(nofile.ok());
}

struct SelectorCase {
  std::string selector;
  nlohmann::json labels;
  bool matches;
};

TEST(SelectorTest, LabelSelectorTable) {
  const std::vector<SelectorCase> cases = {
      {"", {{"a", "1"}}, true},
      {"a=1", {{"a", "1"}}, true},
      {"a==1", {{"a", "2"}}, false},
      {"a!=1", {{"a", "2"}}, true},
      {"a!=1", nlohmann::json::object(), true},
      {"a in (1,2)", {{"a", "2"}}, true},
      {"a notin (1,2)", {{"a", "2"}}, false},
      {"a", {{"a", ""}}, true},
      {"!a", {{"a", "1"}}, false},
      {"a=1,b=2", {{"a", "1"}, {"b", "2"}}, true},
      {"a=1,b=2", {{"a", "1"}}, false},
      {"tandem.dev/job=x", {{"tandem.dev/job", "x"}}, true},
  };
  for (const auto& c : cases) {
    auto sel = LabelSelector::Parse(c.selector);
    ASSERT_TRUE(sel.ok()) << c.selector;
    EXPECT_EQ(sel->MatchesLabels(c.labels), c.matches) << c.selector << " on " << c.labels.dump();
  }
  EXPECT_FALSE(LabelSelector::Parse("a in 1").ok());
  EXPECT_FALSE(LabelSelector::Parse("a b=1").ok());
}

TEST(SelectorTest, FieldSelector) {
  nlohmann::json o = {{"metadata", {{"name", "x"}, {"namespace", "d"}}}, {"status", {{"phase", "Running"}}}};
  auto s = FieldSelector::Parse("metadata.name=x,status.phase!=Failed");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->Matches(o));
  EXPECT_FALSE(FieldSelector::Parse("metadata.namespace==e")->Matches(o));
  EXPECT_FALSE(FieldSelector::Parse("nonsense").ok());
}

}  // namespace
}  // namespace tandem::kube
