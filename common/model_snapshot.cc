#include "common/model_snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/checkpoint.h"
#include "common/crc32c.h"
#include "common/status.h"

namespace tandem::snapshot {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kVersionDigits = 12;
constexpr char kStagingPrefix[] = ".tmp-v";
// A version being removed is first renamed to this prefix (atomic: readers never see a version
// directory with part of its files deleted).
constexpr char kDeletingPrefix[] = ".del-v";

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Size and CRC-32C of a file, read in 1 MiB pieces.
absl::Status Checksum(const std::string& path, uint64_t* bytes, uint32_t* crc) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", path));
  std::vector<char> buf(1 << 20);
  *bytes = 0;
  *crc = 0;
  while (true) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    *crc = crc32c::Extend(*crc, buf.data(), static_cast<size_t>(n));
    *bytes += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::Status WriteSynced(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", path));
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, absl::StrCat("write ", path));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, absl::StrCat("fsync ", path));
  }
  if (::close(fd) != 0) return ErrnoToStatus(errno, absl::StrCat("close ", path));
  return absl::OkStatus();
}

}  // namespace

std::string VersionDirName(int64_t version) { return absl::StrFormat("v%012d", version); }

std::optional<int64_t> ParseVersionDirName(std::string_view name) {
  if (name.size() != 1 + kVersionDigits || name[0] != 'v' || !AllDigits(name.substr(1)))
    return std::nullopt;
  return std::stoll(std::string(name.substr(1)));
}

std::string VersionPath(const std::string& root, int64_t version) {
  return absl::StrCat(root, "/", VersionDirName(version));
}

