#include "trainer/backend/device_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstring>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "trainer/backend/cuda_plugin_abi.h"

namespace tandem::trainer {
namespace {

bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string DlError() {
  const char* e = dlerror();
  return e != nullptr ? e : "unknown dlopen error";
}

class PluginAllReducer final : public GpuAllReducer {
 public:
  PluginAllReducer(const TandemCudaPlugin* api, void* handle) : api_(api), handle_(handle) {}
  ~PluginAllReducer() override { api_->destroy_allreducer(handle_); }
  absl::Status AllReduceAverage(float* data, int64_t count) override {
    char error[1024] = {0};
    if (api_->allreduce_average(handle_, data, static_cast<size_t>(count), error,
                                sizeof error) != 0)
      return absl::UnavailableError(absl::StrCat("NCCL all-reduce: ", error));
    return absl::OkStatus();
  }

 private:
  const TandemCudaPlugin* api_;
  void* handle_;
};

}  // namespace

std::vector<std::string> CudaPluginCandidates(const std::string& explicit_path,
                                              const std::string& exe_path) {
  if (!explicit_path.empty()) return {explicit_path};
  std::vector<std::string> out;
  if (const size_t slash = exe_path.rfind('/'); slash != std::string::npos)
    out.push_back(absl::StrCat(exe_path.substr(0, slash), "/../lib/tandem/",
                               TANDEM_CUDA_PLUGIN_FILE));
  out.push_back(TANDEM_CUDA_PLUGIN_FILE);
  return out;
}

absl::StatusOr<CudaPlugin*> CudaPlugin::Load(const std::vector<std::string>& candidates) {
  static std::mutex mu;
  static auto* loaded = new std::map<void*, CudaPlugin*>();  // by dlopen handle; never freed
  std::vector<std::string> tried;
  for (const std::string& path : candidates) {
    const bool bare = path.find('/') == std::string::npos;
    if (!bare && !FileExists(path)) {
      tried.push_back(absl::StrCat(path, " (no such file)"));
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const std::string why = DlError();
      // A bare name the loader does not find is "not here"; a file that exists but does not
      // load (a CUDA library it needs is missing) is the answer, and a clear one.
      if (bare && why.find("cannot open shared object file") != std::string::npos) {
        tried.push_back(absl::StrCat(path, " (not on the loader's search path)"));
        continue;
      }
      return absl::FailedPreconditionError(
          absl::StrCat("cannot load the CUDA plugin ", path, ": ", why));
    }
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = loaded->find(handle); it != loaded->end()) return it->second;
    auto entry = reinterpret_cast<TandemCudaPluginEntry>(dlsym(handle, TANDEM_CUDA_PLUGIN_ENTRY));
    if (entry == nullptr)
      return absl::FailedPreconditionError(absl::StrCat(
          path, " has no entry point ", TANDEM_CUDA_PLUGIN_ENTRY, ": not a Tandem CUDA plugin"));
    const TandemCudaPlugin* api = entry();
    if (api == nullptr || api->abi != TANDEM_CUDA_PLUGIN_ABI)
      return absl::FailedPreconditionError(absl::StrCat(
          "the CUDA plugin ", path, " speaks plugin ABI ", api == nullptr ? 0u : api->abi,
          ", this trainer ", TANDEM_CUDA_PLUGIN_ABI,
          ": install the plugin built with this trainer"));
    const char* hash = api->interface_hash != nullptr ? api->interface_hash : "";
    if (std::strcmp(hash, TANDEM_DEVICE_INTERFACE_HASH) != 0)
      return absl::FailedPreconditionError(absl::StrCat(
          "the CUDA plugin ", path, " was built from another device interface (", hash,
          ", this trainer ", TANDEM_DEVICE_INTERFACE_HASH,
          "): install the plugin built with this trainer"));
    if (api->create_device == nullptr || api->create_allreducer == nullptr ||
        api->allreduce_average == nullptr || api->destroy_allreducer == nullptr)
      return absl::FailedPreconditionError(
          absl::StrCat("the CUDA plugin ", path, " leaves an entry of its table empty"));
    auto* plugin = new CudaPlugin(path, api);
    (*loaded)[handle] = plugin;
    return plugin;
  }
  return absl::NotFoundError(absl::StrCat(
      "the CUDA plugin ", TANDEM_CUDA_PLUGIN_FILE, " was not found (tried ",
      absl::StrJoin(tried, ", "),
      "); it is built with -DTANDEM_CUDA=ON and shipped in the tandem-trainer-gpu image"));
}

std::string CudaPlugin::description() const {
  return api_->description != nullptr ? api_->description : path_;
}

absl::StatusOr<std::unique_ptr<Device>> CudaPlugin::CreateDevice(
    const CudaDeviceRequest& request) const {
  const TandemCudaDeviceRequest r{.ordinal = request.ordinal,
                                  .bf16 = request.bf16 ? 1 : 0,
                                  .host_accessible = request.host_accessible ? 1 : 0};
  char error[1024] = {0};
  void* device = api_->create_device(&r, error, sizeof error);
  if (device == nullptr)
    return absl::UnavailableError(error[0] != '\0' ? error : "the CUDA plugin made no device");
  return std::unique_ptr<Device>(static_cast<Device*>(device));
}

absl::StatusOr<std::unique_ptr<GpuAllReducer>> CudaPlugin::CreateAllReducer(
    int ordinal, int rank, int world_size,
    const std::function<absl::Status(void* id, size_t bytes)>& share_id) const {
  struct Ctx {
    const std::function<absl::Status(void*, size_t)>* share;
    absl::Status status;
  } ctx{&share_id, absl::OkStatus()};
  auto trampoline = [](void* c, void* id, size_t bytes) -> int {
    auto* x = static_cast<Ctx*>(c);
    x->status = (*x->share)(id, bytes);
    return x->status.ok() ? 0 : 1;
  };
  char error[1024] = {0};
  void* handle =
      api_->create_allreducer(ordinal, rank, world_size, trampoline, &ctx, error, sizeof error);
  if (handle == nullptr) {
    if (!ctx.status.ok()) return ctx.status;  // the ring failed: keep its (peer failure) status
    return absl::UnavailableError(absl::StrCat("NCCL: ", error));
  }
  return std::unique_ptr<GpuAllReducer>(new PluginAllReducer(api_, handle));
}

}  // namespace tandem::trainer
