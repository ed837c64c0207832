#include "api/manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "api/queue.h"
#include "api/schema.h"
#include "api/sweep.h"
#include "api/training_job.h"
#include "common/yaml_json.h"

namespace tandem::api {
namespace {

std::vector<DocumentProblem> ValidateDocuments(const std::vector<nlohmann::json>& docs,
                                               const SectionValidators& validators) {
  std::vector<DocumentProblem> problems;
  int real_documents = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (docs[i].is_null()) continue;  // an empty document ("---" at the end) is not an error
    ++real_documents;
    for (FieldError& e : ValidateDocument(docs[i], validators))
      problems.push_back({static_cast<int>(i), std::move(e)});
  }
  if (real_documents == 0) problems.push_back({-1, {"", "no documents: the file is empty"}});
  return problems;
}

}  // namespace

FieldErrors ValidateDocument(const nlohmann::json& doc, const SectionValidators& validators) {
  FieldErrors errors;
  if (!doc.is_object()) {
    errors.push_back({"", absl::StrCat("a manifest must be a map with apiVersion and kind, got ", DescribeValue(doc))});
    return errors;
  }
  auto kind = doc.find("kind");
  if (kind == doc.end() || !kind->is_string()) {
    errors.push_back({"kind", "required: TrainingJob, Queue or Sweep"});
    return errors;
  }
  if (*kind == kTrainingJobKind) {
    ParseTrainingJob(doc, validators, &errors);
  } else if (*kind == kQueueKind) {
    ParseQueue(doc, &errors);
  } else if (*kind == kSweepKind) {
    ParseSweep(doc, validators, &errors);
  } else {
    errors.push_back({"kind", absl::StrCat("must be TrainingJob, Queue or Sweep, got ", DescribeValue(*kind))});
  }
  return errors;
}

absl::StatusOr<std::string> ReadManifest(const std::string& path, size_t max_bytes) {
  int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open");
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = ErrnoToStatus(errno, "cannot stat");
    if (fd != STDIN_FILENO) ::close(fd);
    return s;
  }
  // Devices (/dev/zero), directories and FIFOs could block or never end; stdin may be a pipe.
  if (fd != STDIN_FILENO && !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
  }
  if (fd != STDIN_FILENO) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::string text;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = ErrnoToStatus(errno, "cannot read");
      if (fd != STDIN_FILENO) ::close(fd);
      return s;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max_bytes) {
      if (fd != STDIN_FILENO) ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat("larger than the limit of ", max_bytes, " bytes"));
    }
  }
  if (fd != STDIN_FILENO) ::close(fd);
  return text;
}

std::vector<DocumentProblem> ValidateManifestFile(const std::string& path,
                                                  const SectionValidators& validators) {
  auto text = ReadManifest(path, YamlLimits{}.max_bytes);
  if (!text.ok()) return {{-1, {"", std::string(text.status().message())}}};
  return ValidateManifestText(*text, path, validators);
}

std::vector<DocumentProblem> ValidateManifestText(const std::string& text, const std::string& source,
                                                  const SectionValidators& validators) {
  auto docs = YamlToJson(text, source);
  if (!docs.ok()) return {{-1, {"", std::string(docs.status().message())}}};
  return ValidateDocuments(*docs, validators);
}

absl::StatusOr<std::string> ManifestKind(const std::string& path) {
  auto text = ReadManifest(path, YamlLimits{}.max_bytes);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", text.status().message()));
  auto docs = YamlToJson(*text, path);
  if (!docs.ok()) return absl::InvalidArgumentError(docs.status().message());
  for (const nlohmann::json& d : *docs)
    if (d.is_object() && d.contains("kind") && d["kind"].is_string()) return d["kind"].get<std::string>();
  return absl::InvalidArgumentError(absl::StrCat(path, ": no document with a kind"));
}

namespace {

// The one document of `path`, of `kind`, validated as `tandem validate` validates it.
absl::StatusOr<nlohmann::json> LoadOne(const std::string& path, const char* kind,
                                       const SectionValidators& validators) {
  auto text = ReadManifest(path, YamlLimits{}.max_bytes);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", text.status().message()));
  auto docs = YamlToJson(*text, path);
  if (!docs.ok()) return absl::InvalidArgumentError(docs.status().message());
  std::vector<const nlohmann::json*> real;
  for (const nlohmann::json& d : *docs)
    if (!d.is_null()) real.push_back(&d);
  if (real.size() != 1)
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": expected exactly one ", kind, " document, found ", real.size()));
  FieldErrors errors = ValidateDocument(*real[0], validators);
  if (errors.empty() && real[0]->value("kind", "") != kind)
    errors.push_back({"kind", absl::StrCat("must be ", kind)});
  if (!errors.empty()) {
    std::vector<std::string> lines;
    for (const FieldError& e : errors) lines.push_back(absl::StrCat(path, ": ", e.ToString()));
    return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
  }
  return *real[0];
}

}  // namespace

absl::StatusOr<TrainingJob> LoadTrainingJob(const std::string& path,
                                            const SectionValidators& validators) {
  TANDEM_ASSIGN_OR_RETURN(nlohmann::json doc, LoadOne(path, kTrainingJobKind, validators));
  FieldErrors none;
  return ParseTrainingJob(doc, validators, &none);
}

absl::StatusOr<Sweep> LoadSweep(const std::string& path, const SectionValidators& validators) {
  TANDEM_ASSIGN_OR_RETURN(nlohmann::json doc, LoadOne(path, kSweepKind, validators));
  FieldErrors none;
  return ParseSweep(doc, validators, &none);
}

absl::StatusOr<Queue> LoadQueue(const std::string& path, const SectionValidators& validators) {
  TANDEM_ASSIGN_OR_RETURN(nlohmann::json doc, LoadOne(path, kQueueKind, validators));
  return QueueFromJson(doc);
}

}  // namespace tandem::api
