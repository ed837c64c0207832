#include "trainer/data/stream_reader.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/logging.h"
#include "common/status.h"
#include "trainer/data/libsvm_dataset.h"

namespace tandem::trainer::data {
namespace {

constexpr size_t kReadChunk = 1 << 20;

double SystemNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsRecordLine(std::string_view line) {
  for (char c : line) {
    if (c == ' ' || c == '\t' || c == '\r') continue;
    return c != '#';
  }
  return false;  // blank
}

absl::Status Errno(const std::string& what, const std::string& path) {
  const int e = errno;
  const std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(e));
  return e == ENOENT ? absl::NotFoundError(msg) : absl::UnavailableError(msg);
}

}  // namespace

uint64_t FileOwnerHash(const std::string& name) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

nlohmann::json StreamPosition::ToJson() const {
  return {{"file", file},       {"offset", offset}, {"ordinal", ordinal}, {"closed", closed},
          {"records", records}, {"bytes", bytes},   {"files", files}};
}

absl::StatusOr<StreamPosition> StreamPosition::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("stream position: not an object");
  StreamPosition p;
  auto get_int = [&](const char* key, int64_t* out) -> absl::Status {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 0)
      return absl::InvalidArgumentError(
          absl::StrCat("stream position: '", key, "' must be an integer >= 0"));
    *out = j[key].get<int64_t>();
    return absl::OkStatus();
  };
  if (!j.contains("file") || !j["file"].is_string())
    return absl::InvalidArgumentError("stream position: 'file' must be a string");
  p.file = j["file"].get<std::string>();
  if (!j.contains("closed") || !j["closed"].is_boolean())
    return absl::InvalidArgumentError("stream position: 'closed' must be true or false");
  p.closed = j["closed"].get<bool>();
  for (auto [key, out] : {std::pair{"offset", &p.offset}, std::pair{"ordinal", &p.ordinal},
                          std::pair{"records", &p.records}, std::pair{"bytes", &p.bytes},
                          std::pair{"files", &p.files}}) {
    if (absl::Status s = get_int(key, out); !s.ok()) return s;
  }
  return p;
}

StreamReader::StreamReader(StreamReaderOptions options) : options_(std::move(options)) {
  TANDEM_CHECK(options_.world_size >= 1 && options_.rank >= 0 &&
               options_.rank < options_.world_size)
      << options_.rank << " of " << options_.world_size;
  TANDEM_CHECK(options_.num_fields >= 1 && options_.num_fields <= 65535) << options_.num_fields;
  if (!options_.now) options_.now = SystemNow;
  layout_.has_targets = true;
  layout_.num_fields = options_.num_fields;
}

StreamReader::~StreamReader() { CloseFile(); }

void StreamReader::Restore(const StreamPosition& position) {
  CloseFile();
  pos_ = position;
  finished_ = false;
  heads_.clear();
  last_passed_.reset();
  lag_measured_ = false;
}

std::string StreamReader::PathOf(const std::string& name) const {
  return (std::filesystem::path(options_.config.dir) / name).string();
}

bool StreamReader::Owns(const std::string& name) const {
  return options_.config.split == StreamSplit::kRecord ||
         FileOwnerHash(name) % static_cast<uint64_t>(options_.world_size) ==
             static_cast<uint64_t>(options_.rank);
}

absl::StatusOr<StreamReader::Listing> StreamReader::List() const {
  Listing out;
  std::error_code ec;
  std::filesystem::directory_iterator it(options_.config.dir, ec);
  if (ec)
    return absl::UnavailableError(
        absl::StrCat("stream directory ", options_.config.dir, ": ", ec.message()));
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (!options_.config.end_marker.empty() && name == options_.config.end_marker) {
      out.end_marker = true;
      continue;
    }
    if (::fnmatch(options_.config.pattern.c_str(), name.c_str(), FNM_PERIOD) != 0) continue;
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec)) continue;
    out.names.push_back(name);
  }
  std::sort(out.names.begin(), out.names.end());
  return out;
}

void StreamReader::CloseFile() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buf_.clear();
  buf_pos_ = 0;
}

absl::Status StreamReader::OpenCurrent() {
  const std::string path = PathOf(pos_.file);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("stream file", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    absl::Status s = Errno("stream file", path);
    ::close(fd);
    return s;
  }
  if (st.st_size < pos_.offset) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "stream file ", path, " is ", st.st_size, " bytes, shorter than the read position ",
        pos_.offset, " (stream files must only be appended to)"));
  }
  fd_ = fd;
  buf_.clear();
  buf_pos_ = 0;
  read_offset_ = pos_.offset;
  last_size_ = st.st_size;
  last_growth_ = options_.now();
  return absl::OkStatus();
}

