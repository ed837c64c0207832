// Out of memory is an error the job's owner must act on (a bigger memory request, a smaller
// model), not a crash: a failed allocation ends the process with a message naming the limit that
// was hit and kOutOfMemoryExitCode, which the default restartPolicy.retryableExitCodes (75, 137,
// 143) does not list, so the job fails instead of restarting into the same wall. Without this a
// failed `new` throws std::bad_alloc, nothing catches it, and std::terminate aborts with a core
// dump.
//
//   int main(int argc, char** argv) {
//     tandem::InstallOutOfMemoryHandler("tandem-pserver");
//     ...
//   float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
//   if (p == nullptr) tandem::ExitOutOfMemory(bytes, "tensor");
//
// The kernel's OOM killer (a cgroup limit reached by touching pages already allocated) sends
// SIGKILL instead, which no process can handle: that shows up as 137 (docs/hardening.md).
#pragma once

#include <cstddef>

namespace tandem {

// Not in the default retryableExitCodes.
inline constexpr int kOutOfMemoryExitCode = 3;

// Makes every failed operator new (std::vector, std::string, ...) call ExitOutOfMemory.
// `program` names the process in the message; it must outlive the process (a literal).
void InstallOutOfMemoryHandler(const char* program);

// Writes "<program>: out of memory: cannot allocate <bytes> bytes for <what> (address-space
// limit ..., cgroup memory limit ...)" to stderr and _exits with kOutOfMemoryExitCode. Allocates
// nothing. `bytes` 0 means unknown (operator new does not tell its handler).
[[noreturn]] void ExitOutOfMemory(size_t bytes, const char* what);

}  // namespace tandem
