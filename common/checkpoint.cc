#include "common/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <functional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/crc32c.h"
#include "common/status.h"

namespace tandem {
namespace {

// File layout (all integers little-endian):
//   header   "TNDMCKPT" | u32 version | u32 crc(previous 12 bytes)                    16 bytes
//   metadata u64 length | JSON text | u32 crc(length field + text)
//   array*   u32 'TARR' | u32 name length | u8 dtype | u8 ndims | u16 0 | u64 dims[ndims] | name
//            | u32 crc(descriptor) | data (product(dims) * dtype size bytes) | u32 crc(data)
//   footer   "TNDMFOOT" | u64 arrays | u64 footer offset | u32 crc(previous 24 bytes) | u32 0
constexpr char kHeaderMagic[8] = {'T', 'N', 'D', 'M', 'C', 'K', 'P', 'T'};
constexpr char kFooterMagic[8] = {'T', 'N', 'D', 'M', 'F', 'O', 'O', 'T'};
constexpr uint32_t kArrayMarker = 0x52524154;  // "TARR"
constexpr size_t kHeaderSize = 16;
constexpr size_t kFooterSize = 32;
constexpr size_t kMaxNameLength = 4096;
constexpr int kMaxDims = 16;
constexpr size_t kChunk = size_t{8} << 20;  // checksum then write 8 MiB at a time (stays in cache)
constexpr size_t kBufferSize = size_t{1} << 20;

static_assert(std::endian::native == std::endian::little, "checkpoint I/O assumes little-endian");

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <typename T>
T Get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

bool ValidDType(uint8_t d) { return d >= 1 && d <= 5; }

absl::Status WriteAll(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("write ", path));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

std::atomic<uint64_t> temp_counter{0};

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kInt64:
    case DType::kUint64:
      return 8;
    case DType::kUint8:
      return 1;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
    case DType::kUint64:
      return "uint64";
    case DType::kUint8:
      return "uint8";
  }
  return "unknown";
}

// ---- Writer ------------------------------------------------------------------------------------

CheckpointWriter::CheckpointWriter(std::string path, std::string temp_path, int fd)
    : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {
  buffer_.reserve(kBufferSize);
}

CheckpointWriter::~CheckpointWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

absl::StatusOr<std::unique_ptr<CheckpointWriter>> CheckpointWriter::Open(
    const std::string& path, const nlohmann::json& metadata) {
  // pid and a counter make the name unique in this process; the random part keeps two pods that
  // share a volume (both pid 1, say) apart.
  static const uint32_t salt = std::random_device{}();
  const std::string temp = absl::StrCat(path, ".tmp-", ::getpid(), "-", absl::Hex(salt), "-",
                                        temp_counter++);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create checkpoint ", temp));
  std::unique_ptr<CheckpointWriter> w(new CheckpointWriter(path, temp, fd));
  std::string header(kHeaderMagic, sizeof(kHeaderMagic));
  Put<uint32_t>(&header, kCheckpointVersion);
  Put<uint32_t>(&header, crc32c::Value(header.data(), header.size()));
  std::string meta;
  const std::string text = metadata.dump();
  Put<uint64_t>(&meta, text.size());
  meta += text;
  Put<uint32_t>(&meta, crc32c::Value(meta.data(), meta.size()));
  absl::Status s = w->Write(header.data(), header.size());
  if (s.ok()) s = w->Write(meta.data(), meta.size());
  if (!s.ok()) return s;
  return w;
}

absl::Status CheckpointWriter::Fail(absl::Status status) {
  if (error_.ok()) error_ = status;
  return error_;
}

absl::Status CheckpointWriter::Write(const void* data, size_t n) {
  if (buffer_.size() + n > kBufferSize) {
    absl::Status s = Flush();
    if (!s.ok()) return s;
  }
  if (n >= kBufferSize) {
    return WriteDirect(data, n);
  }
  buffer_.append(static_cast<const char*>(data), n);
  offset_ += n;
  return absl::OkStatus();
}

