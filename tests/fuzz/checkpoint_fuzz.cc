// Checkpoint loading on arbitrary file contents: the container (common/checkpoint: ReadCheckpoint
// and CheckpointFile, which trainers restore from) and, for what the container accepts, the
// pserver's decoding and restore (pserver/shard_checkpoint, Shard::Restore). A damaged file is an
// error, never a crash, and never an allocation larger than the file justifies.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "pserver/shard.h"
#include "pserver/shard_checkpoint.h"

namespace {

// The input as a file without touching the disk: a memfd, opened again through /proc.
const std::string& WriteInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("tandem-fuzz-checkpoint", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))
    std::abort();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = WriteInput(data, size);

  if (auto file = tandem::CheckpointFile::Open(path); file.ok()) {
    for (const auto& info : (*file)->arrays()) {
      const size_t bytes = static_cast<size_t>(info.num_elements) * tandem::DTypeSize(info.dtype);
      if (bytes > size) std::abort();  // a descriptor promising more data than the file has
      std::vector<uint8_t> dst(bytes);
      (void)(*file)->ReadInto(info, dst.data(), dst.size());
      (void)(*file)->ReadChunks(info, 64, [](const void*, size_t) { return absl::OkStatus(); });
    }
  }

  auto ckpt = tandem::ReadCheckpoint(path);
  if (!ckpt.ok()) return 0;
  for (const tandem::CheckpointArray& a : ckpt->arrays) {
    if (a.byte_size() > size) std::abort();
  }
  auto state = tandem::pserver::DecodeShardState(*ckpt);
  if (!state.ok()) return 0;
  tandem::pserver::ShardOptions options;
  options.shard = state->shard < 4 ? state->shard : 0;
  options.num_shards = 4;
  options.num_trainers = 2;
  options.max_dense_size = 1 << 16;  // Restore allocates the declared tables
  options.max_dim = 64;
  tandem::pserver::Shard shard(options);
  (void)shard.Restore(*state);
  return 0;
}
