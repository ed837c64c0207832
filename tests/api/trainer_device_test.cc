// The one device rule (api/trainer_device.h): which device a job's trainers train on, read from
// parsed manifests (defaults applied, as every binary reads them), and which GPU ordinal a trainer
// gets, with TANDEM_GPU_ORDINAL through the worker contract.
#include "api/trainer_device.h"

#include "api/worker_contract.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tandem::api {

void PrintTo(const TrainerDevice& d, std::ostream* os) { *os << d.ToString(); }

namespace {

// A minimal valid job whose spec.trainer is `trainer`.
TrainingJob JobWithTrainer(const nlohmann::json& trainer) {
  nlohmann::json job = {{"apiVersion", "tandem.dev/v1alpha1"},
                        {"kind", "TrainingJob"},
                        {"metadata", {{"name", "j"}, {"namespace", "default"}}},
                        {"spec", {{"workers", {{"count", 2}}}, {"model", {{"layers", nlohmann::json::array()}}}}}};
  if (!trainer.is_null()) job["spec"]["trainer"] = trainer;
  auto parsed = TrainingJobFromJson(job, {});
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : TrainingJob{};
}

TEST(TrainerDeviceTest, GpuRequestSelectsCudaElseCpu) {
  struct Case {
    const char* name;
    nlohmann::json trainer;
    TrainerDevice want;
  };
  const TrainerDevice cpu{};
  const Case cases[] = {
      {"no trainer section", nullptr, cpu},
      {"cpu and memory only", {{"resources", {{"requests", {{"cpu", "2"}, {"memory", "1Gi"}}}}}}, cpu},
      {"zero GPUs", {{"resources", {{"requests", {{"nvidia.com/gpu", 0}}}}}}, cpu},
      {"one GPU requested", {{"resources", {{"requests", {{"nvidia.com/gpu", 1}}}}}},
       {TrainerDeviceKind::kCuda, 1}},
      {"two GPUs as a string", {{"resources", {{"requests", {{"nvidia.com/gpu", "2"}}}}}},
       {TrainerDeviceKind::kCuda, 2}},
      // The defaults copy a limit into a missing request: a limit alone asks for the GPU.
      {"limit only", {{"resources", {{"limits", {{"nvidia.com/gpu", 1}}}}}},
       {TrainerDeviceKind::kCuda, 1}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(SelectTrainerDevice(JobWithTrainer(c.trainer).spec), c.want) << c.name;
  }
}

TEST(TrainerDeviceTest, PServerGpusDoNotMakeATrainerGpuJob) {
  TrainingJobSpec spec;
  spec.pserver.resources.requests[kResourceGpu] = *Quantity::Parse("1");
  EXPECT_EQ(SelectTrainerDevice(spec).kind, TrainerDeviceKind::kCpu);
}

TEST(TrainerDeviceTest, UndefaultedLimitCounts) {
  TrainingJobSpec spec;
  spec.trainer.resources.limits[kResourceGpu] = *Quantity::Parse("1");
  EXPECT_EQ(SelectTrainerDevice(spec), (TrainerDevice{TrainerDeviceKind::kCuda, 1}));
}

TEST(TrainerDeviceTest, OrdinalsByLocalRank) {
  const TrainerDevice one{TrainerDeviceKind::kCuda, 1}, two{TrainerDeviceKind::kCuda, 2};
  EXPECT_EQ(TrainerGpuOrdinal(one, 0), 0);
  EXPECT_EQ(TrainerGpuOrdinal(one, 3), 3);
  EXPECT_EQ(TrainerGpuOrdinal(two, 0), 0);
  EXPECT_EQ(TrainerGpuOrdinal(two, 1), 2);  // the first of its own two
  EXPECT_EQ(TrainerGpuOrdinal(TrainerDevice{}, 0), -1);
  EXPECT_EQ(TrainerGpuOrdinal(TrainerDevice{}, 2), -1);
}

TEST(TrainerDeviceTest, Describes) {
  EXPECT_EQ(TrainerDevice{}.ToString(), "cpu");
  EXPECT_EQ((TrainerDevice{TrainerDeviceKind::kCuda, 1}).ToString(), "cuda (1 GPU per trainer)");
  EXPECT_EQ((TrainerDevice{TrainerDeviceKind::kCuda, 4}).ToString(), "cuda (4 GPUs per trainer)");
}

TEST(TrainerDeviceTest, GpuOrdinalCrossesTheContractOnlyWhenSet) {
  WorkerContract c;
  c.role = WorkerRole::kTrainer;
  c.manifest_path = "/job.yaml";
  Environment env;
  for (const EnvVar& e : RenderWorker(c, "").env) env[e.name] = e.value;
  EXPECT_EQ(env.count(kEnvGpuOrdinal), 0u);
  auto back = ParseWorkerContract(WorkerRole::kTrainer, "/job.yaml", env);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->gpu_ordinal, -1);

  c.gpu_ordinal = 3;
  env.clear();
  for (const EnvVar& e : RenderWorker(c, "").env) env[e.name] = e.value;
  EXPECT_EQ(env[kEnvGpuOrdinal], "3");
  back = ParseWorkerContract(WorkerRole::kTrainer, "/job.yaml", env);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->gpu_ordinal, 3);

  env[kEnvGpuOrdinal] = "-2";
  back = ParseWorkerContract(WorkerRole::kTrainer, "/job.yaml", env);
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find(kEnvGpuOrdinal), std::string::npos);

  WorkerContract ps = c;  // the pserver never trains on a GPU
  ps.role = WorkerRole::kPServer;
  ps.token = "t";
  ps.pservers = {{"127.0.0.1", 7100}};
  ASSERT_TRUE(ValidateWorkerContract([&] { WorkerContract ok = ps; ok.gpu_ordinal = -1; return ok; }()).ok());
  const absl::Status refused = ValidateWorkerContract(ps);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find(kEnvGpuOrdinal), std::string::npos) << refused;
}

}  // namespace
}  // namespace tandem::api
