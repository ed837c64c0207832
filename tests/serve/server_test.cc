// tandem-serve's server over real loopback HTTP and gRPC: predictions equal the training
// network's, readiness follows the model, hostile requests get a 4xx naming the field, a corrupt
// version is skipped, and a hot reload under load fails no request.
#include "serve/server.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/model_snapshot.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/serving.grpc.pb.h"
#include "tests/common/test_util.h"
#include "tests/serve/test_model.h"

namespace tandem::serve {
namespace {

using json = nlohmann::json;
using tandem::testing::HttpRequestTo;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            absl::StrCat("serve-test-", ::getpid(), "-", ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  void StartServer(int workers = 2, int grpc_port = -1, int max_batch_size = 8,
                   absl::Duration max_queue_delay = absl::Microseconds(500)) {
    auto s = ModelServer::Start({.model_dir = dir_,
                                 .host = "127.0.0.1",
                                 .port = 0,
                                 .grpc_port = grpc_port,
                                 .workers = workers,
                                 .max_batch_size = max_batch_size,
                                 .max_queue_delay = max_queue_delay,
                                 .poll_interval = poll_interval_,
                                 .max_body_bytes = 64 << 10});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  static std::string Body(const std::vector<float>& x, const std::vector<std::vector<int32_t>>& f) {
    return json({{"instances", json::array({{{"x", x}, {"ids", f}}})}}).dump();
  }
  std::string dir_;
  absl::Duration poll_interval_ = absl::Milliseconds(20);
  std::unique_ptr<ModelServer> server_;
};

TEST_F(ServerTest, PredictionsEqualTheTrainingNetworksAndCarryTheVersion) {
  testing::SmallModel model(/*seed=*/7);
  ASSERT_EQ(model.Publish(dir_, /*step=*/40), 1);
  StartServer();
  const std::vector<std::vector<float>> xs = {{0.5f, -1.f, 2.f, 0.f}, {1.f, 1.f, 1.f, 1.f}};
  const std::vector<std::vector<std::vector<int32_t>>> fs = {{{1, 2}, {49}, {}}, {{7}, {3, 3, 60}, {1000000}}};
  json instances = json::array();
  for (size_t i = 0; i < xs.size(); ++i) instances.push_back({{"x", xs[i]}, {"ids", fs[i]}});
  auto r = HttpRequestTo(server_->port(), "POST", "/v1/predict", json({{"instances", instances}}).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json out = json::parse(r.body);
  EXPECT_EQ(out["model"]["version"], 1);
  EXPECT_EQ(out["model"]["step"], 40);
  ASSERT_EQ(out["predictions"].size(), 2u);
  for (size_t i = 0; i < xs.size(); ++i) {
    std::vector<float> want = model.Reference(xs[i], fs[i]);
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(out["predictions"][i][c].get<float>(), want[c], 1e-5) << i;
  }
  auto meta = HttpRequestTo(server_->port(), "GET", "/v1/model");
  ASSERT_EQ(meta.status, 200);
  EXPECT_EQ(json::parse(meta.body)["signature"]["outputSize"], 3);
  auto metrics = HttpRequestTo(server_->port(), "GET", "/metrics");
  EXPECT_TRUE(absl::StrContains(metrics.body, "tandem_serve_model_version 1")) << metrics.body;
  EXPECT_TRUE(absl::StrContains(metrics.body, "tandem_serve_model_step 40"));
  EXPECT_TRUE(absl::StrContains(metrics.body, "tandem_serve_requests_total{protocol=\"http\",code=\"200\"}"));
  // Prometheus' own linter accepts the exposition.
  const std::string path = dir_ + "/metrics.txt";
  std::ofstream(path) << metrics.body;
  ASSERT_EQ(tandem::testing::RunCommand("command -v promtool").exit_code, 0) << "promtool (package prometheus)";
  auto check = tandem::testing::RunCommand("promtool check metrics < " + path + " 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST_F(ServerTest, ReadyOnlyOnceAModelIsLoaded) {
  StartServer();
  EXPECT_EQ(HttpRequestTo(server_->port(), "GET", "/healthz").status, 200);
  EXPECT_EQ(HttpRequestTo(server_->port(), "GET", "/readyz").status, 503);
  auto early = HttpRequestTo(server_->port(), "POST", "/v1/predict", Body({0, 0, 0, 0}, {{}, {}, {}}));
  EXPECT_EQ(early.status, 503);
  testing::SmallModel model(1);
  model.Publish(dir_, 1);
  EXPECT_TRUE(tandem::testing::Eventually(
      [&] { return HttpRequestTo(server_->port(), "GET", "/readyz").status == 200; }));
  EXPECT_EQ(HttpRequestTo(server_->port(), "POST", "/v1/predict", Body({0, 0, 0, 0}, {{}, {}, {}})).status, 200);
}

struct Hostile {
  std::string name;
  std::string body;
  int status;
  std::string message;  // a substring of the answer
};

TEST_F(ServerTest, HostileRequestsGetA4xxNamingTheField) {
  testing::SmallModel model(3);
  model.Publish(dir_, 1);
  // No watcher in the way: it could load version 2 between its publication and the damage.
  poll_interval_ = absl::Hours(1);
  StartServer();
  const std::vector<Hostile> cases = {
      {"malformed json", "{\"instances\": [", 400, "malformed JSON"},
      {"not an object", "[1,2]", 400, "body: expected an object"},
      {"no instances", "{}", 400, "instances: required"},
      {"unknown top-level field", "{\"instances\": [], \"x\": 1}", 400, "x: unknown field"},
      {"empty instances", "{\"instances\": []}", 400, "instances: must hold at least one"},
      {"wrong shape", Body({1, 2}, {{}, {}, {}}), 400, "instances[0].x: expected 4 numbers, got 2"},
      {"string number", R"({"instances":[{"x":[1,2,"3",4],"ids":[[],[],[]]}]})", 400,
       "instances[0].x[2]: must be a number"},
      {"missing input", R"({"instances":[{"x":[1,2,3,4]}]})", 400, "instances[0].ids: required"},
      {"unknown input", R"({"instances":[{"x":[1,2,3,4],"ids":[[],[],[]],"colour":1}]})", 400,
       "instances[0].colour: unknown input (inputs: x, ids)"},
      {"wrong field count", R"({"instances":[{"x":[1,2,3,4],"ids":[[1],[2]]}]})", 400,
       "instances[0].ids: expected 3 fields, got 2"},
      {"negative feature id", R"({"instances":[{"x":[1,2,3,4],"ids":[[1],[-4],[]]}]})", 400,
       "instances[0].ids[1][0]: feature id must be an integer in [0, 2147483647], got -4"},
      {"huge feature id", R"({"instances":[{"x":[1,2,3,4],"ids":[[1],[],9999999999]}]})", 400,
       "instances[0].ids[2]: feature id"},
      {"fractional id", R"({"instances":[{"x":[1,2,3,4],"ids":[[1.5],[],[]]}]})", 400,
       "instances[0].ids[0][0]: feature id"},
      {"nan", R"({"instances":[{"x":[1,2,3,1e999],"ids":[[],[],[]]}]})", 400, ""},
      {"deep nesting", std::string(30000, '[') + std::string(30000, ']'), 400, "body: expected an object"},
      {"oversized body", json({{"instances", json::array({{{"x", std::vector<float>(20000, 1.f)}}})}}).dump(),
       413, "too large"},
  };
  for (const Hostile& c : cases) {
    auto r = HttpRequestTo(server_->port(), "POST", "/v1/predict", c.body);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    EXPECT_TRUE(absl::StrContains(r.body, c.message)) << c.name << ": " << r.body;
  }
  EXPECT_EQ(HttpRequestTo(server_->port(), "GET", "/v1/predict").status, 405);
  // Still serving.
  EXPECT_EQ(HttpRequestTo(server_->port(), "POST", "/v1/predict", Body({0, 0, 0, 0}, {{}, {}, {}})).status, 200);
}

TEST_F(ServerTest, ACorruptVersionIsSkippedAndTheCurrentOneKeepsServing) {
  testing::SmallModel model(3);
  model.Publish(dir_, 1);
  // No watcher in the way: it could load version 2 between its publication and the damage.
  poll_interval_ = absl::Hours(1);
  StartServer();
  ASSERT_EQ(server_->current()->version(), 1);
  model.Publish(dir_, 2);
  // Damage version 2 after it was committed: one byte of its weights.
  const std::string dense = absl::StrCat(snapshot::VersionPath(dir_, 2), "/", snapshot::kDenseFileName);
  {
    std::fstream f(dense, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x7f');
  }
  auto reloaded = server_->Reload();
  EXPECT_FALSE(reloaded.ok());
  EXPECT_TRUE(absl::StrContains(reloaded.status().message(), "dense.ckpt")) << reloaded.status();
  EXPECT_EQ(server_->current()->version(), 1);
  model.Publish(dir_, 3);
  reloaded = server_->Reload();  // what the watcher calls: skips the failed version 2
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_TRUE(*reloaded);
  EXPECT_EQ(server_->current()->version(), 3);
}

TEST_F(ServerTest, HotReloadUnderLoadFailsNoRequest) {
  testing::SmallModel model(11);
  model.Publish(dir_, 100, /*keep=*/2);
  StartServer(/*workers=*/2);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, regressions{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      int64_t last = 0;
      while (!stop.load()) {
        auto r = HttpRequestTo(server_->port(), "POST", "/v1/predict", Body({1, 2, 3, 4}, {{1}, {2}, {3}}));
        if (r.status != 200) {
          failed++;
          continue;
        }
        const int64_t v = json::parse(r.body)["model"]["version"].get<int64_t>();
        if (v < last) regressions++;
        last = v;
        ok++;
      }
    });
  }
  for (int v = 2; v <= 6; ++v) {
    const int before = ok.load();
    ASSERT_TRUE(tandem::testing::Eventually([&] { return ok.load() > before + 20; }));
    model.net->InitParameters(100 + v);
    model.Publish(dir_, 100 * v, /*keep=*/2);
    ASSERT_TRUE(tandem::testing::Eventually([&] { return server_->current()->version() == v; }));
  }
  const int before = ok.load();
  ASSERT_TRUE(tandem::testing::Eventually([&] { return ok.load() > before + 20; }));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(regressions.load(), 0);
  EXPECT_GT(ok.load(), 100);
  // The newest version answers with its own weights.
  auto r = HttpRequestTo(server_->port(), "POST", "/v1/predict", Body({1, 2, 3, 4}, {{1}, {2}, {3}}));
  std::vector<float> want = model.Reference({1, 2, 3, 4}, {{1}, {2}, {3}});
  json out = json::parse(r.body);
  EXPECT_EQ(out["model"]["version"], 6);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(out["predictions"][0][c].get<float>(), want[c], 1e-5);
  // Pruned to the newest two.
  EXPECT_EQ(*snapshot::ListVersions(dir_), (std::vector<int64_t>{5, 6}));
}

// Batch 1 without delay: a request runs on its connection's thread when a worker slot is free,
// else it queues for a worker thread. With more clients than slots both happen; every client
// sends its own inputs and must get exactly its own answer.
TEST_F(ServerTest, BatchOneOnCallerThreadsAndWorkersAnswersEachRequestItsOwn) {
  testing::SmallModel model(5);
  model.Publish(dir_, 10);
  StartServer(/*workers=*/2, /*grpc_port=*/-1, /*max_batch_size=*/1, absl::ZeroDuration());
  constexpr int kClients = 6, kRequests = 60;
  auto input = [](int c, int i) {
    return std::make_pair(std::vector<float>{static_cast<float>(c), static_cast<float>(i % 7), 1.f, -0.5f},
                          std::vector<std::vector<int32_t>>{{c}, {i}, {c, i}});
  };
  std::vector<std::vector<std::vector<float>>> want(kClients);  // the reference network is not thread-safe
  for (int c = 0; c < kClients; ++c)
    for (int i = 0; i < kRequests; ++i) want[c].push_back(model.Reference(input(c, i).first, input(c, i).second));
  auto ones = [&] {  // batches of one example so far (the metrics are process-wide)
    const std::string m = HttpRequestTo(server_->port(), "GET", "/metrics").body;
    const std::string key = "tandem_serve_batch_size_bucket{le=\"1\"} ";
    const size_t at = m.find(key);
    return at == std::string::npos ? -1 : std::stol(m.substr(at + key.size()));
  };
  const long ones_before = ones();
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kRequests; ++i) {
        auto r = HttpRequestTo(server_->port(), "POST", "/v1/predict", Body(input(c, i).first, input(c, i).second));
        if (r.status != 200) {
          failed++;
          continue;
        }
        const json p = json::parse(r.body)["predictions"][0];
        for (int k = 0; k < 3; ++k)
          if (std::fabs(p[k].get<float>() - want[c][i][k]) > 1e-5) {
            wrong++;
            break;
          }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  // Every request ran as a batch of one example.
  EXPECT_EQ(ones() - ones_before, kClients * kRequests);
}

TEST_F(ServerTest, GrpcPredictMatchesHttpAndValidatesTheSameWay) {
  testing::SmallModel model(5);
  model.Publish(dir_, 9);
  StartServer(/*workers=*/1, /*grpc_port=*/0);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = serving::Predictor::NewStub(channel);
  serving::PredictRequest req;
  serving::Instance* inst = req.add_instances();
  serving::InputValue* x = inst->add_inputs();
  x->set_name("x");
  for (float v : {0.5f, 0.25f, -1.f, 3.f}) x->add_values(v);
  serving::InputValue* ids = inst->add_inputs();
  ids->set_name("ids");
  for (int64_t id : {4, 5, 6}) ids->add_ids(id);
  for (uint32_t len : {2u, 0u, 1u}) ids->add_field_lengths(len);
  serving::PredictResponse resp;
  grpc::ClientContext ctx;
  grpc::Status st = stub->Predict(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.model_version(), 1);
  EXPECT_EQ(resp.model_step(), 9);
  std::vector<float> want = model.Reference({0.5f, 0.25f, -1.f, 3.f}, {{4, 5}, {}, {6}});
  ASSERT_EQ(resp.predictions_size(), 1);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(resp.predictions(0).values(c), want[c], 1e-5);

  ids->set_ids(1, -3);
  grpc::ClientContext ctx2;
  st = stub->Predict(&ctx2, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(st.error_message(), "instances[0].ids.ids[1]: feature id")) << st.error_message();
}

}  // namespace
}  // namespace tandem::serve
