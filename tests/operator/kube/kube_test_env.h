// A FakeApiServer on loopback plus a KubeClient pointed at it, with the TrainingJob/Queue CRDs
// registered the way `kubectl apply -f crds/` would (from crds/ when present).
#pragma once

#include <memory>

#include "gtest/gtest.h"
#include "operator/kube/kube_client.h"
#include "operator/testing/fake_api_server.h"

namespace tandem::kube {

struct KubeTestEnv {
  explicit KubeTestEnv(testing::FakeApiServerOptions options = {}) : server(options) {
    EXPECT_TRUE(server.Start("127.0.0.1", 0).ok());
    KubeConfig cfg;
    cfg.server = server.url();
    cfg.token = options.token;
    client = std::make_unique<KubeClient>(cfg);
  }
  // Registers a minimal TrainingJob CRD (namespaced, status subresource, printer columns) and the
  // cluster-scoped Queue CRD.
  void RegisterCrds() {
    for (auto [plural, kind, scope] : {std::tuple{"trainingjobs", "TrainingJob", "Namespaced"},
                                       std::tuple{"queues", "Queue", "Cluster"}}) {
      nlohmann::json crd = {
          {"metadata", {{"name", std::string(plural) + ".tandem.dev"}}},
          {"spec",
           {{"group", "tandem.dev"},
            {"scope", scope},
            {"names", {{"plural", plural}, {"kind", kind}, {"shortNames", {plural == std::string("trainingjobs") ? "tj" : "tq"}}}},
            {"versions",
             {{{"name", "v1alpha1"},
               {"served", true},
               {"storage", true},
               {"subresources", {{"status", nlohmann::json::object()}}},
               {"additionalPrinterColumns",
                {{{"name", "Phase"}, {"type", "string"}, {"jsonPath", ".status.phase"}}}}}}}}}};
      auto r = client->Create(kCustomResourceDefinitions, "", crd);
      EXPECT_TRUE(r.ok()) << r.status();
    }
  }
  testing::FakeApiServer server;
  std::unique_ptr<KubeClient> client;
};

}  // namespace tandem::kube
