// SharedSegment: a POSIX shared-memory segment (shm_open + mmap) that ranks of one host map to
// exchange data without the kernel's socket copies.
//
//   TANDEM_ASSIGN_OR_RETURN(SharedSegment seg, SharedSegment::Create(bytes));  // rank 0
//   ... send seg.name() to the others over TCP; they call SharedSegment::Open(name, bytes) ...
//   seg.Unlink();   // once every rank has mapped it: the memory lives until the last munmap
//
// Names are "/tandem-coll-<creator pid>-<64 random bits>", created with O_EXCL. The pages are
// reserved with posix_fallocate, so a full /dev/shm (Kubernetes gives pods 64 MiB by default) is a
// clean error at creation instead of a SIGBUS at first touch. Create() first removes segments of
// this naming scheme whose creator no longer runs (it died between creating and unlinking), so a
// crash cannot leak /dev/shm memory for longer than until the next job on the host starts.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace tandem::collective {

class SharedSegment {
 public:
  SharedSegment() = default;
  SharedSegment(SharedSegment&& other) noexcept { *this = std::move(other); }
  SharedSegment& operator=(SharedSegment&& other) noexcept;
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;
  ~SharedSegment();  // unmaps; never unlinks (see Unlink)

  // A new zero-filled segment of `bytes` bytes with a fresh random name.
  static absl::StatusOr<SharedSegment> Create(size_t bytes);
  // Maps the existing segment `name`. Fails unless it exists and is exactly `bytes` long.
  static absl::StatusOr<SharedSegment> Open(const std::string& name, size_t bytes);
  // Removes `name` from /dev/shm (ENOENT is not an error: somebody else removed it).
  static absl::Status Unlink(const std::string& name);

  bool valid() const { return data_ != nullptr; }
  char* data() const { return static_cast<char*>(data_); }
  size_t size() const { return size_; }
  const std::string& name() const { return name_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
};

// What ranks compare to decide that they share a host: the kernel's boot id and the host name
// ("<boot_id>/<hostname>"). Equal strings are necessary, not sufficient (two pods of one node
// share the boot id but not /dev/shm): the segment probe decides.
std::string HostFingerprint();

}  // namespace tandem::collective
