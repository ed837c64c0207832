// The default Queue (operator/controller/default_queue.h) against the API server stand-in: created
// when missing, never updated, created once the Queue CRD appears, stopped on request, and the
// operator refuses a bad --default-queue file with the file and field at fault.
#include "operator/controller/default_queue.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "api/manifest.h"
#include "gtest/gtest.h"
#include "operator/kube/api_error.h"
#include "operator/kube/kube_client.h"
#include "operator/kube/resource.h"
#include "operator/testing/fake_api_server.h"
#include "tests/common/test_util.h"

namespace tandem::controller {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class DefaultQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start("127.0.0.1", 0).ok());
    kube::KubeConfig cfg;
    cfg.server = server_.url();
    client_ = std::make_unique<kube::KubeClient>(cfg);
    dir_ = fs::temp_directory_path() / absl::StrCat("tandem_default_queue_", ::getpid(), "_",
                                                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void InstallCrds() {
    ASSERT_TRUE(kube::testing::InstallCrds(client_.get(), tandem::testing::SourceDir() + "/crds").ok());
  }
  api::Queue Load(const std::string& yaml) {
    fs::path p = dir_ / "queue.yaml";
    std::ofstream(p) << yaml;
    auto q = api::LoadQueue(p.string(), {});
    EXPECT_TRUE(q.ok()) << q.status();
    return q.ok() ? *q : api::Queue{};
  }

  kube::testing::FakeApiServer server_;
  std::unique_ptr<kube::KubeClient> client_;
  fs::path dir_;
  DefaultQueueOptions fast_{0.05, 0.2};
};

constexpr char kQueue[] = R"(apiVersion: tandem.dev/v1alpha1
kind: Queue
metadata:
  name: default
  labels: {app.kubernetes.io/part-of: tandem}
spec:
  weight: 3
  guaranteed: {cpu: "8", memory: 32Gi, nvidia.com/gpu: 1}
)";

TEST_F(DefaultQueueTest, CreatesTheQueueWhenMissing) {
  InstallCrds();
  ASSERT_TRUE(EnsureDefaultQueue(client_.get(), Load(kQueue), [] { return false; }, fast_).ok());
  auto q = client_->Get(kube::kQueues, "", "default");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)["spec"]["weight"], 3);
  EXPECT_EQ((*q)["spec"]["guaranteed"]["memory"], "32Gi");
  EXPECT_EQ((*q)["metadata"]["labels"]["app.kubernetes.io/part-of"], "tandem");
  EXPECT_FALSE(q->contains("status")) << "the operator writes a Queue's status only through the subresource";
}

// The chart's default values: no guarantee. The CRD requires cpu, memory and nvidia.com/gpu
// together in spec.guaranteed, so an empty one must not be sent (a real API server refuses it).
TEST_F(DefaultQueueTest, NoGuaranteeSendsNoGuaranteedField) {
  InstallCrds();
  ASSERT_TRUE(EnsureDefaultQueue(client_.get(),
                                 Load("apiVersion: tandem.dev/v1alpha1\nkind: Queue\nmetadata: {name: default}\n"
                                      "spec: {weight: 1}\n"),
                                 [] { return false; }, fast_)
                  .ok());
  auto q = client_->Get(kube::kQueues, "", "default");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)["spec"]["weight"], 1);
  EXPECT_FALSE((*q)["spec"].contains("guaranteed")) << q->dump();
}

TEST_F(DefaultQueueTest, NeverUpdatesAnExistingQueue) {
  InstallCrds();
  // An admin's edit (weight 7, no guarantee) survives the operator's restarts and upgrades.
  ASSERT_TRUE(client_->Create(kube::kQueues, "", {{"metadata", {{"name", "default"}}}, {"spec", {{"weight", 7}}}}).ok());
  ASSERT_TRUE(EnsureDefaultQueue(client_.get(), Load(kQueue), [] { return false; }, fast_).ok());
  auto q = client_->Get(kube::kQueues, "", "default");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)["spec"]["weight"], 7);
  EXPECT_FALSE((*q)["spec"].contains("guaranteed"));
}

TEST_F(DefaultQueueTest, WaitsForTheQueueCrdThenCreates) {
  // No CRDs yet: the API server answers 404 for queues (the race the chart's hook lost).
  api::Queue queue = Load(kQueue);
  std::atomic<bool> done{false};
  absl::Status result;
  std::thread t([&] {
    result = EnsureDefaultQueue(client_.get(), queue, [] { return false; }, fast_);
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_FALSE(done) << "gave up before the CRD existed: " << result;
  InstallCrds();
  t.join();
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_TRUE(client_->Get(kube::kQueues, "", "default").ok());
}

TEST_F(DefaultQueueTest, StopsWhenAskedWhileWaiting) {
  std::atomic<bool> stop{false};
  api::Queue queue = Load(kQueue);
  absl::Status result;
  std::thread t([&] { result = EnsureDefaultQueue(client_.get(), queue, [&] { return stop.load(); }, fast_); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  t.join();
  EXPECT_TRUE(absl::IsCancelled(result)) << result;
}

TEST_F(DefaultQueueTest, LoadQueueNamesTheFileAndField) {
  fs::path p = dir_ / "bad.yaml";
  std::ofstream(p) << "apiVersion: tandem.dev/v1alpha1\nkind: Queue\nmetadata: {name: default}\nspec: {weight: -1}\n";
  auto q = api::LoadQueue(p.string(), {});
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find(p.string()), std::string::npos) << q.status();
  EXPECT_NE(q.status().message().find("spec.weight"), std::string::npos) << q.status();
  // A TrainingJob is not a Queue.
  std::ofstream(p) << "apiVersion: tandem.dev/v1alpha1\nkind: Sweep\nmetadata: {name: s}\n";
  EXPECT_FALSE(api::LoadQueue(p.string(), {}).ok());
}

TEST_F(DefaultQueueTest, TheOperatorRefusesABadFileAtStart) {
  fs::path p = dir_ / "bad.yaml";
  std::ofstream(p) << "apiVersion: tandem.dev/v1alpha1\nkind: Queue\nmetadata: {name: default}\nspec: {weight: -1}\n";
  auto r = tandem::testing::RunProgram(
      {tandem::testing::BinDir() + "/tandem-operator", "--no-leader-elect", "--metrics-port", "-1",
       "--kubeconfig", "/nonexistent", "--default-queue", p.string()},
      {});
  const std::string& out = r.output;
  EXPECT_EQ(r.exit_code, 2) << out;
  EXPECT_NE(out.find("spec.weight"), std::string::npos) << out;
  EXPECT_NE(out.find("--default-queue"), std::string::npos) << out;
}

}  // namespace
}  // namespace tandem::controller