absl::Status CheckpointWriter::Flush() {
  if (buffer_.empty()) return absl::OkStatus();
  absl::Status s = WriteAll(fd_, buffer_.data(), buffer_.size(), temp_path_);
  buffer_.clear();
  if (!s.ok()) return Fail(s);
  return s;
}

absl::Status CheckpointWriter::WriteDirect(const void* data, size_t n) {
  absl::Status s = Flush();
  if (s.ok()) s = WriteAll(fd_, data, n, temp_path_);
  if (!s.ok()) return Fail(s);
  offset_ += n;
  return s;
}

absl::Status CheckpointWriter::BeginArray(std::string_view name, DType dtype,
                                          std::span<const int64_t> shape) {
  // absl (Debian's build) does not take std::string_view in StrCat.
  const std::string name_str(name);
  if (!error_.ok()) return error_;
  if (committed_) return absl::FailedPreconditionError("checkpoint already committed");
  if (array_open_) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", path_, ": array '",
                                                      open_name_, "' is still open"));
  }
  if (name.empty() || name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", path_, ": array name must have 1 to ", kMaxNameLength,
                     " bytes, got ", name.size()));
  }
  if (DTypeSize(dtype) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", path_, ": array '", name_str, "' has an unknown dtype"));
  }
  if (shape.size() > static_cast<size_t>(kMaxDims)) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint ", path_, ": array '", name_str,
                                                   "' has ", shape.size(), " dimensions (max ",
                                                   kMaxDims, ")"));
  }
  uint64_t elements = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", path_, ": array '", name_str, "' has a negative dimension"));
    }
    elements *= static_cast<uint64_t>(d);
  }
  if (std::find(names_.begin(), names_.end(), name) != names_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("checkpoint ", path_, ": array '", name_str, "' added twice"));
  }
  std::string desc;
  Put<uint32_t>(&desc, kArrayMarker);
  Put<uint32_t>(&desc, static_cast<uint32_t>(name.size()));
  Put<uint8_t>(&desc, static_cast<uint8_t>(dtype));
  Put<uint8_t>(&desc, static_cast<uint8_t>(shape.size()));
  Put<uint16_t>(&desc, 0);
  for (int64_t d : shape) Put<uint64_t>(&desc, static_cast<uint64_t>(d));
  desc.append(name.data(), name.size());
  Put<uint32_t>(&desc, crc32c::Value(desc.data(), desc.size()));
  TANDEM_RETURN_IF_ERROR(Write(desc.data(), desc.size()));
  names_.emplace_back(name);
  array_open_ = true;
  open_name_ = name_str;
  open_expected_ = elements * DTypeSize(dtype);
  open_written_ = 0;
  open_crc_ = 0;
  return absl::OkStatus();
}

absl::Status CheckpointWriter::AppendData(const void* data, size_t bytes) {
  if (!error_.ok()) return error_;
  if (!array_open_) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", path_, ": AppendData without BeginArray"));
  }
  if (bytes > open_expected_ - open_written_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint ", path_, ": array '", open_name_, "' holds ", open_expected_,
        " bytes; appending ", bytes, " after ", open_written_, " would exceed it"));
  }
  // Checksum a cache-sized chunk, then write it, so each byte comes from memory once.
  const auto* p = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    const size_t n = std::min(bytes, kChunk);
    open_crc_ = crc32c::Extend(open_crc_, p, n);
    TANDEM_RETURN_IF_ERROR(Write(p, n));
    p += n;
    bytes -= n;
    open_written_ += n;
  }
  return absl::OkStatus();
}

