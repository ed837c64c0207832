#include "trainer/engine/checkpointer.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"

namespace tandem::trainer {
namespace {

constexpr char kMagic[8] = {'T', 'D', 'M', 'C', 'K', 'P', 'T', '1'};

std::vector<std::pair<float*, int64_t>> StateTensors(Network& net, Optimizer& optimizer) {
  std::vector<std::pair<float*, int64_t>> out;
  out.emplace_back(net.parameter_arena(), net.parameter_arena_size());
  for (Tensor* t : optimizer.State()) out.emplace_back(t->data(), t->size());
  return out;
}

template <typename T>
void Put(std::string* s, const T& v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

std::vector<std::pair<int64_t, std::string>> ListCheckpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("ckpt-", 0) != 0 || name.size() < 10 || name.substr(name.size() - 4) != ".tdm")
      continue;
    try {
      files.emplace_back(std::stoll(name.substr(5, name.size() - 9)), e.path().string());
    } catch (...) {
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

absl::Status Checkpointer::Save(int64_t step, Network& net, Optimizer& optimizer) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return absl::InternalError(absl::StrCat("checkpoint dir ", dir_, ": ", ec.message()));
  std::string buf(kMagic, sizeof(kMagic));
  Put(&buf, static_cast<uint64_t>(step));
  Put(&buf, static_cast<uint64_t>(optimizer.updates()));
  auto tensors = StateTensors(net, optimizer);
  Put(&buf, static_cast<uint32_t>(tensors.size()));
  for (auto [p, n] : tensors) {
    Put(&buf, static_cast<uint64_t>(n));
    buf.append(reinterpret_cast<const char*>(p), n * sizeof(float));
  }
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(buf.size())));
  Put(&buf, crc);
  const std::string path = absl::StrCat(dir_, "/ckpt-", step, ".tdm");
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  size_t off = 0;
  while (off < buf.size()) {
    const ssize_t w = ::write(fd, buf.data() + off, buf.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, absl::StrCat("write ", tmp));
    }
    off += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, absl::StrCat("fsync ", tmp));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return ErrnoToStatus(errno, absl::StrCat("rename ", tmp));
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  last_path_ = path;
  auto files = ListCheckpoints(dir_);
  for (size_t i = 0; i + keep_ < files.size(); ++i) std::filesystem::remove(files[i].second, ec);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<int64_t>> Checkpointer::LoadLatest(Network& net,
                                                               Optimizer& optimizer,
                                                               int64_t max_step) {
  auto files = ListCheckpoints(dir_);
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    if (it->first > max_step) continue;
    const std::string& path = it->second;
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string buf = ss.str();
    auto refuse = [&](const std::string& why) {
      TANDEM_LOG(warn, "refusing checkpoint {}: {}", path, why);
    };
    if (buf.size() < sizeof(kMagic) + 8 + 8 + 4 + 4 || std::memcmp(buf.data(), kMagic, 8) != 0) {
      refuse("not a checkpoint or truncated");
      continue;
    }
    uint32_t stored;
    std::memcpy(&stored, buf.data() + buf.size() - 4, 4);
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(buf.size() - 4)));
    if (crc != stored) {
      refuse("checksum mismatch (corrupt or truncated)");
      continue;
    }
    size_t off = 8;
    uint64_t step, updates;
    uint32_t count;
    std::memcpy(&step, buf.data() + off, 8);
    std::memcpy(&updates, buf.data() + off + 8, 8);
    std::memcpy(&count, buf.data() + off + 16, 4);
    off += 20;
    auto tensors = StateTensors(net, optimizer);
    if (count != tensors.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", path, " holds ", count, " tensors, the model and optimizer ",
                       tensors.size(), " (different model or optimizer?)"));
    }
    for (auto [p, n] : tensors) {
      uint64_t size;
      if (off + 8 > buf.size() - 4) return absl::DataLossError(absl::StrCat(path, ": truncated"));
      std::memcpy(&size, buf.data() + off, 8);
      off += 8;
      if (size != static_cast<uint64_t>(n))
        return absl::FailedPreconditionError(absl::StrCat(
            "checkpoint ", path, ": a tensor has ", size, " values, the model expects ", n));
      if (off + size * sizeof(float) > buf.size() - 4)
        return absl::DataLossError(absl::StrCat(path, ": truncated"));
      std::memcpy(p, buf.data() + off, size * sizeof(float));
      off += size * sizeof(float);
    }
    optimizer.set_updates(static_cast<int64_t>(updates));
    last_path_ = path;
    return std::optional<int64_t>(static_cast<int64_t>(step));
  }
  return std::optional<int64_t>();
}

}  // namespace tandem::trainer
