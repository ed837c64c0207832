// Stand-ins for libtandem-cuda.so that the loader test opens (tests/trainer/backend/
// device_loader_test.cc): built several times with FAKE_ABI / FAKE_HASH / FAKE_NO_ENTRY set to
// make a plugin of another ABI, another device interface, or no plugin at all. Every one that
// loads answers create_device as a machine without a GPU does: null and CUDA's reason.
#include <cstring>

#include "trainer/backend/cuda_plugin_abi.h"

#ifndef FAKE_ABI
#define FAKE_ABI TANDEM_CUDA_PLUGIN_ABI
#endif
#ifndef FAKE_HASH
#define FAKE_HASH TANDEM_DEVICE_INTERFACE_HASH
#endif

namespace {

constexpr char kNoDevice[] =
    "cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime version (fake)";

void* CreateDevice(const TandemCudaDeviceRequest*, char* error, size_t error_len) {
  std::strncpy(error, kNoDevice, error_len - 1);
  error[error_len - 1] = '\0';
  return nullptr;
}
void* CreateAllReducer(int32_t, int32_t, int32_t, int (*)(void*, void*, size_t), void*,
                       char* error, size_t error_len) {
  std::strncpy(error, "ncclCommInitRankConfig: unhandled cuda error (fake)", error_len - 1);
  error[error_len - 1] = '\0';
  return nullptr;
}
int AllReduce(void*, float*, size_t, char*, size_t) { return 1; }
void Destroy(void*) {}

}  // namespace

#ifndef FAKE_NO_ENTRY
extern "C" __attribute__((visibility("default"))) const TandemCudaPlugin* tandem_cuda_plugin() {
  static const TandemCudaPlugin plugin = {FAKE_ABI, FAKE_HASH, "fake plugin", &CreateDevice,
                                          &CreateAllReducer, &AllReduce, &Destroy};
  return &plugin;
}
#else
extern "C" __attribute__((visibility("default"))) int not_a_tandem_plugin() { return 0; }
#endif
