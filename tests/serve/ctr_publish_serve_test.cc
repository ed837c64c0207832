// End to end: `tandem run --serve` of a small CTR job (2 trainers + 2 pservers, embedding tables
// on the pservers, spec.publish every 50 steps). The job publishes while it trains (rank 0's
// dense weights plus every shard's rows), tandem-serve beside it follows the versions, and the
// final published model, served, scores the job's test set with the AUC the trainers reported.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/model_snapshot.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serve/server.h"
#include "tests/common/test_util.h"
#include "trainer/data/synthetic_ctr_dataset.h"

namespace tandem {
namespace {

using json = nlohmann::json;

double Field(const std::string& out, const std::string& key) {
  const std::string pat = " " + key + "=";
  size_t at = out.rfind(pat);
  if (at == std::string::npos) return -1;
  at += pat.size();
  const size_t end = out.find_first_of(" \n", at);
  double v = -1;
  if (!absl::SimpleAtod(out.substr(at, end - at), &v)) return -1;
  return v;
}

constexpr char kManifest[] = R"(apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: ctr-publish, namespace: default}
spec:
  workers: {count: 2}
  trainer: {threads: 1}
  passes: 1
  data:
    train: {format: synthetic-ctr, examples: 60000, numFields: 26, zipf: 1.2, seed: 11}
    test: {format: synthetic-ctr, examples: 4000, numFields: 26, zipf: 1.2, seed: 11}
    batchSize: 128
  model:
    inputs:
      - {name: ids, source: fields, shape: [26]}
      - {name: click, source: targets}
    layers:
      - {name: emb, type: embedding, input: ids, vocabSize: 1451594, size: 8, pooling: sum}
      - {name: fc1, type: fc, input: emb, size: 32}
      - {name: relu1, type: relu, input: fc1}
      - {name: logit, type: fc, input: relu1, size: 1}
      - {name: cost, type: binary_cross_entropy, inputs: [logit, click]}
  optimizer: {type: adagrad, learningRate: 0.05}
  checkpoint: {intervalSteps: 100}
  publish: {everySteps: 50, keep: 2}
  serving: {maxBatchSize: 64}
)";

TEST(CtrPublishServeTest, TheServedModelScoresTheTestSetAsTheTrainersDid) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("ctr-publish-serve-", ::getpid())).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string manifest = dir + "/job.yaml";
  std::ofstream(manifest) << kManifest;
  const std::string run_dir = dir + "/run";
  const auto r = testing::RunCommand(absl::StrCat("OMP_WAIT_POLICY=passive ", testing::BinDir(),
                                                  "/tandem run --serve 0 --run-dir ", run_dir, " ",
                                                  manifest, " 2>&1"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(absl::StrContains(r.output, "serving the published models of ctr-publish")) << r.output;
  const double test_auc = Field(r.output, "test_auc");
  const double steps = Field(r.output, "steps");
  ASSERT_GT(test_auc, 0.6) << r.output;

  // Published while training (every 50 steps, the newest 2 kept), the last at the final step.
  const std::string published = run_dir + "/checkpoints/published";
  auto versions = snapshot::ListVersions(published);
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_GE(versions->back(), 4) << "several versions were published during training";
  auto manifest_json = snapshot::Verify(snapshot::VersionPath(published, versions->back()));
  ASSERT_TRUE(manifest_json.ok()) << manifest_json.status();
  EXPECT_EQ((*manifest_json)["step"].get<double>(), steps);
  EXPECT_EQ((*manifest_json)["shards"], 2) << "the rows came from both pservers";
  std::ifstream serve_log(run_dir + "/logs/serve.log");
  std::string log((std::istreambuf_iterator<char>(serve_log)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(absl::StrContains(log, "serving model version")) << log;

  // The final version, served: the test set's AUC equals the trainers' (same weights, same rows).
  auto server = serve::ModelServer::Start({.model_dir = published, .host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_EQ((*server)->current()->version(), versions->back());
  auto test = trainer::data::SyntheticCtrDataset::Generate(
      {.examples = 4000, .num_fields = 26, .zipf = 1.2, .seed = 11, .test = true});
  ASSERT_TRUE(test.ok());
  const auto& ids = (*test)->ids();
  std::vector<float> scores;
  for (int64_t start = 0; start < (*test)->size(); start += 500) {
    json instances = json::array();
    for (int64_t i = start; i < std::min<int64_t>(start + 500, (*test)->size()); ++i) {
      json fields = json::array();
      for (int f = 0; f < 26; ++f) fields.push_back(json::array({ids[i * 26 + f] & 0x7fffffff}));
      instances.push_back({{"ids", fields}});
    }
    auto resp = testing::HttpRequestTo((*server)->port(), "POST", "/v1/predict",
                                       json({{"instances", instances}}).dump());
    ASSERT_EQ(resp.status, 200) << resp.body;
    const json answer = json::parse(resp.body);
    for (const json& p : answer["predictions"]) scores.push_back(p[0].get<float>());
  }
  ASSERT_EQ(scores.size(), (*test)->labels().size());
  double clicks = 0;
  for (float l : (*test)->labels()) clicks += l;
  const double served_auc = trainer::data::ExactAuc(scores, (*test)->labels());
  ASSERT_FALSE(std::isnan(served_auc)) << scores.size() << " scores, first " << scores[0] << ", " << clicks << " clicks";
  EXPECT_NEAR(served_auc, test_auc, 0.005) << r.output;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tandem
