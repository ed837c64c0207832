// `tandem validate` end to end: the malformed-manifest corpus (each file rejected with the right
// field path), the good manifests, and hostile inputs (binary, huge, devices, random mutations)
// that must produce a clean report, never a crash or a hang.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "api/manifest.h"
#include "cli/validate.h"
#include "gtest/gtest.h"
#include "tests/common/test_util.h"
#include "trainer/model/trainer_spec.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using testing::BinDir;
using testing::RunCommand;
using testing::SourceDir;

std::string Corpus() { return SourceDir() + "/tests/cli/manifests"; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

testing::CommandResult Validate(const std::string& args) {
  // `timeout` turns a hang into a failure (exit 124) instead of a stuck test run.
  return RunCommand("timeout 30 " + BinDir() + "/tandem validate " + args + " 2>&1");
}

std::vector<std::string> BadFiles() {
  std::vector<std::string> files;
  std::error_code ec;  // a missing corpus fails CorpusIsLargeEnough, not the whole binary
  for (const auto& e : fs::directory_iterator(Corpus() + "/bad", ec))
    if (e.path().extension() == ".yaml") files.push_back(e.path().stem().string());
  std::sort(files.begin(), files.end());
  return files;
}

class BadManifestTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BadManifestTest, RejectedWithTheExpectedFieldPath) {
  const std::string yaml = Corpus() + "/bad/" + GetParam() + ".yaml";
  std::string expect = ReadAll(Corpus() + "/bad/" + GetParam() + ".expect");
  while (!expect.empty() && expect.back() == '\n') expect.pop_back();
  ASSERT_FALSE(expect.empty()) << "missing " << GetParam() << ".expect";
  auto r = Validate(yaml);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(yaml + expect), std::string::npos) << "want: " << yaml << expect << "\ngot:\n" << r.output;
  // Every line names the file first.
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) EXPECT_EQ(line.rfind(yaml, 0), 0u) << line;
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadManifestTest, ::testing::ValuesIn(BadFiles()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(ValidateTest, CorpusIsLargeEnough) { EXPECT_GE(BadFiles().size(), 40u); }

TEST(ValidateTest, GoodManifestsPass) {
  for (const char* f : {"trainingjob", "queue", "multi", "minimal"}) {
    auto r = Validate(Corpus() + "/good/" + f + ".yaml");
    EXPECT_EQ(r.exit_code, 0) << f << ":\n" << r.output;
    EXPECT_NE(r.output.find(": valid: "), std::string::npos) << r.output;
  }
}

// With the trainer's spec library in the build, its checks of spec.model join the API's.
TEST(ValidateTest, TrainerSectionsAreValidatedWhenTheTrainerIsBuilt) {
#ifndef TANDEM_HAVE_TRAINER_SPEC
  GTEST_SKIP() << "tandem_trainer_spec is not part of this build";
#else
  const std::string path = ::testing::TempDir() + "/model.yaml";
  std::ofstream(path) << "apiVersion: tandem.dev/v1alpha1\nkind: TrainingJob\nmetadata: {name: m}\n"
                         "spec: {model: {layers: []}, workers: {count: 0}}\n";
  auto r = Validate(path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(path + ": spec.workers.count: must be >= 1, got 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(path + ": spec.model.inputs:"), std::string::npos) << r.output;
#endif
}

TEST(ValidateTest, ExampleQueuesAreValid) {
  auto r = Validate(SourceDir() + "/examples/queues.yaml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("queues.yaml#3: valid: Queue default"), std::string::npos) << r.output;
}

TEST(ValidateTest, ReportsEveryProblemOfEveryFile) {
  auto r = Validate(Corpus() + "/good/queue.yaml " + Corpus() + "/bad/workers-zero.yaml " + Corpus() +
                    "/bad/passes-zero.yaml /nonexistent.yaml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("queue.yaml: valid: Queue team-a"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("workers-zero.yaml: spec.workers.count: must be >= 1, got 0"), std::string::npos);
  EXPECT_NE(r.output.find("passes-zero.yaml: spec.passes: must be >= 1, got 0"), std::string::npos);
  EXPECT_NE(r.output.find("/nonexistent.yaml: cannot open: No such file or directory"), std::string::npos);
}

TEST(ValidateTest, ManyProblemsInOneFileAreAllListed) {
  const std::string path = ::testing::TempDir() + "/many.yaml";
  std::ofstream(path) << "apiVersion: tandem.dev/v1alpha1\nkind: TrainingJob\nmetadata: {name: X}\n"
                         "spec: {workers: {count: 0}, passes: 0, sync: {dense: x}, typo: 1}\n";
  auto r = Validate(path);
  EXPECT_EQ(r.exit_code, 1);
  for (const char* want : {"metadata.name:", "spec.workers.count:", "spec.passes:", "spec.sync.dense:",
                           "spec.typo:", "spec.model: required"})
    EXPECT_NE(r.output.find(path + ": " + want), std::string::npos) << want << "\n" << r.output;
}

TEST(ValidateTest, HostileFilesGiveACleanReport) {
  const std::string dir = ::testing::TempDir();
  std::mt19937 rng(7);
  std::string binary(1 << 16, '\0');
  for (char& c : binary) c = static_cast<char>(rng());
  std::ofstream(dir + "/binary.yaml", std::ios::binary) << binary;
  std::string no_nul = binary;
  for (char& c : no_nul)
    if (c == 0) c = 'x';
  std::ofstream(dir + "/bytes.yaml", std::ios::binary) << no_nul;
  std::ofstream(dir + "/huge.yaml") << std::string(17 << 20, '#');
  std::ofstream(dir + "/long-line.yaml") << "spec: " << std::string(4 << 20, 'a') << "\n";
  std::ofstream(dir + "/many-docs.yaml") << [] {
    std::string s;
    for (int i = 0; i < 200; ++i) s += "kind: Queue\n---\n";
    return s;
  }();
  ::mkfifo((dir + "/fifo.yaml").c_str(), 0600);
  for (const std::string f : {"binary.yaml", "bytes.yaml", "huge.yaml", "long-line.yaml", "many-docs.yaml",
                              "fifo.yaml"}) {
    auto r = Validate(dir + "/" + f);
    EXPECT_EQ(r.exit_code, 1) << f << ": " << r.output.substr(0, 500);
    EXPECT_EQ(r.output.rfind(dir + "/" + f + ":", 0), 0u) << r.output.substr(0, 500);
  }
  for (const std::string f : {"/dev/zero", "/dev/null", "/"}) {
    auto r = Validate(f);
    EXPECT_EQ(r.exit_code, 1) << f << ": " << r.output;
  }
}

TEST(ValidateTest, ReadsStandardInput) {
  auto r = RunCommand("timeout 30 " + BinDir() + "/tandem validate - < " + Corpus() + "/good/queue.yaml 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = RunCommand("timeout 30 " + BinDir() + "/tandem validate - < " + Corpus() + "/bad/queue-weight-zero.yaml 2>&1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("-: spec.weight: must be >= 1, got 0"), std::string::npos) << r.output;
}

// Random byte-level damage to a good manifest, validated in-process: any verdict is fine, a
// crash, exception or hang is not.
TEST(ValidateTest, RandomMutationsNeverCrash) {
  const std::string good = ReadAll(Corpus() + "/good/trainingjob.yaml");
  const std::string alphabet = "{}[]:,-&*!|>'\"#%@`\t\n 0123456789abcxyz.e\\?";
  std::mt19937 rng(2026);
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string s = good;
    int edits = 1 + rng() % 6;
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % (s.size() + 1);
      switch (rng() % 4) {
        case 0: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 1: if (pos < s.size()) s.erase(pos, 1 + rng() % 8); break;
        case 2: if (pos < s.size()) s[pos] = static_cast<char>(rng()); break;
        case 3: if (pos < s.size()) s.insert(pos, s.substr(rng() % s.size(), rng() % 40)); break;
      }
    }
    std::vector<api::DocumentProblem> problems;
    ASSERT_NO_THROW(problems = api::ValidateManifestText(s, "mutant.yaml", trainer::TrainerSectionValidators())) << s;
    rejected += !problems.empty();
  }
  EXPECT_GT(rejected, 2000);  // damage is almost always caught
}

// Random type confusion on the parsed tree: every value replaced, in turn, by values of every
// JSON type.
TEST(ValidateTest, WrongTypesEverywhereAreReportedAtTheirPath) {
  auto docs = api::ValidateManifestText(ReadAll(Corpus() + "/good/trainingjob.yaml"), "x",
                                        trainer::TrainerSectionValidators());
  ASSERT_TRUE(docs.empty());
  nlohmann::json job = nlohmann::json::parse(R"({"apiVersion":"tandem.dev/v1alpha1","kind":"TrainingJob",
    "metadata":{"name":"j"},"spec":{"workers":{"count":2},"model":{"a":1},"data":{"b":1},
    "sync":{"dense":"ring","staleness":1},"checkpoint":{"keep":2},"restartPolicy":{"retryableExitCodes":[1,2]},
    "trainer":{"resources":{"requests":{"cpu":"1","memory":"1Gi"}}}}})");
  const nlohmann::json flat = job.flatten();
  const api::SectionValidators validators = trainer::TrainerSectionValidators();
  const std::vector<nlohmann::json> values = {nullptr, true, -1, 1.5, "str", nlohmann::json::array(),
                                              nlohmann::json::object(), 1e300, "\xff\xfe"};
  for (const auto& [pointer, original] : flat.items()) {
    for (const nlohmann::json& v : values) {
      nlohmann::json mutant = job;
      mutant[nlohmann::json::json_pointer(pointer)] = v;
      api::FieldErrors errors;
      ASSERT_NO_THROW(errors = api::ValidateDocument(mutant, validators)) << pointer;
      std::ostringstream out;
      for (const auto& e : errors) EXPECT_FALSE(e.message.empty()) << pointer;
    }
  }
}

}  // namespace
}  // namespace tandem
