// tandem-fake-apiserver: the in-repo Kubernetes API server stand-in as a process, for kubectl and
// for running tandem-operator without a cluster. See docs/operator.md for what it reproduces.
//
//   tandem-fake-apiserver --port 0 --port-file /tmp/port --kubeconfig-out /tmp/kubeconfig
//   kubectl --kubeconfig /tmp/kubeconfig apply -f crds/
#include <csignal>
#include <fstream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/logging.h"
#include "operator/testing/fake_api_server.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Kubernetes API server stand-in (HTTP, in-memory) for tests and local runs"};
  tandem::AddVersionFlag(app, "tandem-fake-apiserver");
  std::string host = "127.0.0.1";
  int port = 0;
  std::string port_file, kubeconfig_out, token;
  tandem::kube::testing::FakeApiServerOptions options;
  app.add_option("--host", host, "Address to listen on");
  app.add_option("--port", port, "Port (0 picks a free one)");
  app.add_option("--port-file", port_file, "Write the chosen port to this file once listening");
  app.add_option("--kubeconfig-out", kubeconfig_out, "Write a kubeconfig pointing at this server");
  app.add_option("--token", token, "Require this bearer token on every request");
  app.add_option("--compaction-window", options.compaction_window,
                 "Changes kept for watches; older resourceVersions get 410 Gone");
  app.add_option("--bookmark-interval", options.bookmark_interval_s, "Seconds between watch bookmarks");
  if (auto code = tandem::ParseCommandLine(app, argc, argv)) return *code;
  tandem::InitLogging("fake-apiserver");
  options.token = token;

  tandem::kube::testing::FakeApiServer server(options);
  if (auto s = server.Start(host, port); !s.ok()) {
    TANDEM_LOG(error, "cannot listen on {}:{}: {}", host, port, s.ToString());
    return 1;
  }
  std::string url = absl::StrCat("http://", host, ":", server.port());
  if (!kubeconfig_out.empty()) {
    std::ofstream out(kubeconfig_out);
    out << "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: " << url
        << "\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n"
        << "current-context: fake\nusers:\n- name: fake\n  user:\n"
        << (token.empty() ? "    {}\n" : "    token: " + token + "\n");
    if (!out) {
      TANDEM_LOG(error, "cannot write {}", kubeconfig_out);
      return 1;
    }
  }
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << server.port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  TANDEM_LOG(info, "serving the Kubernetes API stand-in on {}", url);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server.Stop();
  return 0;
}