bool IsStagingName(std::string_view name) {
  if (name.substr(0, sizeof(kStagingPrefix) - 1) != kStagingPrefix) return false;
  std::string_view rest = name.substr(sizeof(kStagingPrefix) - 1);
  if (rest.size() < kVersionDigits + 2 || !AllDigits(rest.substr(0, kVersionDigits)) ||
      rest[kVersionDigits] != '-')
    return false;
  std::string_view suffix = rest.substr(kVersionDigits + 1);
  return suffix.size() <= 32 && std::all_of(suffix.begin(), suffix.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string ShardFileName(uint32_t shard) { return absl::StrFormat("shard-%05d.ckpt", shard); }

absl::StatusOr<std::vector<int64_t>> ListVersions(const std::string& root) {
  std::vector<int64_t> out;
  std::error_code ec;
  fs::directory_iterator it(root, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return out;
    return absl::UnavailableError(absl::StrCat("listing ", root, ": ", ec.message()));
  }
  for (const fs::directory_entry& e : it) {
    if (auto v = ParseVersionDirName(e.path().filename().string()); v.has_value()) out.push_back(*v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<Staged> Begin(const std::string& root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return absl::InternalError(absl::StrCat("publish directory ", root, ": ", ec.message()));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> versions, ListVersions(root));
  Staged s;
  s.root = root;
  s.version = versions.empty() ? 1 : versions.back() + 1;
  std::random_device rd;
  s.name = absl::StrFormat("%s%012d-%08x", kStagingPrefix, s.version, rd());
  s.path = absl::StrCat(root, "/", s.name);
  if (!fs::create_directory(s.path, ec) || ec)
    return absl::InternalError(absl::StrCat("creating ", s.path, ": ",
                                            ec ? ec.message() : "already exists"));
  return s;
}

absl::StatusOr<json> Commit(const Staged& staged, json manifest) {
  json files = json::array();
  std::error_code ec;
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(staged.path, ec)) {
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  }
  if (ec) return absl::InternalError(absl::StrCat("listing ", staged.path, ": ", ec.message()));
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (name == kManifestName) continue;
    uint64_t bytes = 0;
    uint32_t crc = 0;
    TANDEM_RETURN_IF_ERROR(Checksum(absl::StrCat(staged.path, "/", name), &bytes, &crc));
    files.push_back({{"name", name}, {"bytes", bytes}, {"crc32c", crc}});
  }
  manifest["format"] = kManifestFormat;
  manifest["version"] = staged.version;
  manifest["files"] = std::move(files);
  TANDEM_RETURN_IF_ERROR(
      WriteSynced(absl::StrCat(staged.path, "/", kManifestName), manifest.dump(1)));
  TANDEM_RETURN_IF_ERROR(SyncDirectory(staged.path));
  const std::string final_path = VersionPath(staged.root, staged.version);
  if (::rename(staged.path.c_str(), final_path.c_str()) != 0)
    return ErrnoToStatus(errno, absl::StrCat("rename ", staged.path, " to ", final_path));
  TANDEM_RETURN_IF_ERROR(SyncDirectory(staged.root));
  return manifest;
}

void Abandon(const Staged& staged) {
  std::error_code ec;
  fs::remove_all(staged.path, ec);
}

absl::Status Prune(const std::string& root, int keep) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> versions, ListVersions(root));
  std::error_code ec;
  for (size_t i = 0; i + static_cast<size_t>(std::max(keep, 1)) < versions.size(); ++i) {
    const std::string from = VersionPath(root, versions[i]);
    const std::string to = absl::StrCat(root, "/", kDeletingPrefix, from.substr(from.size() - kVersionDigits));
    if (::rename(from.c_str(), to.c_str()) != 0)
      return ErrnoToStatus(errno, absl::StrCat("rename ", from, " to ", to));
  }
  std::vector<fs::path> leftovers;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (IsStagingName(name) || name.rfind(kDeletingPrefix, 0) == 0) leftovers.push_back(e.path());
  }
  for (const fs::path& p : leftovers) {
    fs::remove_all(p, ec);
    if (ec) return absl::InternalError(absl::StrCat("removing ", p.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<json> Verify(const std::string& dir) {
  const std::string manifest_path = absl::StrCat(dir, "/", kManifestName);
  std::error_code ec;
  if (!fs::exists(manifest_path, ec))
    return absl::NotFoundError(absl::StrCat(manifest_path, ": no such file"));
  uint64_t size = 0;
  uint32_t unused = 0;
  TANDEM_RETURN_IF_ERROR(Checksum(manifest_path, &size, &unused));
  if (size > (64u << 20)) return absl::DataLossError(absl::StrCat(manifest_path, ": too large"));
  std::string text(size, '\0');
  {
    const int fd = ::open(manifest_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("open ", manifest_path));
    const ssize_t n = ::pread(fd, text.data(), text.size(), 0);
    ::close(fd);
    if (n != static_cast<ssize_t>(size)) return absl::DataLossError(absl::StrCat(manifest_path, ": short read"));
  }
  json m = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!m.is_object() || m.value("format", "") != kManifestFormat || !m.contains("files") ||
      !m["files"].is_array() || !m.value("version", json()).is_number_integer())
    return absl::DataLossError(absl::StrCat(manifest_path, ": not a ", kManifestFormat, " manifest"));
  std::set<std::string> listed;
  for (const json& f : m["files"]) {
    if (!f.is_object() || !f.value("name", json()).is_string() ||
        !f.value("bytes", json()).is_number_unsigned() || !f.value("crc32c", json()).is_number_unsigned())
      return absl::DataLossError(absl::StrCat(manifest_path, ": malformed files entry"));
    const std::string name = f["name"].get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      return absl::DataLossError(absl::StrCat(manifest_path, ": bad file name \"", name, "\""));
    listed.insert(name);
    uint64_t bytes = 0;
    uint32_t crc = 0;
    const std::string path = absl::StrCat(dir, "/", name);
    absl::Status st = Checksum(path, &bytes, &crc);
    if (!st.ok()) return absl::DataLossError(absl::StrCat(path, ": listed in the manifest, ", st.message()));
    if (bytes != f["bytes"].get<uint64_t>())
      return absl::DataLossError(absl::StrCat(path, ": ", bytes, " bytes, the manifest says ",
                                              f["bytes"].get<uint64_t>()));
    if (crc != f["crc32c"].get<uint32_t>())
      return absl::DataLossError(absl::StrCat(path, ": CRC-32C mismatch"));
  }
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name != kManifestName && !listed.count(name))
      return absl::DataLossError(absl::StrCat(dir, "/", name, ": not listed in the manifest"));
  }
  return m;
}

}  // namespace tandem::snapshot
