// Checkpoint loading on arbitrary file contents: the container (common/checkpoint: ReadCheckpoint
// and CheckpointFile, which trainers restore from) and, for what the container accepts, the
// pserver's decoding and restore (pserver/shard_checkpoint, Shard::Restore). A damaged file is an
// error, never a crash, and never an allocation larger than the file justifies.
//
// Mutated bytes rarely survive the checksums, so an input whose first byte is 'W' is instead a
// recipe (fuzz_input.h) for a file written by CheckpointWriter with valid checksums: metadata JSON
// text, then arrays (name, dtype, up to 4 dimensions, data). That reaches the pserver's decoding
// of metadata and arrays with hostile table declarations, keys, counts and shapes.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "pserver/shard.h"
#include "pserver/shard_checkpoint.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

// The input as a file without touching the disk: a memfd, opened again through /proc.
const std::string& WriteInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("tandem-fuzz-checkpoint", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))
    std::abort();
  return path;
}

// Writes the recipe's checkpoint with valid checksums (on /dev/shm: tmpfs, no disk); returns its
// path, or "" when the writer refused the recipe.
std::string WriteRecipe(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    std::atexit([] {
      ::unlink(("/dev/shm/tandem-fuzz-" + std::to_string(::getpid()) + ".ckpt").c_str());
    });
    return "/dev/shm/tandem-fuzz-" + std::to_string(::getpid()) + ".ckpt";
  }();
  tandem::fuzz::FuzzInput in(data + 1, size - 1);
  nlohmann::json metadata = nlohmann::json::parse(in.Bytes(), nullptr, false);
  if (metadata.is_discarded()) return "";
  auto writer = tandem::CheckpointWriter::Open(path, metadata);
  if (!writer.ok()) return "";
  for (int a = 0; a < 16 && !in.empty(); ++a) {
    const std::string name = in.Bytes();
    const auto dtype = static_cast<tandem::DType>(1 + in.Byte() % 5);
    std::vector<int64_t> shape(in.Byte() % 5);
    for (int64_t& d : shape) d = in.Byte();
    const std::string bytes = in.Bytes();
    const size_t elem = tandem::DTypeSize(dtype);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (static_cast<size_t>(n) * elem > bytes.size()) return "";
    if (!(*writer)->AddRaw(name, dtype, shape, bytes.data(), static_cast<size_t>(n)).ok()) return "";
  }
  if (!(*writer)->Commit().ok()) return "";
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path;
  if (size > 0 && data[0] == 'W') {
    path = WriteRecipe(data, size);
    if (path.empty()) return 0;
    size = std::filesystem::file_size(path);  // the bound the descriptor checks use
  } else {
    path = WriteInput(data, size);
  }

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
