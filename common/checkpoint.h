// Checkpoint files: named arrays (float32 parameters and optimizer state, uint64 sparse-row keys,
// ...) plus JSON metadata, written atomically and checksummed. Used by trainer checkpoints and by
// pserver shard checkpoints.
//
//   auto writer = CheckpointWriter::Open(path, {{"step", 500}, {"pass", 1}});
//   if (!writer.ok()) return writer.status();
//   TANDEM_RETURN_IF_ERROR((*writer)->Add("fc1.weight", {784, 256}, weights));   // span<const float>
//   TANDEM_RETURN_IF_ERROR((*writer)->Commit());   // only now does `path` exist (or change)
//
//   TANDEM_ASSIGN_OR_RETURN(Checkpoint ckpt, ReadCheckpoint(path));
//   const CheckpointArray* w = ckpt.Find("fc1.weight");   // w->Floats(), w->shape
//
// Atomicity: the writer fills `path.tmp-<pid>-<random>-<n>` in the same directory, fsyncs it, renames it
// over `path` and fsyncs the directory, so a crash leaves either the old file or the new one,
// never a torn one. A writer destroyed before Commit() removes its temporary file.
//
// Integrity: every part carries a CRC-32C and the file ends with a footer giving the array count
// and length; ReadCheckpoint verifies magic, version, every length and every checksum before
// returning anything, and refuses a corrupt or truncated file with a DataLoss error that names the
// file and the part at fault. File layout (little-endian) in docs/data.md.
//
// Speed: array data is written and read with one system call per 64 MiB and checksummed with the
// SSE4.2 instruction; nothing else touches each element.
//
// Thread-safety: a CheckpointWriter is used by one thread; ReadCheckpoint is reentrant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem {

// Element types. Append-only: the values are stored in files.
enum class DType : uint8_t {
  kFloat32 = 1,
  kInt32 = 2,
  kInt64 = 3,
  kUint64 = 4,
  kUint8 = 5,
};
size_t DTypeSize(DType dtype);
const char* DTypeName(DType dtype);

template <typename T>
constexpr DType DTypeOf();
template <> constexpr DType DTypeOf<float>() { return DType::kFloat32; }
template <> constexpr DType DTypeOf<int32_t>() { return DType::kInt32; }
template <> constexpr DType DTypeOf<int64_t>() { return DType::kInt64; }
template <> constexpr DType DTypeOf<uint64_t>() { return DType::kUint64; }
template <> constexpr DType DTypeOf<uint8_t>() { return DType::kUint8; }

inline constexpr uint32_t kCheckpointVersion = 1;

class CheckpointWriter {
 public:
  // Creates the temporary file next to `path`. The metadata is any JSON value (an object, usually).
  static absl::StatusOr<std::unique_ptr<CheckpointWriter>> Open(const std::string& path,
                                                                const nlohmann::json& metadata);
  ~CheckpointWriter();  // removes the temporary file unless committed
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Appends one array. REQUIRES: data.size() == product(shape) (an empty shape is a scalar:
  // one element). Names must be unique within a file (checked: AlreadyExists) and at most
  // 4096 bytes; at most 16 dimensions.
  template <typename T>
  absl::Status Add(std::string_view name, std::span<const int64_t> shape, std::span<const T> data) {
    return AddRaw(name, DTypeOf<T>(), shape, data.data(), data.size());
  }
  template <typename T>
  absl::Status Add(std::string_view name, std::initializer_list<int64_t> shape,
                   std::span<const T> data) {
    return Add<T>(name, std::span<const int64_t>(shape.begin(), shape.size()), data);
  }
  template <typename T>
  absl::Status Add(std::string_view name, std::initializer_list<int64_t> shape,
                   const std::vector<T>& data) {
    return Add<T>(name, shape, std::span<const T>(data));
  }
  absl::Status AddRaw(std::string_view name, DType dtype, std::span<const int64_t> shape,
                      const void* data, size_t num_elements);

  // Streaming form, for data that is not contiguous (a pserver's hash-table rows): BeginArray,
  // AppendData any number of times with exactly product(shape) * DTypeSize(dtype) bytes in all,
  // EndArray. Appending past the size is refused (InvalidArgument, nothing written); ending short
  // fails the writer, since the file then holds a partial array. One array open at a time.
  absl::Status BeginArray(std::string_view name, DType dtype, std::span<const int64_t> shape);
  absl::Status AppendData(const void* data, size_t bytes);
  absl::Status EndArray();

  // Writes the footer, fsyncs, renames onto the final path and fsyncs the directory. After an
  // error the final path is untouched (its previous version, if any, remains).
  absl::Status Commit();

  const std::string& path() const { return path_; }
  // Bytes written so far.
  uint64_t bytes_written() const { return offset_; }

 private:
  CheckpointWriter(std::string path, std::string temp_path, int fd);
  absl::Status Write(const void* data, size_t n);        // buffered, small pieces
  absl::Status WriteDirect(const void* data, size_t n);  // large array data
  absl::Status Flush();
  absl::Status Fail(absl::Status status);

  const std::string path_;
  const std::string temp_path_;
  int fd_;
  bool committed_ = false;
  absl::Status error_;  // the first failure; every later call returns it
  uint64_t offset_ = 0;
  uint64_t num_arrays_ = 0;
  std::vector<std::string> names_;
  bool array_open_ = false;
  std::string open_name_;
  uint64_t open_expected_ = 0;
  uint64_t open_written_ = 0;
  uint32_t open_crc_ = 0;
  std::string buffer_;
};

// One array read back from a file.
struct CheckpointArray {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  int64_t num_elements = 0;

