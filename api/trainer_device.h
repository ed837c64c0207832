// Which device a job's trainers train on: the one rule, used by tandem-trainer (which device it
// opens), `tandem run` (which GPU ordinal each local trainer gets) and anyone else who asks.
//
//   TrainerDevice d = SelectTrainerDevice(job.spec);
//   if (d.kind == TrainerDeviceKind::kCuda) ...  // open the CUDA plugin, device d.ordinal...
//
// The rule: a trainer that requests at least one `nvidia.com/gpu`
// (spec.trainer.resources.requests, or its limits, which the defaults copy into the requests)
// trains on the CUDA device; otherwise on the CPU. There is no silent fall-back: a GPU job on a
// machine without a usable GPU fails (docs/gpu.md). One trainer process drives one GPU; a request
// of N > 1 reserves N (the pod sees them) but the trainer uses the first (not yet more).
#pragma once

#include <cstdint>
#include <string>

#include "api/training_job.h"

namespace tandem::api {

enum class TrainerDeviceKind { kCpu, kCuda };

// The field the rule reads, for messages ("... requests a GPU but ...").
inline constexpr char kTrainerGpuField[] = "spec.trainer.resources.requests[nvidia.com/gpu]";

struct TrainerDevice {
  TrainerDeviceKind kind = TrainerDeviceKind::kCpu;
  int64_t gpus_per_trainer = 0;  // the request; 0 on the CPU
  bool operator==(const TrainerDevice&) const = default;
  // "cpu", "cuda (1 GPU per trainer)".
  std::string ToString() const;
};

TrainerDevice SelectTrainerDevice(const TrainingJobSpec& spec);

// The CUDA ordinal a trainer opens among the GPUs its process sees. In a pod the device plugin
// shows it only its own GPUs (CUDA_VISIBLE_DEVICES), so its ordinal is 0 (local_rank 0). Under
// `tandem run` several trainers share one machine's GPUs: the trainer of local rank r (its index
// among the trainers on its host) gets the first of its own gpus_per_trainer GPUs,
// r * gpus_per_trainer. -1 for a CPU trainer.
int TrainerGpuOrdinal(const TrainerDevice& device, int local_rank);

}  // namespace tandem::api
