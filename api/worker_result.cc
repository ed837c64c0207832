#include "api/worker_result.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace tandem::api {
namespace {

using nlohmann::json;

void PutFinite(json& j, const char* key, const std::optional<double>& v) {
  if (v.has_value() && std::isfinite(*v)) j[key] = *v;
}

absl::Status ReadCount(const json& j, const char* key, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end()) return absl::OkStatus();
  if (!it->is_number_integer() || it->get<int64_t>() < 0)
    return absl::InvalidArgumentError(absl::StrCat("worker result: ", key, ": must be an integer >= 0"));
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

absl::Status ReadNumber(const json& j, const char* key, double lo, double hi, std::optional<double>* out) {
  auto it = j.find(key);
  if (it == j.end()) return absl::OkStatus();
  if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < lo || it->get<double>() > hi)
    return absl::InvalidArgumentError(
        absl::StrCat("worker result: ", key, ": must be a number in [", lo, ", ", hi, "]"));
  *out = it->get<double>();
  return absl::OkStatus();
}

}  // namespace

std::string RenderWorkerResult(const WorkerResult& r) {
  json j = {{"kind", kWorkerResultKind}, {"steps", r.steps}, {"passes", r.passes}};
  PutFinite(j, "testAccuracy", r.test_accuracy);
  PutFinite(j, "testLoss", r.test_loss);
  PutFinite(j, "testAuc", r.test_auc);
  PutFinite(j, "examplesPerSec", r.examples_per_sec);
  return j.dump();
}

absl::StatusOr<WorkerResult> ParseWorkerResult(std::string_view message) {
  if (message.size() > kMaxTerminationMessageBytes)
    return absl::InvalidArgumentError(
        absl::StrCat("worker result: ", message.size(), " bytes, more than a termination message holds (",
                     kMaxTerminationMessageBytes, ")"));
  json j = json::parse(message, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError("worker result: not a JSON object (a log tail?)");
  auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string() || kind->get<std::string>() != kWorkerResultKind)
    return absl::InvalidArgumentError(absl::StrCat("worker result: kind: must be \"", kWorkerResultKind, "\""));
  WorkerResult r;
  constexpr double kHuge = 1e300;
  TANDEM_RETURN_IF_ERROR(ReadCount(j, "steps", &r.steps));
  TANDEM_RETURN_IF_ERROR(ReadCount(j, "passes", &r.passes));
  TANDEM_RETURN_IF_ERROR(ReadNumber(j, "testAccuracy", 0, 1, &r.test_accuracy));
  TANDEM_RETURN_IF_ERROR(ReadNumber(j, "testLoss", -kHuge, kHuge, &r.test_loss));
  TANDEM_RETURN_IF_ERROR(ReadNumber(j, "testAuc", 0, 1, &r.test_auc));
  TANDEM_RETURN_IF_ERROR(ReadNumber(j, "examplesPerSec", 0, kHuge, &r.examples_per_sec));
  return r;
}

}  // namespace tandem::api
