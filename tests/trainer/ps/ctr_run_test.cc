// `tandem run` of a small CTR job (2 trainers + 2 pservers, tables on the pservers): the summary
// line reports test_auc and best_auc, and training gets within 0.03 of the best achievable AUC.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"

namespace tandem {
namespace {

double Field(const std::string& out, const std::string& key) {
  const std::string pat = key + "=";
  size_t at = out.rfind(pat);
  if (at == std::string::npos) return -1;
  at += pat.size();
  const size_t end = out.find_first_of(" \n", at);
  double v = -1;
  if (!absl::SimpleAtod(out.substr(at, end - at), &v)) return -1;
  return v;
}

TEST(CtrRunTest, TwoWorkersReachTheBestAucWithin003) {
  const std::string run_dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("ctr-run-test-", ::getpid())).string();
  std::filesystem::remove_all(run_dir);
  const std::string manifest = absl::StrCat(testing::SourceDir(), "/tests/trainer/ps/ctr-small.yaml");
  const auto r = testing::RunCommand(absl::StrCat("OMP_WAIT_POLICY=passive ", testing::BinDir(),
                                                  "/tandem run --run-dir ", run_dir, " ",
                                                  manifest, " 2>&1"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double test_auc = Field(r.output, "test_auc");
  const double best_auc = Field(r.output, "best_auc");
  ASSERT_GT(best_auc, 0.7) << r.output;
  EXPECT_GT(test_auc, 0.70) << r.output;
  EXPECT_GT(test_auc, best_auc - 0.03) << r.output;
  EXPECT_LE(test_auc, best_auc + 0.01) << r.output;
  // The trainers pulled rows from the pservers (the tables were not local).
  EXPECT_GT(Field(r.output, "rows_pulled"), 0) << r.output;
  std::filesystem::remove_all(run_dir);
}

}  // namespace
}  // namespace tandem
