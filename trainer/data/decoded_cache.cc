#include "trainer/data/decoded_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/status.h"

namespace tandem::trainer::data {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'T', 'D', 'C', 'A', 'C', 'H', 'E', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kAlign = 4096;  // the data starts page-aligned

// The fixed part of an entry's header, then `path_bytes` of the source's absolute path, then
// zeros up to `header_bytes`. Native byte order: an entry is read by the machine that wrote it
// (another order fails the magic-and-version check as corrupt and is rewritten).
struct EntryHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint64_t source_size;
  int64_t source_mtime_ns;
  uint64_t data_bytes;
  uint32_t data_crc;
  uint32_t path_bytes;
  uint32_t header_crc;  // of this struct with header_crc = 0, then the path
  uint32_t reserved;
};
static_assert(sizeof(EntryHeader) == 56);

uint32_t HeaderCrc(EntryHeader h, std::string_view path) {
  h.header_crc = 0;
  return crc32c::Extend(crc32c::Value(&h, sizeof(h)), path.data(), path.size());
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// A read-only mapping of a whole entry; view() is its data.
class MappedEntry : public SharedBytes {
 public:
  MappedEntry(void* base, size_t length, size_t offset) : base_(base), length_(length), offset_(offset) {}
  ~MappedEntry() override { ::munmap(base_, length_); }
  MappedEntry(const MappedEntry&) = delete;
  MappedEntry& operator=(const MappedEntry&) = delete;
  std::string_view view() const override {
    return {static_cast<const char*>(base_) + offset_, length_ - offset_};
  }

 private:
  void* base_;
  size_t length_;
  size_t offset_;
};

struct Lookup {
  std::shared_ptr<const SharedBytes> bytes;  // set: a valid entry
  std::string refused;                       // set: an entry exists and was refused, why
};

// The entry at `entry` for the source `abs` as `st` describes it now.
Lookup OpenEntry(const std::string& entry, const std::string& abs, const struct stat& st) {
  Lookup out;
  const int fd = ::open(entry.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) out.refused = absl::StrCat("cannot open it: ", std::strerror(errno));
    return out;
  }
  auto refuse = [&](std::string why) {
    ::close(fd);
    out.refused = absl::StrCat("corrupt: ", why);
    return out;
  };
  struct stat est;
  if (::fstat(fd, &est) != 0) return refuse(absl::StrCat("fstat: ", std::strerror(errno)));
  const uint64_t file_size = static_cast<uint64_t>(est.st_size);
  EntryHeader h;
  if (file_size < sizeof(h) || ::pread(fd, &h, sizeof(h), 0) != static_cast<ssize_t>(sizeof(h)))
    return refuse(absl::StrCat("only ", file_size, " bytes, shorter than its header"));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0 || h.version != kVersion)
    return refuse("bad magic number or version");
  if (h.path_bytes > 65536 || h.header_bytes < sizeof(h) + h.path_bytes || h.header_bytes > file_size)
    return refuse("bad header lengths");
  std::string stored_path(h.path_bytes, '\0');
  if (::pread(fd, stored_path.data(), h.path_bytes, sizeof(h)) != static_cast<ssize_t>(h.path_bytes))
    return refuse("short read of its header");
  if (HeaderCrc(h, stored_path) != h.header_crc) return refuse("header checksum mismatch");
  if (stored_path != abs) {
    ::close(fd);
    out.refused = absl::StrCat("it is for ", stored_path);  // a name collision: rewritten for this source
    return out;
  }
  if (h.source_size != static_cast<uint64_t>(st.st_size) || h.source_mtime_ns != MtimeNs(st)) {
    ::close(fd);
    out.refused = absl::StrCat("stale: the source changed (size ", h.source_size, " -> ", st.st_size,
                               ", mtime ", h.source_mtime_ns, " -> ", MtimeNs(st), " ns)");
    return out;
  }
  if (file_size != h.header_bytes + h.data_bytes)
    return refuse(absl::StrCat(file_size, " bytes, the header says ", h.header_bytes + h.data_bytes));
  // MAP_POPULATE: every page is read for the checksum anyway; faulting them in one go is cheaper.
  void* base = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (base == MAP_FAILED) return refuse(absl::StrCat("mmap: ", std::strerror(errno)));
  ::close(fd);
  auto mapped = std::make_shared<const MappedEntry>(base, file_size, h.header_bytes);
  const std::string_view data = mapped->view();
  if (crc32c::Value(data.data(), data.size()) != h.data_crc) {
    out.refused = "corrupt: data checksum mismatch";
    return out;
  }
  out.bytes = std::move(mapped);
  return out;
}

