// The CUDA plugin loader (trainer/backend/device_loader.h): where it looks, and every way a plugin
// can be refused, each with an error that names the file and the reason: missing, not loadable,
// not a plugin, another ABI, another device interface; and a machine without a GPU, whose reason
// is CUDA's own (from fake plugins, and from the real libtandem-cuda.so when this build has one).
#include "trainer/backend/device_loader.h"

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "trainer/backend/cuda_plugin_abi.h"

namespace tandem::trainer {
namespace {

std::string Fake(const std::string& name) {
  return std::string(TANDEM_FAKE_PLUGIN_DIR) + "/lib" + name + ".so";
}

bool Contains(const absl::Status& s, const std::string& what) {
  return std::string(s.message()).find(what) != std::string::npos;
}

TEST(DeviceLoaderTest, CandidatesExplicitElseBesideTheBinaryThenTheLoader) {
  EXPECT_EQ(CudaPluginCandidates("/opt/x/libtandem-cuda.so", "/usr/local/bin/tandem-trainer"),
            std::vector<std::string>{"/opt/x/libtandem-cuda.so"});
  EXPECT_EQ(CudaPluginCandidates("", "/usr/local/bin/tandem-trainer"),
            (std::vector<std::string>{"/usr/local/bin/../lib/tandem/libtandem-cuda.so",
                                      "libtandem-cuda.so"}));
  EXPECT_EQ(CudaPluginCandidates("", ""), std::vector<std::string>{"libtandem-cuda.so"});
}

TEST(DeviceLoaderTest, MissingPluginIsNotFoundListingWhereItLooked) {
  auto p = CudaPlugin::Load({"/nonexistent/dir/libtandem-cuda.so", "libtandem-cuda-nowhere.so"});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsNotFound(p.status())) << p.status();
  EXPECT_TRUE(Contains(p.status(), "/nonexistent/dir/libtandem-cuda.so (no such file)")) << p.status();
  EXPECT_TRUE(Contains(p.status(), "libtandem-cuda-nowhere.so (not on the loader's search path)"))
      << p.status();
  EXPECT_TRUE(Contains(p.status(), "-DTANDEM_CUDA=ON")) << p.status();
}

TEST(DeviceLoaderTest, AFileThatDoesNotLoadIsNamedWithTheLoadersReason) {
  const std::string path = ::testing::TempDir() + "/libtandem-cuda.so";
  std::ofstream(path) << "not an ELF file";
  auto p = CudaPlugin::Load({path});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(p.status())) << p.status();
  EXPECT_TRUE(Contains(p.status(), "cannot load the CUDA plugin " + path)) << p.status();
}

TEST(DeviceLoaderTest, ALibraryWithoutTheEntryPointIsNotAPlugin) {
  auto p = CudaPlugin::Load({Fake("fake-cuda-no-entry")});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(p.status())) << p.status();
  EXPECT_TRUE(Contains(p.status(), "no entry point tandem_cuda_plugin")) << p.status();
}

TEST(DeviceLoaderTest, AnotherAbiIsRefusedNamingBoth) {
  auto p = CudaPlugin::Load({Fake("fake-cuda-abi999")});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(p.status())) << p.status();
  EXPECT_TRUE(Contains(p.status(), "speaks plugin ABI 999, this trainer " +
                                       std::to_string(TANDEM_CUDA_PLUGIN_ABI)))
      << p.status();
}

TEST(DeviceLoaderTest, AnotherDeviceInterfaceIsRefused) {
  auto p = CudaPlugin::Load({Fake("fake-cuda-otherhash")});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(p.status())) << p.status();
  EXPECT_TRUE(Contains(p.status(), "another device interface (0000000000000000, this trainer " +
                                       std::string(TANDEM_DEVICE_INTERFACE_HASH)))
      << p.status();
}

TEST(DeviceLoaderTest, NoDeviceIsUnavailableWithCudasReason) {
  const std::string path = Fake("fake-cuda-nodevice");
  auto p = CudaPlugin::Load({"/nonexistent/libtandem-cuda.so", path});  // the first that exists
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->path(), path);
  EXPECT_EQ((*p)->description(), "fake plugin");
  auto again = CudaPlugin::Load({path});  // the same file is the same plugin
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *p);
  auto d = (*p)->CreateDevice({.ordinal = 0});
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(absl::IsUnavailable(d.status())) << d.status();
  EXPECT_TRUE(Contains(d.status(), "CUDA driver version is insufficient")) << d.status();
  auto r = (*p)->CreateAllReducer(0, 0, 2, [](void*, size_t) { return absl::OkStatus(); });
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status(), "NCCL: ncclCommInitRankConfig")) << r.status();
}

#ifdef TANDEM_CUDA_PLUGIN_PATH
// The real plugin of this build: it loads (its CUDA libraries resolve) and either makes a CUDA
// device or, without a GPU, says why in CUDA's words. Never a crash, never a CPU device.
TEST(DeviceLoaderTest, RealPluginLoadsAndMakesACudaDeviceOrSaysWhyNot) {
  auto p = CudaPlugin::Load({TANDEM_CUDA_PLUGIN_PATH});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_NE((*p)->description().find("libtandem-cuda (CUDA runtime "), std::string::npos)
      << (*p)->description();
  auto d = (*p)->CreateDevice({.ordinal = 0});
  if (d.ok()) {
    EXPECT_EQ((*d)->kind(), DeviceKind::kCuda);
    std::cout << "GPU present: " << (*d)->Describe() << std::endl;
  } else {
    EXPECT_TRUE(absl::IsUnavailable(d.status())) << d.status();
    EXPECT_TRUE(Contains(d.status(), "cuda")) << d.status();  // cudaGetDeviceCount: ...
    std::cout << "no GPU here: " << d.status().message() << std::endl;
  }
  // An ordinal no machine has: refused by CUDA's count, not a crash.
  auto far = (*p)->CreateDevice({.ordinal = 1000});
  EXPECT_FALSE(far.ok());
}
#else
TEST(DeviceLoaderTest, RealPluginLoadsAndMakesACudaDeviceOrSaysWhyNot) {
  GTEST_SKIP() << "this build has no libtandem-cuda.so (-DTANDEM_CUDA=OFF or no NCCL)";
}
#endif

}  // namespace
}  // namespace tandem::trainer
