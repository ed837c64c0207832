#include "api/manifest.h"

#include "absl/strings/str_cat.h"
#include "api/queue.h"
#include "api/schema.h"
#include "api/training_job.h"
#include "common/yaml_json.h"

namespace tandem::api {
namespace {

std::vector<DocumentProblem> ValidateDocuments(const std::vector<nlohmann::json>& docs) {
  std::vector<DocumentProblem> problems;
  int real_documents = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (docs[i].is_null()) continue;  // an empty document ("---" at the end) is not an error
    ++real_documents;
    for (FieldError& e : ValidateDocument(docs[i]))
      problems.push_back({static_cast<int>(i), std::move(e)});
  }
  if (real_documents == 0) problems.push_back({-1, {"", "no documents: the file is empty"}});
  return problems;
}

}  // namespace

FieldErrors ValidateDocument(const nlohmann::json& doc) {
  FieldErrors errors;
  if (!doc.is_object()) {
    errors.push_back({"", absl::StrCat("a manifest must be a map with apiVersion and kind, got ", DescribeValue(doc))});
    return errors;
  }
  auto kind = doc.find("kind");
  if (kind == doc.end() || !kind->is_string()) {
    errors.push_back({"kind", "required: TrainingJob or Queue"});
    return errors;
  }
  if (*kind == kTrainingJobKind) {
    ParseTrainingJob(doc, &errors);
  } else if (*kind == kQueueKind) {
    ParseQueue(doc, &errors);
  } else {
    errors.push_back({"kind", absl::StrCat("must be TrainingJob or Queue, got ", DescribeValue(*kind))});
  }
  return errors;
}

std::vector<DocumentProblem> ValidateManifestFile(const std::string& path) {
  auto docs = YamlFileToJson(path);
  if (!docs.ok()) return {{-1, {"", std::string(docs.status().message())}}};
  return ValidateDocuments(*docs);
}

std::vector<DocumentProblem> ValidateManifestText(const std::string& text, const std::string& source) {
  auto docs = YamlToJson(text, source);
  if (!docs.ok()) return {{-1, {"", std::string(docs.status().message())}}};
  return ValidateDocuments(*docs);
}

}  // namespace tandem::api
