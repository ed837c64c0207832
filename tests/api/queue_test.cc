#include "api/queue.h"

#include "common/yaml_json.h"
#include "gtest/gtest.h"

namespace tandem::api {
namespace {

using json = nlohmann::json;

json ValidQueue() {
  auto docs = YamlToJson(R"(
apiVersion: tandem.dev/v1alpha1
kind: Queue
metadata: {name: team-a}
spec:
  weight: 2
  guaranteed: {nvidia.com/gpu: 16, cpu: 64, memory: 256Gi}
  borrowingLimit: {nvidia.com/gpu: 8}
  namespaces: [team-a, team-a-dev]
  preemption: {reclaimBorrowed: true, withinQueue: LowerPriority}
)",
                         "queue.yaml");
  EXPECT_TRUE(docs.ok()) << docs.status();
  return (*docs)[0];
}

TEST(QueueTest, ParsesAndRoundTrips) {
  FieldErrors errors;
  Queue q = ParseQueue(ValidQueue(), &errors);
  ASSERT_TRUE(errors.empty()) << errors[0].ToString();
  EXPECT_EQ(q.spec.weight, 2);
  EXPECT_EQ(q.spec.guaranteed.at("nvidia.com/gpu").value(), 16);
  EXPECT_EQ(q.spec.borrowing_limit->at("nvidia.com/gpu").value(), 8);
  EXPECT_TRUE(q.Serves("team-a-dev"));
  EXPECT_FALSE(q.Serves("team-b"));
  EXPECT_EQ(q.spec.preemption.within_queue, "LowerPriority");
  FieldErrors again;
  EXPECT_EQ(ParseQueue(ToJson(q), &again), q);
  EXPECT_TRUE(again.empty());
}

TEST(QueueTest, DefaultsServeEveryNamespaceWithoutBorrowingLimit) {
  FieldErrors errors;
  Queue q = ParseQueue({{"apiVersion", "tandem.dev/v1alpha1"}, {"kind", "Queue"}, {"metadata", {{"name", "default"}}}},
                       &errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(q.spec.weight, 1);
  EXPECT_FALSE(q.spec.borrowing_limit.has_value());
  EXPECT_TRUE(q.Serves("anything"));
  EXPECT_TRUE(q.spec.preemption.reclaim_borrowed);
  EXPECT_EQ(q.spec.preemption.within_queue, "Never");
}

struct BadCase {
  const char* name;
  const char* pointer;
  json value;
  const char* path;
  const char* message;
};
class QueueRejectTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(QueueRejectTest, RejectsWithFieldPath) {
  json j = ValidQueue();
  j[json::json_pointer(GetParam().pointer)] = GetParam().value;
  FieldErrors errors;
  ParseQueue(j, &errors);
  std::string all;
  bool found = false;
  for (const auto& e : errors) {
    all += e.ToString() + "\n";
    found = found || (e.path == GetParam().path && e.message.find(GetParam().message) != std::string::npos);
  }
  EXPECT_TRUE(found) << all;
}

INSTANTIATE_TEST_SUITE_P(
    Table, QueueRejectTest,
    ::testing::Values(
        BadCase{"zero_weight", "/spec/weight", 0, "spec.weight", "must be >= 1"},
        BadCase{"bad_gpu", "/spec/guaranteed/nvidia.com~1gpu", "1.5", "spec.guaranteed[nvidia.com/gpu]", "whole number"},
        BadCase{"bad_quantity", "/spec/guaranteed/memory", "lots", "spec.guaranteed.memory", "invalid quantity"},
        BadCase{"unknown", "/spec/cohort", "x", "spec.cohort", "unknown field"},
        BadCase{"bad_ns", "/spec/namespaces/0", "Team_A", "spec.namespaces[0]", "lower-case"},
        BadCase{"dup_ns", "/spec/namespaces/1", "team-a", "spec.namespaces[1]", "duplicate"},
        BadCase{"bad_enum", "/spec/preemption/withinQueue", "Always", "spec.preemption.withinQueue", "must be one of"},
        BadCase{"namespaced", "/metadata/namespace", "default", "metadata.namespace", "cluster-scoped"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace tandem::api