absl::Status CheckpointWriter::EndArray() {
  if (!error_.ok()) return error_;
  if (!array_open_) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", path_, ": EndArray without BeginArray"));
  }
  if (open_written_ != open_expected_) {
    // The file now holds a partial array: nothing more may be added to it.
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", path_, ": array '", open_name_, "' ended after ",
                     open_written_, " of its ", open_expected_, " bytes")));
  }
  TANDEM_RETURN_IF_ERROR(Write(&open_crc_, sizeof(open_crc_)));
  array_open_ = false;
  ++num_arrays_;
  return absl::OkStatus();
}

absl::Status CheckpointWriter::AddRaw(std::string_view name, DType dtype,
                                      std::span<const int64_t> shape, const void* data,
                                      size_t num_elements) {
  uint64_t elements = 1;
  for (int64_t d : shape) elements *= static_cast<uint64_t>(std::max<int64_t>(d, 0));
  if (elements != num_elements) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint ", path_, ": array '",
                                                   std::string(name), "' has ", num_elements,
                                                   " elements but its shape holds ", elements));
  }
  TANDEM_RETURN_IF_ERROR(BeginArray(name, dtype, shape));
  TANDEM_RETURN_IF_ERROR(AppendData(data, num_elements * DTypeSize(dtype)));
  return EndArray();
}

absl::Status CheckpointWriter::Commit() {
  if (!error_.ok()) return error_;
  if (committed_) return absl::FailedPreconditionError("checkpoint already committed");
  if (array_open_) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", path_, ": array '",
                                                      open_name_, "' is still open"));
  }
  std::string footer(kFooterMagic, sizeof(kFooterMagic));
  Put<uint64_t>(&footer, num_arrays_);
  Put<uint64_t>(&footer, offset_);
  Put<uint32_t>(&footer, crc32c::Value(footer.data(), footer.size()));
  Put<uint32_t>(&footer, 0);
  TANDEM_RETURN_IF_ERROR(Write(footer.data(), footer.size()));
  TANDEM_RETURN_IF_ERROR(Flush());
  if (::fsync(fd_) != 0) return Fail(ErrnoToStatus(errno, absl::StrCat("fsync ", temp_path_)));
  if (::close(fd_) != 0) {
    fd_ = -1;
    return Fail(ErrnoToStatus(errno, absl::StrCat("close ", temp_path_)));
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return Fail(ErrnoToStatus(errno, absl::StrCat("rename ", temp_path_, " to ", path_)));
  }
  committed_ = true;
  // Make the rename itself durable.
  return SyncDirectory(DirName(path_));
}

absl::Status SyncDirectory(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoToStatus(errno, absl::StrCat("open directory ", dir));
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) return ErrnoToStatus(err, absl::StrCat("fsync directory ", dir));
  return absl::OkStatus();
}

// ---- Reader ------------------------------------------------------------------------------------

CheckpointFile::CheckpointFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

CheckpointFile::~CheckpointFile() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status CheckpointFile::Loss(const std::string& what) const {
  return absl::DataLossError(absl::StrCat("checkpoint ", path_, ": ", what));
}

absl::Status CheckpointFile::ReadAt(uint64_t offset, void* dst, size_t n) const {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t r = ::pread(fd_, p, std::min(n, size_t{1} << 30), static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("read checkpoint ", path_));
    }
    if (r == 0) return Loss("file shrank while being read");
    p += r;
    offset += static_cast<uint64_t>(r);
    n -= static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CheckpointFile>> CheckpointFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open checkpoint ", path));
  std::unique_ptr<CheckpointFile> f(new CheckpointFile(path, fd));
  TANDEM_RETURN_IF_ERROR(f->ReadStructure());
  return f;
}