// Writes the entry for `abs` (as `st` describes it) holding `data`: a temporary file, renamed.
absl::Status WriteEntry(const std::string& entry, const std::string& abs, const struct stat& st,
                        std::string_view data) {
  EntryHeader h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.path_bytes = static_cast<uint32_t>(abs.size());
  h.header_bytes = static_cast<uint32_t>((sizeof(h) + abs.size() + kAlign - 1) / kAlign * kAlign);
  h.source_size = static_cast<uint64_t>(st.st_size);
  h.source_mtime_ns = MtimeNs(st);
  h.data_bytes = data.size();
  h.data_crc = crc32c::Value(data.data(), data.size());
  h.header_crc = HeaderCrc(h, abs);
  std::string header(h.header_bytes, '\0');
  std::memcpy(header.data(), &h, sizeof(h));
  std::memcpy(header.data() + sizeof(h), abs.data(), abs.size());

  const std::string tmp = absl::StrCat(entry, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  absl::Status status;
  for (std::string_view part : {std::string_view(header), data}) {
    while (!part.empty() && status.ok()) {
      const ssize_t n = ::write(fd, part.data(), part.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) status = ErrnoToStatus(n < 0 ? errno : ENOSPC, absl::StrCat("write ", tmp));
      else part.remove_prefix(static_cast<size_t>(n));
    }
  }
  if (::close(fd) != 0 && status.ok()) status = ErrnoToStatus(errno, absl::StrCat("close ", tmp));
  if (status.ok() && ::rename(tmp.c_str(), entry.c_str()) != 0)
    status = ErrnoToStatus(errno, absl::StrCat("rename ", tmp, " to ", entry));
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

// Removes the entries of `cache_dir` whose sources no longer exist, and temporary files over an
// hour old (a writer that crashed: a live one renames its file within seconds). Best effort.
void PruneVanished(const std::string& cache_dir) {
  std::error_code ec;
  const auto hour_ago = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (fs::directory_iterator it(cache_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().string();
    if (name.find(".decoded.tmp.") != std::string::npos) {
      std::error_code tec;
      const auto written = fs::last_write_time(it->path(), tec);
      if (!tec && written < hour_ago) fs::remove(it->path(), tec);
      continue;
    }
    if (it->path().extension() != ".decoded") continue;
    const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    EntryHeader h;
    std::string source;
    if (::pread(fd, &h, sizeof(h), 0) == static_cast<ssize_t>(sizeof(h)) &&
        std::memcmp(h.magic, kMagic, sizeof(kMagic)) == 0 && h.path_bytes <= 65536) {
      source.resize(h.path_bytes);
      if (::pread(fd, source.data(), h.path_bytes, sizeof(h)) != static_cast<ssize_t>(h.path_bytes)) source.clear();
    }
    ::close(fd);
    struct stat st;
    if (!source.empty() && ::stat(source.c_str(), &st) != 0 && errno == ENOENT) ::unlink(name.c_str());
  }
}

bool IsGzip(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char head[2] = {0, 0};
  const bool gzip = ::read(fd, head, 2) == 2 && head[0] == 0x1f && head[1] == 0x8b;
  ::close(fd);
  return gzip;
}

}  // namespace

std::string DecodedCacheEntryPath(const std::string& path, const std::string& cache_dir) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec).lexically_normal();
  const std::string a = abs.string();
  return absl::StrCat(cache_dir, "/", abs.filename().string(), ".",
                      absl::Hex(crc32c::Value(a.data(), a.size()), absl::kZeroPad8), ".decoded");
}

absl::StatusOr<CachedFile> ReadThroughDecodedCache(const std::string& path, const DecodedCacheOptions& options) {
  const std::string& cache_dir = options.dir;
  const int64_t max_bytes = options.max_bytes;
  CachedFile out;
  struct stat st;
  const bool cacheable = !cache_dir.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && IsGzip(path);
  if (!cacheable) {
    absl::StatusOr<FileBytes> read = ReadFileBytes(path, max_bytes);  // its errors name the file
    if (!read.ok()) return read.status();
    out.bytes_on_disk = read->bytes_on_disk;
    out.bytes = OwnBytes(std::move(read->data));
    return out;
  }
  out.bytes_on_disk = static_cast<int64_t>(st.st_size);
  std::error_code ec;
  const std::string abs = fs::absolute(path, ec).lexically_normal().string();
  const std::string entry = DecodedCacheEntryPath(path, cache_dir);
  Lookup found = OpenEntry(entry, abs, st);
  if (found.bytes != nullptr && found.bytes->view().size() <= static_cast<uint64_t>(max_bytes)) {
    out.bytes = std::move(found.bytes);
    out.hit = true;
    return out;
  }
  absl::StatusOr<FileBytes> read = ReadFileBytes(path, max_bytes);
  if (!read.ok()) return read.status();
  if (!found.refused.empty())
    out.note = absl::StrCat("decoded cache: refused ", entry, " (", found.refused, "); decoded ", path, " again");
  if (static_cast<int64_t>(read->data.size()) < options.min_bytes) {
    out.bytes = OwnBytes(std::move(read->data));
    return out;
  }
  fs::create_directories(cache_dir, ec);
  absl::Status written = ec ? absl::PermissionDeniedError(absl::StrCat("create ", cache_dir, ": ", ec.message()))
                            : WriteEntry(entry, abs, st, read->data);
  if (written.ok()) PruneVanished(cache_dir);
  if (!written.ok()) {
    if (!out.note.empty()) absl::StrAppend(&out.note, "; ");
    absl::StrAppend(&out.note, "decoded cache: not kept: ", written.message());
  }
  out.bytes = OwnBytes(std::move(read->data));
  return out;
}

}  // namespace tandem::trainer::data