absl::StatusOr<bool> StreamReader::OpenNext() {
  TANDEM_ASSIGN_OR_RETURN(Listing listing, List());
  // The saved file, not yet read to its end (a restart, or the first call after Restore).
  if (!pos_.file.empty() && !pos_.closed) {
    absl::Status opened = OpenCurrent();
    if (opened.ok()) return true;
    if (!absl::IsNotFound(opened)) return opened;
    ++files_lost_;
    TANDEM_LOG(warn, "stream: {} disappeared at byte {} before it was read to its end; its "
                     "remaining records are skipped",
               PathOf(pos_.file), pos_.offset);
    pos_.closed = true;
  }
  for (const std::string& name : listing.names) {
    if (!pos_.file.empty() && name <= pos_.file) continue;
    if (!Owns(name)) continue;
    pos_ = {.file = name, .offset = 0, .ordinal = 0, .closed = false, .records = pos_.records,
            .bytes = pos_.bytes, .files = pos_.files};
    absl::Status opened = OpenCurrent();
    if (opened.ok()) return true;
    if (!absl::IsNotFound(opened)) return opened;
    ++files_lost_;  // listed, then gone before it was opened
    TANDEM_LOG(warn, "stream: {} disappeared before it was read; skipped", PathOf(name));
    pos_.closed = true;
  }
  if (listing.end_marker) finished_ = true;
  return false;
}

absl::StatusOr<bool> StreamReader::IsClosed(int64_t size) {
  const double now = options_.now();
  if (size != last_size_) {
    last_size_ = size;
    last_growth_ = now;
  }
  TANDEM_ASSIGN_OR_RETURN(Listing listing, List());
  if (listing.end_marker) return true;
  if (!listing.names.empty() && listing.names.back() > pos_.file) return true;
  return options_.config.close_idle_seconds > 0 &&
         now - last_growth_ >= options_.config.close_idle_seconds;
}

absl::Status StreamReader::AppendRecords(const std::string& text,
                                         const std::vector<int64_t>& ordinals,
                                         int64_t first_offset, Batch* batch,
                                         std::vector<StreamRecordRef>* refs, int* added) {
  if (ordinals.empty()) return absl::OkStatus();
  const std::string path = PathOf(pos_.file);
  auto ds = LibsvmDataset::Parse(text, path, options_.num_fields, /*skip_malformed=*/false);
  if (ds.ok()) {
    for (int64_t i = 0; i < (*ds)->size(); ++i) {
      (*ds)->Append(i, batch);
      if (refs != nullptr) refs->push_back({pos_.file, ordinals[static_cast<size_t>(i)]});
      ++*added;
    }
    return absl::OkStatus();
  }
  // Some record is malformed: one by one, to name it (or skip exactly it).
  size_t start = 0;
  for (size_t k = 0; k < ordinals.size(); ++k) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    auto one = LibsvmDataset::Parse(line, path, options_.num_fields, false);
    if (!one.ok()) {
      if (options_.skip_malformed) {
        ++malformed_skipped_;
        continue;
      }
      std::string what(one.status().message());
      const std::string prefix = absl::StrCat(path, ":1: ");
      if (what.rfind(prefix, 0) == 0) what = what.substr(prefix.size());
      return absl::InvalidArgumentError(absl::StrCat(path, ": record ", ordinals[k] + 1,
                                                     " (after byte ", first_offset, "): ", what));
    }
    (*one)->Append(0, batch);
    if (refs != nullptr) refs->push_back({pos_.file, ordinals[k]});
    ++*added;
  }
  return absl::OkStatus();
}

absl::Status StreamReader::TakeLines(Batch* batch, std::vector<StreamRecordRef>* refs,
                                     bool final_tail, int* added) {
  const int want = batch->capacity - batch->size;
  std::string text;
  std::vector<int64_t> ordinals;
  size_t used = buf_pos_;  // bytes of buf_ consumed
  int taken = 0;
  const int64_t first_offset = pos_.offset;
  const uint64_t w = static_cast<uint64_t>(options_.world_size);
  const bool by_record = options_.config.split == StreamSplit::kRecord;
  while (taken < want && used < buf_.size()) {
    size_t nl = buf_.find('\n', used);
    size_t next;
    if (nl == std::string::npos) {
      if (!final_tail) break;  // a partial line: wait for the rest
      nl = next = buf_.size();
    } else {
      next = nl + 1;
    }
    std::string_view line(buf_.data() + used, nl - used);
    if (IsRecordLine(line)) {
      const int64_t ordinal = pos_.ordinal++;
      if (!by_record || static_cast<uint64_t>(ordinal) % w == static_cast<uint64_t>(options_.rank)) {
        text.append(line);
        text.push_back('\n');
        ordinals.push_back(ordinal);
        ++taken;
      }
    }
    used = next;
  }
  const int before = *added;
  TANDEM_RETURN_IF_ERROR(AppendRecords(text, ordinals, first_offset, batch, refs, added));
  pos_.offset += static_cast<int64_t>(used - buf_pos_);
  pos_.bytes += static_cast<int64_t>(used - buf_pos_);
  pos_.records += *added - before;
  buf_pos_ = used;
  return absl::OkStatus();
}

