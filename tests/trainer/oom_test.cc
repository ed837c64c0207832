// tandem-trainer on a model that cannot fit its memory: it exits with kOutOfMemoryExitCode (not
// retried by the default restart policy) and a message naming the allocation and the limit, and
// never dumps core. Two walls: a model no machine can hold (the allocation fails under the
// kernel's overcommit check) and a small model under a 1.5 GiB address-space limit (ulimit -v,
// what a container's memory limit does to malloc before the OOM killer would).
#include <fstream>
#include <string>

#include "common/out_of_memory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;
using testing::BinDir;
using testing::RunCommand;

// `memory`: the trainer's request, large enough that validation's estimate (a lower bound,
// trainer/model/memory_estimate.h) lets the job start: these tests are about an allocation
// that fails anyway.
std::string Manifest(const std::string& name, long long hidden, const std::string& memory) {
  const std::string path = ::testing::TempDir() + "/" + name + ".yaml";
  std::ofstream(path) << R"(apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: )" << name << R"(, namespace: default}
spec:
  image: tandem/tandem:0.1.0
  workers: {count: 1}
  trainer: {threads: 1, resources: {requests: {memory: )" << memory << R"(}}}
  passes: 1
  data:
    train: {format: idx}
    test: {format: idx}
    batchSize: 64
  model:
    inputs:
      - {name: image, source: features, shape: [1, 28, 28]}
      - {name: label, source: labels}
    layers:
      - {name: fc1, type: fc, input: image, size: )" << hidden << R"(}
      - {name: fc2, type: fc, input: fc1, size: 10}
      - {name: cost, type: softmax_cross_entropy, inputs: [fc2, label]}
  optimizer: {type: adam, learningRate: 0.001}
)";
  return path;
}

TEST(TrainerOutOfMemoryTest, AModelNoMachineHoldsExitsCleanly) {
  // fc1 alone: 784 x 2^36 floats = 215 TB.
  const std::string job = Manifest("oom-huge", 1LL << 36, "1Pi");
  auto r = RunCommand("ulimit -c 0; " + BinDir() + "/tandem-trainer " + job + " 2>&1");
  EXPECT_EQ(r.exit_code, kOutOfMemoryExitCode) << r.output;
  EXPECT_THAT(r.output, HasSubstr("tandem-trainer: out of memory: cannot allocate"));
  EXPECT_THAT(r.output, HasSubstr("not retried"));
}

TEST(TrainerOutOfMemoryTest, AModelOverTheAddressSpaceLimitExitsCleanly) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan reserves terabytes of address space; ulimit -v cannot apply";
#endif
  // fc1: 784 x 2^20 floats = 3.2 GiB of weights, before gradients and Adam's state.
  const std::string job = Manifest("oom-limit", 1LL << 20, "16Gi");
  auto r = RunCommand("ulimit -c 0; ulimit -v 1572864; " + BinDir() + "/tandem-trainer " + job +
                      " 2>&1");
  EXPECT_EQ(r.exit_code, kOutOfMemoryExitCode) << r.output;
  EXPECT_THAT(r.output, HasSubstr("out of memory"));
  EXPECT_THAT(r.output, HasSubstr("address-space limit 1610612736 bytes"));
}

}  // namespace
}  // namespace tandem
