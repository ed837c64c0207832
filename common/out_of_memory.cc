#include "common/out_of_memory.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <new>

namespace tandem {
namespace {

const char* g_program = "tandem";

void NewHandler() { ExitOutOfMemory(0, "an object (operator new)"); }

// The cgroup v2 memory limit of this process ("max" when unlimited), read without allocating.
void CgroupLimit(char* out, size_t n) {
  std::snprintf(out, n, "unknown");
  int fd = ::open("/sys/fs/cgroup/memory.max", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t r = ::read(fd, out, n - 1);
  ::close(fd);
  if (r <= 0) {
    std::snprintf(out, n, "unknown");
    return;
  }
  out[r] = '\0';
  if (char* nl = std::strchr(out, '\n')) *nl = '\0';
}

}  // namespace

void InstallOutOfMemoryHandler(const char* program) {
  g_program = program;
  std::set_new_handler(NewHandler);
}

void ExitOutOfMemory(size_t bytes, const char* what) {
  char size[64];
  if (bytes > 0) {
    std::snprintf(size, sizeof(size), "%zu bytes", bytes);
  } else {
    std::snprintf(size, sizeof(size), "memory");
  }
  char as_limit[32] = "unlimited";
  rlimit rl{};
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    std::snprintf(as_limit, sizeof(as_limit), "%llu bytes", static_cast<unsigned long long>(rl.rlim_cur));
  char cgroup[64];
  CgroupLimit(cgroup, sizeof(cgroup));
  char msg[512];
  const int n = std::snprintf(
      msg, sizeof(msg),
      "%s: out of memory: cannot allocate %s for %s (address-space limit %s, cgroup memory.max "
      "%s); the model, its optimizer state and activations do not fit this process's memory: "
      "raise the memory request or shrink the model or batch. Exiting with code %d (not "
      "retried).\n",
      g_program, size, what, as_limit, cgroup, kOutOfMemoryExitCode);
  if (n > 0) {
    const size_t len = static_cast<size_t>(n) < sizeof(msg) ? static_cast<size_t>(n) : sizeof(msg) - 1;
    ssize_t ignored = ::write(STDERR_FILENO, msg, len);
    (void)ignored;
  }
  ::_exit(kOutOfMemoryExitCode);
}

}  // namespace tandem
