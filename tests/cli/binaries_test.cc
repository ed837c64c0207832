// Every shipped binary answers --help and --version, and rejects unknown flags with exit code 2.
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

using testing::BinDir;
using testing::RunCommand;

class BinariesTest : public ::testing::TestWithParam<const char*> {};

TEST_P(BinariesTest, HelpVersionAndBadFlags) {
  const std::string bin = BinDir() + "/" + GetParam();
  auto help = RunCommand(bin + " --help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_NE(help.output.find("Usage"), std::string::npos) << help.output;

  auto version = RunCommand(bin + " --version");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.output.rfind(std::string(GetParam()) + " ", 0), 0u) << version.output;

  auto bad = RunCommand(bin + " --no-such-flag");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--no-such-flag"), std::string::npos) << bad.output;
}

INSTANTIATE_TEST_SUITE_P(AllBinaries, BinariesTest,
                         ::testing::Values("tandem", "tandem-trainer", "tandem-pserver",
                                           "tandem-operator", "tandem-fake-apiserver"));

}  // namespace
}  // namespace tandem