  // The elements as T. REQUIRES: dtype == DTypeOf<T>() (checked).
  template <typename T>
  std::span<const T> As() const {
    CheckType(DTypeOf<T>());
    return {reinterpret_cast<const T*>(bytes_.get()), static_cast<size_t>(num_elements)};
  }
  std::span<const float> Floats() const { return As<float>(); }
  const void* data() const { return bytes_.get(); }
  size_t byte_size() const { return static_cast<size_t>(num_elements) * DTypeSize(dtype); }

 private:
  friend absl::StatusOr<struct Checkpoint> ReadCheckpoint(const std::string& path);
  void CheckType(DType want) const;
  std::shared_ptr<uint8_t[]> bytes_;  // 16-byte aligned (operator new)
};

struct Checkpoint {
  nlohmann::json metadata;
  std::vector<CheckpointArray> arrays;  // in the order they were added
  // The array named `name`, or nullptr.
  const CheckpointArray* Find(std::string_view name) const;
};

// Random access to a checkpoint: Open() verifies the header, footer, metadata and every array
// descriptor (not the data); ReadInto() reads one array's data into the caller's memory and
// verifies its checksum. Restoring straight into existing parameter tensors this way avoids a
// second copy and fresh allocations (page faults dominate reading into new memory).
//   TANDEM_ASSIGN_OR_RETURN(auto file, CheckpointFile::Open(path));
//   for (Parameter& p : params)
//     TANDEM_RETURN_IF_ERROR(file->ReadInto<float>(p.name, p.values));   // span<float>
// On a DataLoss error the destination holds unverified bytes: fall back to another checkpoint.
class CheckpointFile {
 public:
  struct ArrayInfo {
    std::string name;
    DType dtype = DType::kFloat32;
    std::vector<int64_t> shape;
    int64_t num_elements = 0;
    uint64_t offset_ = 0;  // internal: where the data starts
  };
  static absl::StatusOr<std::unique_ptr<CheckpointFile>> Open(const std::string& path);
  ~CheckpointFile();
  CheckpointFile(const CheckpointFile&) = delete;
  CheckpointFile& operator=(const CheckpointFile&) = delete;

  const nlohmann::json& metadata() const { return metadata_; }
  const std::vector<ArrayInfo>& arrays() const { return arrays_; }
  const ArrayInfo* Find(std::string_view name) const;  // nullptr when absent
  // Reads the array's data into dst and verifies its checksum. InvalidArgument when dst_bytes is
  // not the array's size; DataLoss on a checksum mismatch. Thread-safe (pread).
  absl::Status ReadInto(const ArrayInfo& info, void* dst, size_t dst_bytes) const;
  // Streams the array's data through fn in pieces of at most chunk_bytes (whole elements), then
  // verifies the checksum: the pieces are unverified until this returns OK, so on DataLoss the
  // caller discards what it built from them (a pserver restoring hash-table rows). fn's error
  // stops the read and is returned.
  absl::Status ReadChunks(const ArrayInfo& info, size_t chunk_bytes,
                          const std::function<absl::Status(const void* data, size_t bytes)>& fn)
      const;
  // By name, typed: NotFound when absent, InvalidArgument on a dtype or size mismatch.
  template <typename T>
  absl::Status ReadInto(std::string_view name, std::span<T> dst) const {
    const ArrayInfo* info = Find(name);
    if (info == nullptr) return NotFound(name);
    if (info->dtype != DTypeOf<std::remove_const_t<T>>()) return WrongType(*info, DTypeOf<std::remove_const_t<T>>());
    return ReadInto(*info, dst.data(), dst.size_bytes());
  }

 private:
  CheckpointFile(std::string path, int fd);
  absl::Status ReadStructure();
  absl::Status ReadAt(uint64_t offset, void* dst, size_t n) const;
  absl::Status Loss(const std::string& what) const;
  absl::Status NotFound(std::string_view name) const;
  absl::Status WrongType(const ArrayInfo& info, DType want) const;

  const std::string path_;
  const int fd_;
  nlohmann::json metadata_;
  std::vector<ArrayInfo> arrays_;
};

// Reads and verifies a whole checkpoint. NotFound when the file is absent; DataLoss, naming the
// file and the damaged part, when it is corrupt, truncated or of an unknown version.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path);

// Writes a checkpoint in one call (Open, Add each float array, Commit).
struct NamedFloats {
  std::string_view name;
  std::vector<int64_t> shape;
  std::span<const float> data;
};
absl::Status WriteCheckpoint(const std::string& path, const nlohmann::json& metadata,
                             std::span<const NamedFloats> arrays);

// fsyncs the directory `dir` (makes a rename or a new entry in it durable).
absl::Status SyncDirectory(const std::string& dir);

// Numbered checkpoints in a directory: `<dir>/<prefix>-<step, 12 digits>.ckpt`.
std::string NumberedCheckpointPath(const std::string& dir, const std::string& prefix, int64_t step);
struct NumberedCheckpoint {
  int64_t step;
  std::string path;
};
// The numbered checkpoints of `prefix` in `dir`, oldest first (a missing dir is empty).
absl::StatusOr<std::vector<NumberedCheckpoint>> ListNumberedCheckpoints(const std::string& dir,
                                                                        const std::string& prefix);
// Removes all but the newest `keep` numbered checkpoints of `prefix`. REQUIRES: keep >= 1.
absl::Status PruneNumberedCheckpoints(const std::string& dir, const std::string& prefix, int keep);

}  // namespace tandem
