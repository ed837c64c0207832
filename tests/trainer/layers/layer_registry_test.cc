#include "trainer/layers/layer_registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::trainer {
namespace {

using ::testing::HasSubstr;

TEST(LayerRegistryTest, UnknownTypeListsKnownTypes) {
  auto layer = LayerRegistry::Builtin().Create("convolution");
  ASSERT_FALSE(layer.ok());
  EXPECT_THAT(layer.status().message(), HasSubstr("unknown layer type \"convolution\""));
  EXPECT_THAT(layer.status().message(), HasSubstr("conv2d"));
  EXPECT_THAT(layer.status().message(), HasSubstr("softmax_cross_entropy"));
}

TEST(LayerRegistryTest, EveryTypeCreatesALayerAndHasAnExample) {
  for (const std::string& type : LayerRegistry::Builtin().Types()) {
    auto layer = LayerRegistry::Builtin().Create(type);
    ASSERT_TRUE(layer.ok()) << type;
    EXPECT_FALSE(LayerRegistry::Builtin().Example(type).inputs.empty()) << type;
  }
}

TEST(LayerRegistryTest, CpuRunsEveryLayerAndGpuRefusesHostOnlyLayersByName) {
  const LayerRegistry& r = LayerRegistry::Builtin();
  std::vector<LayerConfig> layers = {{.name = "conv1", .type = "conv2d"},
                                     {.name = "fc1", .type = "fc"},
                                     {.name = "bn1", .type = "batch_norm"},
                                     {.name = "cost", .type = "softmax_cross_entropy"}};
  EXPECT_TRUE(r.CheckRunsOn(DeviceKind::kCpu, layers).ok());
  absl::Status gpu = r.CheckRunsOn(DeviceKind::kCuda, layers);
  ASSERT_FALSE(gpu.ok());
  EXPECT_EQ(gpu.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(gpu.message(), HasSubstr("layer 'bn1' (batch_norm) has no GPU path"));
  EXPECT_THAT(gpu.message(), HasSubstr("conv2d"));  // the list of layers that do run there
  layers.resize(2);
  EXPECT_TRUE(r.CheckRunsOn(DeviceKind::kCuda, layers).ok());
  for (const std::string& type : r.Types()) EXPECT_TRUE(r.RunsOn(type, DeviceKind::kCpu)) << type;
}

TEST(AttrReaderTest, ReportsTypeRangeAndUnknownFields) {
  nlohmann::json attrs = {{"numFilters", 0}, {"filterSize", "five"}, {"strid", 2}};
  AttrReader r(attrs);
  r.Int("numFilters", 1, 1);
  r.IntPair("filterSize", 1, 1);
  r.CheckNoUnknownFields();
  ASSERT_EQ(r.errors().size(), 3u);
  EXPECT_EQ(r.errors()[0].ToString(), "numFilters: must be >= 1, got 0");
  EXPECT_THAT(r.errors()[1].ToString(), HasSubstr("filterSize: must be an integer or [height, width]"));
  EXPECT_THAT(r.errors()[2].ToString(), HasSubstr("strid: unknown field (known: filterSize, numFilters)"));
}

}  // namespace
}  // namespace tandem::trainer
