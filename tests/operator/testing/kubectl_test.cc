// The real kubectl against tandem-fake-apiserver, for the user's flow: apply the CRDs, apply a
// TrainingJob, get it (server-side Table with the CRD's printer columns), describe it (with its
// Events), change and re-apply it, delete it. kubectl is the one built with the real control plane
// (scripts/tools/build-k8s.sh, which scripts/test.sh runs first); without it the test fails.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/yaml_json.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

extern char** environ;

namespace tandem {
namespace {

namespace fs = std::filesystem;
using tandem::testing::RunCommand;

// The first TrainingJob manifest under examples/, else the test's own fixture.
std::string TrainingJobManifest(std::string* name) {
  std::vector<fs::path> candidates;
  fs::path examples = fs::path(tandem::testing::SourceDir()) / "examples";
  if (fs::exists(examples)) {
    for (const auto& e : fs::recursive_directory_iterator(examples)) {
      if (e.path().extension() == ".yaml") candidates.push_back(e.path());
    }
    std::sort(candidates.begin(), candidates.end());
  }
  candidates.push_back(fs::path(tandem::testing::SourceDir()) / "tests/operator/testing/testdata/trainingjob.yaml");
  for (const auto& p : candidates) {
    auto docs = YamlFileToJson(p.string());
    if (!docs.ok() || docs->size() != 1 || !(*docs)[0].is_object()) continue;
    const auto& d = (*docs)[0];
    if (d.value("kind", "") == "TrainingJob" && d.contains("metadata")) {
      *name = d["metadata"].value("name", "");
      return p.string();
    }
  }
  return "";
}

class KubectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto built = RunCommand(tandem::testing::SourceDir() + "/scripts/tools/build-k8s.sh 2>/dev/null");
    ASSERT_EQ(built.exit_code, 0) << "scripts/tools/build-k8s.sh: " << built.output;
    std::string kubectl_bin(absl::StripAsciiWhitespace(built.output));
    kubectl_bin = kubectl_bin.substr(kubectl_bin.find_last_of('\n') + 1) + "/kubectl";
    ASSERT_EQ(RunCommand(kubectl_bin + " version --client").exit_code, 0) << "no kubectl at " << kubectl_bin;
    dir_ = fs::temp_directory_path() / absl::StrCat("tandem_kubectl_", ::getpid());
    fs::create_directories(dir_);
    std::string bin = tandem::testing::BinDir() + "/tandem-fake-apiserver";
    std::string port_file = (dir_ / "port").string(), kubeconfig = (dir_ / "kubeconfig").string();
    std::vector<std::string> args = {bin, "--port", "0", "--port-file", port_file, "--kubeconfig-out", kubeconfig};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(posix_spawn(&pid_, bin.c_str(), nullptr, nullptr, argv.data(), environ), 0) << bin;
    for (int i = 0; i < 500 && !fs::exists(port_file); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(fs::exists(port_file)) << "tandem-fake-apiserver did not start";
    kubectl_ = absl::StrCat(kubectl_bin, " --kubeconfig ", kubeconfig, " --cache-dir ", (dir_ / "cache").string(), " ");
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  tandem::testing::CommandResult Kubectl(const std::string& args) {
    auto r = RunCommand(kubectl_ + args);
    std::cerr << "$ kubectl " << args << "\n" << r.output;
    return r;
  }

  fs::path dir_;
  pid_t pid_ = -1;
  std::string kubectl_;
};

TEST_F(KubectlTest, UserFlow) {
  std::string src = tandem::testing::SourceDir();
  auto r = Kubectl("apply -f " + src + "/crds/");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("trainingjobs.tandem.dev created"), std::string::npos);
  EXPECT_NE(r.output.find("queues.tandem.dev created"), std::string::npos);

  r = Kubectl("api-resources --api-group=tandem.dev");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("tj"), std::string::npos) << "the short name is discoverable";

  std::string name;
  std::string manifest = TrainingJobManifest(&name);
  ASSERT_FALSE(manifest.empty());
  r = Kubectl("apply -f " + manifest);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("trainingjob.tandem.dev/" + name + " created"), std::string::npos);

  r = Kubectl("get tj");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* column : {"NAME", "PHASE", "WORKERS", "QUEUE", "PROGRESS", "AGE"}) {
    EXPECT_NE(r.output.find(column), std::string::npos) << column;
  }
  EXPECT_NE(r.output.find(name), std::string::npos);

  // Status as the operator would write it, through the status subresource.
  r = Kubectl("patch trainingjob " + name +
              " --subresource=status --type=merge -p '{\"status\":{\"phase\":\"Running\","
              "\"progress\":{\"summary\":\"pass 2/3 41%\"}}}'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Kubectl("get trainingjobs");
  EXPECT_NE(r.output.find("Running"), std::string::npos);
  EXPECT_NE(r.output.find("pass 2/3 41%"), std::string::npos);

  r = Kubectl("describe tj " + name);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Name:         " + name), std::string::npos);
  EXPECT_NE(r.output.find("Kind:         TrainingJob"), std::string::npos);
  EXPECT_NE(r.output.find("Events:"), std::string::npos);

  r = Kubectl("apply -f " + manifest);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("unchanged"), std::string::npos);

  r = Kubectl("get tj " + name + " -o jsonpath='{.metadata.generation}'");
  EXPECT_EQ(r.output.substr(r.output.size() - 1), "1");

  // A spec change bumps the generation; the status written above survives it.
  r = Kubectl("patch tj " + name + " --type=merge -p '{\"spec\":{\"passes\":5}}'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Kubectl("get tj " + name + " -o jsonpath='{.metadata.generation} {.spec.passes} {.status.phase}'");
  EXPECT_NE(r.output.find("2 5 Running"), std::string::npos) << r.output;

  r = Kubectl("delete tj " + name);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("deleted"), std::string::npos);
  r = Kubectl("get tj " + name);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("NotFound"), std::string::npos);
}

}  // namespace
}  // namespace tandem
