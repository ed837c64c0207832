// Reading a whole data file into memory, gzip-compressed or plain (zlib detects which).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tandem::trainer::data {

struct FileBytes {
  std::string data;          // the decompressed contents
  int64_t bytes_on_disk = 0; // the file's size as stored
};

// Bytes that stay valid while the object lives: an owned string, or a read-only mapping of a
// file (trainer/data/decoded_cache.h). Shared by the datasets that keep them.
class SharedBytes {
 public:
  virtual ~SharedBytes() = default;
  virtual std::string_view view() const = 0;
};

// Wraps `bytes` as SharedBytes.
std::shared_ptr<const SharedBytes> OwnBytes(std::string bytes);

// Reads `path` completely, decompressing gzip. A missing file is NotFound; a truncated or corrupt
// gzip stream is DataLoss; both messages name the file. Files above `max_bytes` (decompressed)
// are refused with ResourceExhausted rather than exhausting memory.
absl::StatusOr<FileBytes> ReadFileBytes(const std::string& path,
                                        int64_t max_bytes = int64_t{16} << 30);

}  // namespace tandem::trainer::data
