// Opens the CUDA plugin (libtandem-cuda.so, trainer/backend/cuda_plugin_abi.h) with dlopen and
// makes a Device from it, so that only a GPU job ever loads the CUDA libraries.
//
//   TANDEM_ASSIGN_OR_RETURN(CudaPlugin* plugin, CudaPlugin::Load(CudaPluginCandidates("", exe)));
//   TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Device> gpu, plugin->CreateDevice({.ordinal = 0}));
//
// Errors name the file and say what is wrong: NotFound (no candidate exists; every path tried is
// listed), FailedPrecondition (a file that dlopen refuses, e.g. a CUDA library it links is
// missing; no entry point; another plugin ABI or device interface than this trainer's), and
// Unavailable from CreateDevice with CUDA's own reason (no driver, no device, bad ordinal).
// A loaded plugin is never unloaded (the devices it made run its code). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/core/device.h"

struct TandemCudaPlugin;

namespace tandem::trainer {

// Where the plugin is looked for, in order: `explicit_path` alone when not empty (the
// TANDEM_CUDA_PLUGIN tuning variable); else <folder of `exe_path`>/../lib/tandem/libtandem-cuda.so
// (the build tree's build/bin -> build/lib/tandem and the image's /usr/local/bin ->
// /usr/local/lib/tandem), then the bare name for the dynamic loader's own search (ld.so.conf,
// LD_LIBRARY_PATH).
std::vector<std::string> CudaPluginCandidates(const std::string& explicit_path,
                                              const std::string& exe_path);

struct CudaDeviceRequest {
  int ordinal = 0;
  bool bf16 = false;
  bool host_accessible = true;  // managed memory: what the training loop needs (cuda_device.h)
};

// An NCCL all-reduce between the job's GPU ranks (made by the plugin).
class GpuAllReducer {
 public:
  virtual ~GpuAllReducer() = default;
  // data[0, count) := the average over the ranks, in place; waits until done.
  virtual absl::Status AllReduceAverage(float* data, int64_t count) = 0;
};

class CudaPlugin {
 public:
  // Loads the first candidate that exists (dlopen of a bare name: the first the loader finds).
  // The same file loaded twice is the same CudaPlugin.
  static absl::StatusOr<CudaPlugin*> Load(const std::vector<std::string>& candidates);

  const std::string& path() const { return path_; }
  // "libtandem-cuda (CUDA runtime 13000, cuDNN 91500, NCCL 22703)".
  std::string description() const;
  absl::StatusOr<std::unique_ptr<Device>> CreateDevice(const CudaDeviceRequest& request) const;
  // Joins the NCCL communicator of `world_size` ranks on device `ordinal`. `share_id` must give
  // every rank rank 0's bytes (a broadcast over the job's ring).
  absl::StatusOr<std::unique_ptr<GpuAllReducer>> CreateAllReducer(
      int ordinal, int rank, int world_size,
      const std::function<absl::Status(void* id, size_t bytes)>& share_id) const;

 private:
  CudaPlugin(std::string path, const TandemCudaPlugin* api) : path_(std::move(path)), api_(api) {}
  std::string path_;
  const TandemCudaPlugin* api_;
};

}  // namespace tandem::trainer
