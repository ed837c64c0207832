#include "cli/validate.h"

#include <exception>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/manifest.h"
#include "api/queue.h"
#include "api/training_job.h"
#include "common/yaml_json.h"

namespace tandem::cli {
namespace {

using json = nlohmann::json;

// Control characters and invalid bytes in a message (they come from hostile input) would
// garble a terminal; show them escaped.
std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n' || c == '\t') out += ' ';
    else if (c < 0x20 || c == 0x7f) out += absl::StrCat("\\x", absl::Hex(c, absl::kZeroPad2));
    else out += static_cast<char>(c);
  }
  return out;
}

std::string Describe(const json& doc) {
  std::string kind = doc.value("kind", "");
  const json& meta = doc.contains("metadata") && doc["metadata"].is_object() ? doc["metadata"] : json::object();
  std::string name = meta.contains("name") && meta["name"].is_string() ? meta["name"].get<std::string>() : "";
  std::string ns = meta.contains("namespace") && meta["namespace"].is_string() ? meta["namespace"].get<std::string>() : "";
  if (kind == api::kTrainingJobKind && ns.empty()) ns = "default";
  return absl::StrCat(kind, " ", ns.empty() ? "" : ns + "/", name);
}

// Returns true when every document is valid.
bool ValidateFile(const std::string& path, const api::SectionValidators& validators,
                  std::ostream& out, const std::vector<SpecNote>& notes) {
  auto text = api::ReadManifest(path, YamlLimits{}.max_bytes);
  if (!text.ok()) {
    out << Printable(path) << ": " << Printable(std::string(text.status().message())) << "\n";
    return false;
  }
  auto docs = YamlToJson(*text, path);
  if (!docs.ok()) {
    std::string msg(docs.status().message());
    // The parser's message already starts with "path:line:col:".
    out << (absl::StartsWith(msg, path + ":") ? Printable(msg) : Printable(path) + ": " + Printable(msg)) << "\n";
    return false;
  }
  int real = 0;
  for (const json& d : *docs) real += !d.is_null();
  if (real == 0) {
    out << Printable(path) << ": no documents: the file is empty\n";
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < docs->size(); ++i) {
    const json& doc = (*docs)[i];
    if (doc.is_null()) continue;
    const std::string where = docs->size() > 1 ? absl::StrCat(path, "#", i + 1) : path;
    api::FieldErrors errors = api::ValidateDocument(doc, validators);
    for (const api::FieldError& e : errors) out << Printable(where) << ": " << Printable(e.ToString()) << "\n";
    if (errors.empty()) out << Printable(where) << ": valid: " << Printable(Describe(doc)) << "\n";
    if (errors.empty() && !notes.empty() && doc.value("kind", "") == api::kTrainingJobKind) {
      absl::StatusOr<api::TrainingJob> job = api::TrainingJobFromJson(doc, validators);
      const json spec = job.ok() ? api::SpecToJson(job->spec) : json();
      for (const SpecNote& note : notes)
        if (std::string line = job.ok() ? note(spec) : ""; !line.empty())
          out << Printable(where) << ": " << Printable(line) << "\n";
    }
    ok = ok && errors.empty();
  }
  return ok;
}

}  // namespace

int RunValidate(const std::vector<std::string>& files, const api::SectionValidators& validators,
                std::ostream& out, const std::vector<SpecNote>& notes) {
  bool ok = true;
  for (const std::string& f : files) {
    try {
      ok = ValidateFile(f, validators, out, notes) && ok;
    } catch (const std::exception& e) {  // a bug, not the user's: still a clean report
      out << Printable(f) << ": internal error while validating: " << e.what() << "\n";
      ok = false;
    }
  }
  out.flush();
  return ok ? 0 : 1;
}

}  // namespace tandem::cli
