#include "trainer/collective/shm_segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status.h"

namespace tandem::collective {
namespace {

constexpr char kPrefix[] = "tandem-coll-";

// Removes /dev/shm/tandem-coll-<pid>-* whose creator `pid` is gone. Only ever unlinks names, so a
// live job whose segment it removed (a pid from another pid namespace sharing /dev/shm) loses
// nothing but its shared-memory fast path: ranks that cannot open the name fall back to TCP.
void SweepStaleSegments() {
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return;
  while (dirent* e = readdir(dir)) {
    absl::string_view name(e->d_name);
    if (!absl::ConsumePrefix(&name, kPrefix)) continue;
    const size_t dash = name.find('-');
    int pid = 0;
    if (dash == absl::string_view::npos || !absl::SimpleAtoi(name.substr(0, dash), &pid) ||
        pid <= 0)
      continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    shm_unlink(absl::StrCat("/", e->d_name).c_str());
  }
  closedir(dir);
}

absl::StatusOr<void*> Map(int fd, size_t bytes, const std::string& name) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return ErrnoToStatus(errno, absl::StrCat("mmap ", name));
  return p;
}

}  // namespace

SharedSegment& SharedSegment::operator=(SharedSegment&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = other.data_;
    size_ = other.size_;
    name_ = std::move(other.name_);
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

SharedSegment::~SharedSegment() {
  if (data_ != nullptr) munmap(data_, size_);
}

absl::StatusOr<SharedSegment> SharedSegment::Create(size_t bytes) {
  SweepStaleSegments();
  std::random_device rd;
  for (int attempt = 0;; ++attempt) {
    const uint64_t nonce = (uint64_t{rd()} << 32) ^ rd();
    std::string name = absl::StrFormat("/%s%d-%016x", kPrefix, getpid(), nonce);
    int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST && attempt < 8) continue;
      return ErrnoToStatus(errno, absl::StrCat("shm_open ", name));
    }
    // Reserve every page now: tmpfs would otherwise raise SIGBUS when a full /dev/shm meets the
    // first write to a hole.
    int err = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
    absl::StatusOr<void*> p = err == 0 ? Map(fd, bytes, name)
                                       : ErrnoToStatus(err, absl::StrCat("reserve ", bytes,
                                                                         " bytes of ", name));
    close(fd);
    if (!p.ok()) {
      shm_unlink(name.c_str());
      return p.status();
    }
    SharedSegment s;
    s.data_ = *p;
    s.size_ = bytes;
    s.name_ = std::move(name);
    return s;
  }
}

absl::StatusOr<SharedSegment> SharedSegment::Open(const std::string& name, size_t bytes) {
  int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("shm_open ", name));
  struct stat st {};
  absl::StatusOr<void*> p;
  if (fstat(fd, &st) != 0)
    p = ErrnoToStatus(errno, absl::StrCat("fstat ", name));
  else if (static_cast<size_t>(st.st_size) != bytes)
    p = absl::FailedPreconditionError(
        absl::StrCat(name, " is ", st.st_size, " bytes, expected ", bytes));
  else
    p = Map(fd, bytes, name);
  close(fd);
  if (!p.ok()) return p.status();
  SharedSegment s;
  s.data_ = *p;
  s.size_ = bytes;
  s.name_ = name;
  return s;
}

absl::Status SharedSegment::Unlink(const std::string& name) {
  if (shm_unlink(name.c_str()) == 0 || errno == ENOENT) return absl::OkStatus();
  return ErrnoToStatus(errno, absl::StrCat("shm_unlink ", name));
}

std::string HostFingerprint() {
  std::string boot_id;
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::getline(in, boot_id);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(boot_id, "/", host);
}

}  // namespace tandem::collective
