// The one entry point of the CUDA plugin, libtandem-cuda.so (trainer/backend/cuda/cuda_plugin.cc),
// which tandem-trainer opens with dlopen only for a GPU job (trainer/backend/device_loader.h), so
// that the CPU trainer never loads the CUDA libraries and the GPU image ships the same trainer.
//
//   auto entry = reinterpret_cast<TandemCudaPluginEntry>(dlsym(handle, TANDEM_CUDA_PLUGIN_ENTRY));
//   const TandemCudaPlugin* plugin = entry();
//   if (plugin->abi != TANDEM_CUDA_PLUGIN_ABI || strcmp(plugin->interface_hash, ...)) refuse;
//   void* device = plugin->create_device(&request, error, sizeof error);  // a Device*, or null
//
// The object create_device returns is a C++ tandem::trainer::Device (trainer/core/device.h)
// allocated by the plugin; the caller owns it and deletes it through its virtual destructor, and
// never unloads the plugin. That is a C++ ABI across the boundary, so both sides must be built
// from the same device.h by the same compiler: `abi` is bumped by hand when this file changes,
// and `interface_hash` (TANDEM_DEVICE_INTERFACE_HASH, computed by CMake from device.h and this
// file) catches every other edit. A plain C header otherwise: nothing else crosses.
#pragma once

#include <stddef.h>
#include <stdint.h>

#define TANDEM_CUDA_PLUGIN_ENTRY "tandem_cuda_plugin"
#define TANDEM_CUDA_PLUGIN_FILE "libtandem-cuda.so"
// Append-only history: 1 (2026-12-06) the first.
#define TANDEM_CUDA_PLUGIN_ABI 1u

#ifdef __cplusplus
extern "C" {
#endif

struct TandemCudaDeviceRequest {
  int32_t ordinal;          // CUDA device ordinal among the devices this process sees
  int32_t bf16;             // 1: Precision::kBf16 (bf16 tensor-core products), 0: fp32
  int32_t host_accessible;  // 1: managed memory (CudaDeviceOptions::host_accessible)
};

struct TandemCudaPlugin {
  uint32_t abi;                // TANDEM_CUDA_PLUGIN_ABI of the plugin's build
  const char* interface_hash;  // TANDEM_DEVICE_INTERFACE_HASH of the plugin's build
  const char* description;     // "libtandem-cuda (CUDA runtime 13000, cuDNN 91500, NCCL 22703)"
  // A new tandem::trainer::Device, or null with a NUL-terminated reason (CUDA's own message,
  // e.g. "cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime version")
  // written to error[0, error_len).
  void* (*create_device)(const struct TandemCudaDeviceRequest* request, char* error,
                         size_t error_len);

  // NCCL between the GPU ranks of a job. create_allreducer joins rank `rank` of `world_size` on
  // device `ordinal`; rank 0 makes NCCL's unique id and `share_id(ctx, id, id_bytes)` must give
  // every rank rank 0's bytes (the caller broadcasts them over its own ring) and return 0, or
  // non-zero to fail. Null on failure, with the reason in `error`.
  void* (*create_allreducer)(int32_t ordinal, int32_t rank, int32_t world_size,
                             int (*share_id)(void* ctx, void* id, size_t id_bytes), void* ctx,
                             char* error, size_t error_len);
  // data[0, count) := the average over the ranks, in place (device or managed memory), waiting
  // until it is done (bounded: a dead peer fails it). 0 on success, else non-zero and `error`.
  int (*allreduce_average)(void* allreducer, float* data, size_t count, char* error,
                           size_t error_len);
  void (*destroy_allreducer)(void* allreducer);
};

typedef const struct TandemCudaPlugin* (*TandemCudaPluginEntry)(void);

#ifdef __cplusplus
}
#endif
