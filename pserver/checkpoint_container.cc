// STAND-IN until common/checkpoint.{h,cc} (branch trainer-data) lands: a length-prefixed file
// without a checksum. Once the shared container exists these two functions forward to it.
#include "pserver/checkpoint_container.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::pserver {
namespace {

constexpr char kMagic[8] = {'T', 'P', 'S', 'C', 'K', 'P', 'T', '0'};

void PutU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }

bool GetU64(const std::string& in, size_t* pos, uint64_t* v) {
  if (in.size() - *pos < 8) return false;
  std::memcpy(v, in.data() + *pos, 8);
  *pos += 8;
  return true;
}

}  // namespace

absl::Status WriteCheckpointContainer(const std::string& path, const CheckpointContainer& c) {
  std::string data(kMagic, sizeof(kMagic));
  const std::string meta = c.metadata.dump();
  PutU64(&data, meta.size());
  data += meta;
  PutU64(&data, c.arrays.size());
  for (const auto& [name, values] : c.arrays) {
    PutU64(&data, name.size());
    data += name;
    PutU64(&data, values.size());
    data.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  }
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", tmp));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = ErrnoToStatus(errno, absl::StrCat("write ", tmp));
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = ErrnoToStatus(errno, absl::StrCat("fsync ", tmp));
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return ErrnoToStatus(errno, absl::StrCat("rename ", tmp, " to ", path));
  return absl::OkStatus();
}

absl::StatusOr<CheckpointContainer> ReadCheckpointContainer(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt checkpoint (", what, ")"));
  };
  if (data.size() < sizeof(kMagic) || std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0)
    return corrupt("bad magic");
  size_t pos = sizeof(kMagic);
  uint64_t meta_len = 0, count = 0;
  if (!GetU64(data, &pos, &meta_len) || data.size() - pos < meta_len) return corrupt("metadata");
  CheckpointContainer c;
  c.metadata = nlohmann::json::parse(data.substr(pos, meta_len), nullptr, false);
  if (c.metadata.is_discarded()) return corrupt("metadata is not JSON");
  pos += meta_len;
  if (!GetU64(data, &pos, &count)) return corrupt("array count");
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t name_len = 0, n = 0;
    if (!GetU64(data, &pos, &name_len) || data.size() - pos < name_len) return corrupt("name");
    std::string name = data.substr(pos, name_len);
    pos += name_len;
    if (!GetU64(data, &pos, &n) || (data.size() - pos) / sizeof(float) < n)
      return corrupt("array length");
    std::vector<float> values(n);
    if (n) std::memcpy(values.data(), data.data() + pos, n * sizeof(float));
    pos += n * sizeof(float);
    c.arrays.emplace_back(std::move(name), std::move(values));
  }
  if (pos != data.size()) return corrupt("trailing bytes");
  return c;
}

}  // namespace tandem::pserver
