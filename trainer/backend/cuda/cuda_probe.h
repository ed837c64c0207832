// Probes the CUDA runtime: how many devices this process can use, and a tiny kernel that proves
// one runs. Built only when the CUDA backend is enabled (TANDEM_CUDA); callers check
// TANDEM_HAVE_CUDA first.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::cuda {

// Number of usable devices; an error (with the CUDA runtime's message) when there is no driver
// or no device.
absl::StatusOr<int> DeviceCount();

// Name and compute capability of device `ordinal`, e.g. "NVIDIA H200 (sm_90)".
absl::StatusOr<std::string> DeviceDescription(int ordinal);

// Computes out[i] = a[i] + b[i] on device 0 and copies it back.
absl::StatusOr<std::vector<float>> AddOnDevice(const std::vector<float>& a,
                                               const std::vector<float>& b);

}  // namespace tandem::cuda