absl::Status CheckpointFile::ReadStructure() {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path_));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  uint8_t header[kHeaderSize];
  if (size < kHeaderSize) {
    return Loss(absl::StrCat("truncated: ", size, " bytes, shorter than the header"));
  }
  TANDEM_RETURN_IF_ERROR(ReadAt(0, header, kHeaderSize));
  if (std::memcmp(header, kHeaderMagic, sizeof(kHeaderMagic)) != 0) {
    return Loss("not a Tandem checkpoint (bad magic number)");
  }
  if (Get<uint32_t>(header + 12) != crc32c::Value(header, 12)) {
    return Loss("header checksum mismatch");
  }
  const uint32_t version = Get<uint32_t>(header + 8);
  if (version != kCheckpointVersion) {
    return Loss(absl::StrCat("unsupported format version ", version, " (this build reads ",
                             kCheckpointVersion, ")"));
  }
  if (size < kHeaderSize + kFooterSize) return Loss("truncated: no footer");
  uint8_t footer[kFooterSize];
  const uint64_t body_end = size - kFooterSize;
  TANDEM_RETURN_IF_ERROR(ReadAt(body_end, footer, kFooterSize));
  if (std::memcmp(footer, kFooterMagic, sizeof(kFooterMagic)) != 0 ||
      Get<uint32_t>(footer + 24) != crc32c::Value(footer, 24) ||
      Get<uint32_t>(footer + 28) != 0) {
    return Loss("truncated or incomplete: no valid footer at the end of the file");
  }
  const uint64_t num_arrays = Get<uint64_t>(footer + 8);
  if (Get<uint64_t>(footer + 16) != body_end) {
    return Loss(absl::StrCat("length mismatch: the footer says the data ends at byte ",
                             Get<uint64_t>(footer + 16), ", the file has ", body_end));
  }
  uint64_t pos = kHeaderSize;
  auto take = [&](void* dst, uint64_t n, const std::string& what) -> absl::Status {
    if (n > body_end - pos) return Loss(absl::StrCat("truncated in ", what));
    TANDEM_RETURN_IF_ERROR(ReadAt(pos, dst, static_cast<size_t>(n)));
    pos += n;
    return absl::OkStatus();
  };

  // Metadata.
  uint8_t len_bytes[8];
  TANDEM_RETURN_IF_ERROR(take(len_bytes, 8, "metadata length"));
  const uint64_t meta_len = Get<uint64_t>(len_bytes);
  if (meta_len > body_end - pos) return Loss("metadata length runs past the end of the file");
  std::string text(meta_len, '\0');
  TANDEM_RETURN_IF_ERROR(take(text.data(), meta_len, "metadata"));
  uint32_t crc_stored;
  TANDEM_RETURN_IF_ERROR(take(&crc_stored, 4, "metadata checksum"));
  if (crc32c::Extend(crc32c::Value(len_bytes, 8), text.data(), text.size()) != crc_stored) {
    return Loss("metadata checksum mismatch");
  }
  metadata_ = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (metadata_.is_discarded()) return Loss("metadata is not valid JSON");

  // Array descriptors; the data is skipped here and checked when read.
  for (uint64_t index = 0; index < num_arrays; ++index) {
    const std::string which = absl::StrCat("array #", index);
    uint8_t fixed[12];
    TANDEM_RETURN_IF_ERROR(take(fixed, sizeof(fixed), which));
    if (Get<uint32_t>(fixed) != kArrayMarker) {
      return Loss(absl::StrCat(which, ": bad record marker at byte ", pos - sizeof(fixed)));
    }
    const uint32_t name_len = Get<uint32_t>(fixed + 4);
    const uint8_t dtype = fixed[8];
    const uint8_t ndims = fixed[9];
    if (name_len == 0 || name_len > kMaxNameLength || ndims > kMaxDims || !ValidDType(dtype)) {
      return Loss(absl::StrCat(which, ": corrupt descriptor"));
    }
    std::string desc(reinterpret_cast<const char*>(fixed), sizeof(fixed));
    desc.resize(sizeof(fixed) + 8 * ndims + name_len);
    TANDEM_RETURN_IF_ERROR(take(desc.data() + sizeof(fixed), 8 * ndims + name_len, which));
    TANDEM_RETURN_IF_ERROR(take(&crc_stored, 4, which));
    if (crc32c::Value(desc.data(), desc.size()) != crc_stored) {
      return Loss(absl::StrCat(which, ": descriptor checksum mismatch"));
    }
    ArrayInfo info;
    info.name = desc.substr(sizeof(fixed) + 8 * ndims);
    info.dtype = static_cast<DType>(dtype);
    uint64_t elements = 1;
    const uint64_t remaining = body_end - pos;
    for (int d = 0; d < ndims; ++d) {
      const uint64_t dim = Get<uint64_t>(reinterpret_cast<const uint8_t*>(desc.data()) +
                                         sizeof(fixed) + 8 * d);
      if (dim > remaining || (dim > 0 && elements > remaining / dim)) {
        return Loss(absl::StrCat("array '", info.name, "': shape runs past the end of the file"));
      }
      elements *= dim;
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    info.num_elements = static_cast<int64_t>(elements);
    const uint64_t bytes = elements * DTypeSize(info.dtype);
    if (bytes + 4 > remaining) {
      return Loss(absl::StrCat("truncated in array '", info.name, "' (needs ", bytes,
                               " bytes of data, ", remaining, " left)"));
    }
    info.offset_ = pos;
    pos += bytes + 4;
    arrays_.push_back(std::move(info));
  }
  if (pos != body_end) {
    return Loss(absl::StrCat(body_end - pos, " unexpected bytes after the last of ", num_arrays,
                             " arrays"));
  }
  return absl::OkStatus();
}

