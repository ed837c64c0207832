#include "api/trainer_device.h"

#include "absl/strings/str_cat.h"

namespace tandem::api {
namespace {

int64_t GpusIn(const ResourceList& list) {
  auto it = list.find(kResourceGpu);
  // Validation refuses fractions; a fraction that slipped through rounds down, never up.
  return it == list.end() ? 0 : it->second.milli() / 1000;
}

}  // namespace

std::string TrainerDevice::ToString() const {
  if (kind == TrainerDeviceKind::kCpu) return "cpu";
  return absl::StrCat("cuda (", gpus_per_trainer, " GPU", gpus_per_trainer == 1 ? "" : "s",
                      " per trainer)");
}

TrainerDevice SelectTrainerDevice(const TrainingJobSpec& spec) {
  int64_t gpus = GpusIn(spec.trainer.resources.requests);
  if (gpus == 0) gpus = GpusIn(spec.trainer.resources.limits);  // an undefaulted spec
  if (gpus < 1) return {};
  return {.kind = TrainerDeviceKind::kCuda, .gpus_per_trainer = gpus};
}

int TrainerGpuOrdinal(const TrainerDevice& device, int local_rank) {
  if (device.kind != TrainerDeviceKind::kCuda) return -1;
  return static_cast<int>(local_rank * device.gpus_per_trainer);
}

}  // namespace tandem::api
