#include "trainer/data/file_bytes.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::trainer::data {
namespace {

class OwnedBytes : public SharedBytes {
 public:
  explicit OwnedBytes(std::string bytes) : bytes_(std::move(bytes)) {}
  std::string_view view() const override { return bytes_; }

 private:
  std::string bytes_;
};

}  // namespace

std::shared_ptr<const SharedBytes> OwnBytes(std::string bytes) {
  return std::make_shared<const OwnedBytes>(std::move(bytes));
}

absl::StatusOr<FileBytes> ReadFileBytes(const std::string& path, int64_t max_bytes) {
  FileBytes out;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  if (S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory"));
  out.bytes_on_disk = static_cast<int64_t>(st.st_size);
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return ErrnoToStatus(errno ? errno : ENOMEM, absl::StrCat("open ", path));
  gzbuffer(f, 1 << 18);
  // Plain files decompress 1:1. A gzip file ends with its uncompressed size modulo 2^32 (RFC 1952
  // ISIZE): a good first guess that saves growing the buffer (wrong only above 4 GiB or for
  // multi-member files, and then the buffer simply grows).
  size_t capacity = static_cast<size_t>(st.st_size) + (1 << 16);
  if (st.st_size >= 18) {
    unsigned char head[2] = {0, 0}, tail[4] = {0, 0, 0, 0};
    std::FILE* raw = std::fopen(path.c_str(), "rb");
    if (raw != nullptr) {
      const bool gzip = std::fread(head, 1, 2, raw) == 2 && head[0] == 0x1f && head[1] == 0x8b;
      if (gzip && std::fseek(raw, -4, SEEK_END) == 0 && std::fread(tail, 1, 4, raw) == 4) {
        const uint32_t isize = uint32_t{tail[0]} | (uint32_t{tail[1]} << 8) |
                               (uint32_t{tail[2]} << 16) | (uint32_t{tail[3]} << 24);
        capacity = std::max<size_t>(capacity, size_t{isize} + 1);  // +1: EOF seen without growing
      }
      std::fclose(raw);
    }
  }
  capacity = std::min<size_t>(capacity, static_cast<size_t>(max_bytes));
  out.data.resize(capacity);
  size_t used = 0;
  absl::Status status;
  while (true) {
    if (used == out.data.size()) {
      if (static_cast<int64_t>(used) >= max_bytes) {
        status = absl::ResourceExhaustedError(
            absl::StrCat(path, ": larger than the limit of ", max_bytes, " bytes"));
        break;
      }
      out.data.resize(std::min<size_t>(out.data.size() * 2, static_cast<size_t>(max_bytes)));
    }
    const size_t want = std::min<size_t>(out.data.size() - used, size_t{1} << 30);
    const int n = gzread(f, out.data.data() + used, static_cast<unsigned>(want));
    if (n < 0) {
      int err = Z_OK;
      const char* msg = gzerror(f, &err);
      status = err == Z_ERRNO ? ErrnoToStatus(errno, absl::StrCat("read ", path))
                              : absl::DataLossError(absl::StrCat(path, ": corrupt gzip data (",
                                                                 msg ? msg : "?", ")"));
      break;
    }
    if (n == 0) {
      // gzread returns the data it could before reporting a truncated stream; check for it.
      int err = Z_OK;
      const char* msg = gzerror(f, &err);
      if (err != Z_OK && err != Z_STREAM_END) {
        status = absl::DataLossError(
            absl::StrCat(path, ": truncated or corrupt gzip data (", msg ? msg : "?", ")"));
      }
      break;
    }
    used += static_cast<size_t>(n);
  }
  gzclose(f);
  if (!status.ok()) return status;
  out.data.resize(used);
  out.data.shrink_to_fit();
  return out;
}

}  // namespace tandem::trainer::data