absl::StatusOr<int> StreamReader::Read(Batch* batch, std::vector<StreamRecordRef>* refs) {
  int added = 0;
  while (batch->size < batch->capacity) {
    if (fd_ < 0) {
      TANDEM_ASSIGN_OR_RETURN(bool opened, OpenNext());
      if (!opened) break;
    }
    TANDEM_RETURN_IF_ERROR(TakeLines(batch, refs, /*final_tail=*/false, &added));
    if (batch->size >= batch->capacity) break;
    // buf_ holds at most a partial line: drop what was consumed, read on.
    buf_.erase(0, buf_pos_);
    buf_pos_ = 0;
    const size_t had = buf_.size();
    buf_.resize(had + kReadChunk);
    const ssize_t n = ::pread(fd_, buf_.data() + had, kReadChunk, read_offset_);
    buf_.resize(had + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0) return Errno("reading stream file", PathOf(pos_.file));
    if (n > 0) {
      read_offset_ += n;
      continue;
    }
    // At the current end of the file.
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return Errno("stream file", PathOf(pos_.file));
    if (st.st_size < read_offset_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "stream file ", PathOf(pos_.file), " shrank to ", st.st_size, " bytes below the read "
          "position ", read_offset_, " (stream files must only be appended to)"));
    }
    TANDEM_ASSIGN_OR_RETURN(bool closed, IsClosed(st.st_size));
    if (!closed) break;
    // The last bytes may have landed between the size check and the rule's listing (a producer
    // appends, then writes the end marker or its next file): look again before the tail.
    if (::fstat(fd_, &st) != 0) return Errno("stream file", PathOf(pos_.file));
    if (st.st_size > read_offset_) continue;
    TANDEM_RETURN_IF_ERROR(TakeLines(batch, refs, /*final_tail=*/true, &added));
    if (buf_pos_ < buf_.size()) break;  // the batch filled up before the tail
    pos_.closed = true;
    ++pos_.files;
    CloseFile();
  }
  return added;
}

absl::StatusOr<StreamReader::Lag> StreamReader::MeasureLag() {
  TANDEM_ASSIGN_OR_RETURN(Listing listing, List());
  const double now = options_.now();
  Lag lag;
  std::string head_file;
  int64_t head_size = 0;
  for (const std::string& name : listing.names) {
    if (!pos_.file.empty() && name < pos_.file) continue;
    if (name == pos_.file && pos_.closed) continue;
    if (!Owns(name)) continue;
    struct stat st {};
    if (::stat(PathOf(name).c_str(), &st) != 0) continue;  // gone meanwhile
    const int64_t consumed = name == pos_.file ? pos_.offset : 0;
    lag.bytes += std::max<int64_t>(0, st.st_size - consumed);
    head_file = name;
    head_size = st.st_size;
    if (!lag_measured_ && heads_.empty() && st.st_size > consumed) {
      // First look (start or restart): the unread data is at least as old as the file's mtime.
      const double mtime = static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec * 1e-9;
      heads_.push_back({name, consumed + 1, mtime, mtime});
    }
  }
  lag_measured_ = true;
  if (!head_file.empty()) {
    // The newest observation: still the head (seen again now), or a new head.
    HeadSeen* newest = !heads_.empty()            ? &heads_.back()
                       : last_passed_.has_value() ? &*last_passed_
                                                  : nullptr;
    if (newest != nullptr && newest->file == head_file && newest->size == head_size) {
      newest->last = now;
    } else {
      heads_.push_back({head_file, head_size, now, now});
    }
  }
  // Drop what the reader has passed: an observation (f, s) is consumed once the position is past
  // it (a later file, or this file at offset >= s).
  while (!heads_.empty()) {
    const HeadSeen& h = heads_.front();
    const bool passed = pos_.file > h.file || (pos_.file == h.file && (pos_.closed || pos_.offset >= h.size));
    if (!passed) break;
    last_passed_ = heads_.front();
    heads_.pop_front();
  }
  if (lag.bytes > 0 && !heads_.empty()) {
    // The head crossed the read position after the last sighting of the last observation
    // passed and by the first sighting of the next; within one file, interpolate by bytes (the
    // measurements are a second apart).
    const HeadSeen& next = heads_.front();
    double crossed = next.time;
    if (last_passed_.has_value() && last_passed_->file == next.file && next.file == pos_.file &&
        next.size > last_passed_->size) {
      const double f = static_cast<double>(pos_.offset - last_passed_->size) /
                       static_cast<double>(next.size - last_passed_->size);
      crossed = last_passed_->last + std::clamp(f, 0.0, 1.0) * (next.time - last_passed_->last);
    }
    lag.seconds = std::max(0.0, now - crossed);
  }
  return lag;
}

}  // namespace tandem::trainer::data