absl::Status CheckpointFile::ReadChunks(
    const ArrayInfo& info, size_t chunk_bytes,
    const std::function<absl::Status(const void* data, size_t bytes)>& fn) const {
  const size_t elem = DTypeSize(info.dtype);
  chunk_bytes = std::max(elem, chunk_bytes / elem * elem);
  const uint64_t bytes = static_cast<uint64_t>(info.num_elements) * elem;
  const uint64_t buffer_bytes = std::min<uint64_t>(chunk_bytes, std::max<uint64_t>(bytes, 1));
  std::unique_ptr<uint8_t[]> buffer(new uint8_t[buffer_bytes]);
  uint32_t crc = 0;
  for (uint64_t done = 0; done < bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes - done, chunk_bytes));
    TANDEM_RETURN_IF_ERROR(ReadAt(info.offset_ + done, buffer.get(), n));
    crc = crc32c::Extend(crc, buffer.get(), n);
    TANDEM_RETURN_IF_ERROR(fn(buffer.get(), n));
    done += n;
  }
  uint32_t crc_stored;
  TANDEM_RETURN_IF_ERROR(ReadAt(info.offset_ + bytes, &crc_stored, 4));
  if (crc != crc_stored) {
    return Loss(absl::StrFormat(
        "array '%s': data checksum mismatch (stored 0x%08x, computed 0x%08x)", info.name,
        crc_stored, crc));
  }
  return absl::OkStatus();
}

absl::Status CheckpointFile::NotFound(std::string_view name) const {
  return absl::NotFoundError(
      absl::StrCat("checkpoint ", path_, ": no array '", std::string(name), "'"));
}

absl::Status CheckpointFile::WrongType(const ArrayInfo& info, DType want) const {
  return absl::InvalidArgumentError(absl::StrCat("checkpoint ", path_, ": array '", info.name,
                                                 "' is ", DTypeName(info.dtype), ", not ",
                                                 DTypeName(want)));
}

