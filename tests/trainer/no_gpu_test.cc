// A GPU job (spec.trainer.resources.requests[nvidia.com/gpu] >= 1) on this machine, which has no
// usable GPU: the real tandem-trainer and `tandem run` must fail at once with a message naming
// the field and the reason (CUDA's own, or the missing plugin's), never crash and never train on
// the CPU instead. Also: --check-device and --check-contract report the device rule's answer.
// On a machine with a GPU the failure cases are skipped (scripts/gpu-check.sh runs the job there).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

using testing::BinDir;
using testing::RunCommand;
using testing::SourceDir;

constexpr char kField[] = "spec.trainer.resources.requests[nvidia.com/gpu]";

bool MachineHasGpu() {
  return ::access("/dev/nvidia0", F_OK) == 0 || ::access("/dev/nvidiactl", F_OK) == 0;
}

std::string GpuJob() { return SourceDir() + "/examples/fashion-mnist-cnn-gpu.yaml"; }

// What the reason must look like in this build.
void ExpectReason(const std::string& output) {
#ifdef TANDEM_HAVE_CUDA_PLUGIN
  // The plugin loaded; CUDA itself said why (cudaGetDeviceCount: no driver / no device).
  EXPECT_NE(output.find("cuda"), std::string::npos) << output;
#else
  EXPECT_NE(output.find("libtandem-cuda.so was not found"), std::string::npos) << output;
#endif
}

TEST(NoGpuTest, TrainerFailsAtOnceNamingTheFieldAndTheReason) {
  if (MachineHasGpu()) GTEST_SKIP() << "this machine has a GPU";
  auto r = RunCommand(BinDir() + "/tandem-trainer " + GpuJob() + " 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;  // api::kExitInvalid: nothing ran, not retried
  EXPECT_NE(r.output.find(std::string(kField) + " = 1: this job trains on a GPU (GPU 0"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("no fall-back to the CPU"), std::string::npos) << r.output;
  ExpectReason(r.output);
  // At once: before it loads data or builds the model (and so before it could train anywhere).
  EXPECT_EQ(r.output.find("model:"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("test_accuracy="), std::string::npos) << r.output;
}

TEST(NoGpuTest, MissingPluginIsAClearErrorToo) {
  auto r = RunCommand("TANDEM_CUDA_PLUGIN=/nonexistent/libtandem-cuda.so " + BinDir() +
                      "/tandem-trainer " + GpuJob() + " 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(kField), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/libtandem-cuda.so (no such file)"), std::string::npos)
      << r.output;
}

TEST(NoGpuTest, CheckDeviceAnswersForBothKindsOfJob) {
  auto cpu = RunCommand(BinDir() + "/tandem-trainer --check-device " + SourceDir() +
                        "/examples/fashion-mnist-cnn.yaml 2>&1");
  EXPECT_EQ(cpu.exit_code, 0) << cpu.output;
  EXPECT_NE(cpu.output.find("device: cpu"), std::string::npos) << cpu.output;
  if (MachineHasGpu()) return;
  auto gpu = RunCommand(BinDir() + "/tandem-trainer --check-device " + GpuJob() + " 2>&1");
  EXPECT_EQ(gpu.exit_code, 2) << gpu.output;
  EXPECT_NE(gpu.output.find(kField), std::string::npos) << gpu.output;
}

TEST(NoGpuTest, CheckContractShowsTheDeviceAndTheOrdinal) {
  auto r = RunCommand("TANDEM_GPU_ORDINAL=1 " + BinDir() + "/tandem-trainer --check-contract " +
                      GpuJob() + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"device\":\"cuda (1 GPU per trainer)\""), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("\"gpuOrdinal\":1"), std::string::npos) << r.output;
  auto cpu = RunCommand(BinDir() + "/tandem-trainer --check-contract " + SourceDir() +
                        "/examples/fashion-mnist-cnn.yaml 2>&1");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.output;
  EXPECT_NE(cpu.output.find("\"device\":\"cpu\""), std::string::npos) << cpu.output;
  EXPECT_NE(cpu.output.find("\"gpuOrdinal\":-1"), std::string::npos) << cpu.output;
}

TEST(NoGpuTest, TandemRunFailsBeforeStartingAnyProcess) {
  if (MachineHasGpu()) GTEST_SKIP() << "this machine has a GPU";
  const std::string run_dir = ::testing::TempDir() + "/no-gpu-run";
  std::filesystem::remove_all(run_dir);
  auto r = RunCommand(BinDir() + "/tandem run " + GpuJob() + " --run-dir " + run_dir +
                      " --workers 2 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("tandem run: the job's trainers train on GPUs, and this machine cannot "
                          "give one its GPU 0"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(kField), std::string::npos) << r.output;
  ExpectReason(r.output);
  // Nothing was started: no worker logs, no checkpoints.
  EXPECT_FALSE(std::filesystem::exists(run_dir + "/logs/worker-0-trainer.log")) << r.output;
  EXPECT_FALSE(std::filesystem::exists(run_dir + "/checkpoints")) << r.output;
}

}  // namespace
}  // namespace tandem