const CheckpointFile::ArrayInfo* CheckpointFile::Find(std::string_view name) const {
  for (const ArrayInfo& a : arrays_) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

absl::Status CheckpointFile::ReadInto(const ArrayInfo& info, void* dst, size_t dst_bytes) const {
  const uint64_t bytes = static_cast<uint64_t>(info.num_elements) * DTypeSize(info.dtype);
  if (dst_bytes != bytes) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint ", path_, ": array '", info.name,
                                                   "' has ", bytes, " bytes, destination has ",
                                                   dst_bytes));
  }
  auto* p = static_cast<uint8_t*>(dst);
  uint32_t crc = 0;
  for (uint64_t done = 0; done < bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bytes - done, kChunk));
    TANDEM_RETURN_IF_ERROR(ReadAt(info.offset_ + done, p + done, n));
    crc = crc32c::Extend(crc, p + done, n);
    done += n;
  }
  uint32_t crc_stored;
  TANDEM_RETURN_IF_ERROR(ReadAt(info.offset_ + bytes, &crc_stored, 4));
  if (crc != crc_stored) {
    return Loss(absl::StrFormat(
        "array '%s': data checksum mismatch (stored 0x%08x, computed 0x%08x)", info.name,
        crc_stored, crc));
  }
  return absl::OkStatus();
}

void CheckpointArray::CheckType(DType want) const {
  TANDEM_CHECK(dtype == want) << "checkpoint array '" << name << "' is " << DTypeName(dtype)
                              << ", read as " << DTypeName(want);
}

const CheckpointArray* Checkpoint::Find(std::string_view name) const {
  for (const CheckpointArray& a : arrays) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointFile> file, CheckpointFile::Open(path));
  Checkpoint ckpt;
  ckpt.metadata = file->metadata();
  for (const CheckpointFile::ArrayInfo& info : file->arrays()) {
    CheckpointArray a;
    a.name = info.name;
    a.dtype = info.dtype;
    a.shape = info.shape;
    a.num_elements = info.num_elements;
    a.bytes_ = std::shared_ptr<uint8_t[]>(new uint8_t[std::max<size_t>(a.byte_size(), 1)]);
    TANDEM_RETURN_IF_ERROR(file->ReadInto(info, a.bytes_.get(), a.byte_size()));
    ckpt.arrays.push_back(std::move(a));
  }
  return ckpt;
}

absl::Status WriteCheckpoint(const std::string& path, const nlohmann::json& metadata,
                             std::span<const NamedFloats> arrays) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointWriter> w,
                          CheckpointWriter::Open(path, metadata));
  for (const NamedFloats& a : arrays) {
    TANDEM_RETURN_IF_ERROR(w->Add<float>(a.name, a.shape, a.data));
  }
  return w->Commit();
}

// ---- Numbered checkpoints ----------------------------------------------------------------------

std::string NumberedCheckpointPath(const std::string& dir, const std::string& prefix,
                                   int64_t step) {
  return absl::StrFormat("%s/%s-%012d.ckpt", dir, prefix, step);
}

absl::StatusOr<std::vector<NumberedCheckpoint>> ListNumberedCheckpoints(const std::string& dir,
                                                                        const std::string& prefix) {
  std::vector<NumberedCheckpoint> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return ErrnoToStatus(errno, absl::StrCat("list ", dir));
  }
  const std::string head = prefix + "-";
  while (struct dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    // Exactly <prefix>-<12 digits>.ckpt: temporary files (".ckpt.tmp-...") are not checkpoints.
    if (name.size() != head.size() + 12 + 5 || name.compare(0, head.size(), head) != 0 ||
        name.compare(name.size() - 5, 5, ".ckpt") != 0) {
      continue;
    }
    const std::string digits = name.substr(head.size(), 12);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    out.push_back({std::stoll(digits), dir + "/" + name});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(),
            [](const NumberedCheckpoint& a, const NumberedCheckpoint& b) { return a.step < b.step; });
  return out;
}

absl::Status PruneNumberedCheckpoints(const std::string& dir, const std::string& prefix,
                                      int keep) {
  TANDEM_CHECK_GE(keep, 1);
  TANDEM_ASSIGN_OR_RETURN(std::vector<NumberedCheckpoint> all,
                          ListNumberedCheckpoints(dir, prefix));
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
    if (::unlink(all[i].path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoToStatus(errno, absl::StrCat("remove old checkpoint ", all[i].path));
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem
