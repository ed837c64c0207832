#include "operator/kube/api_error.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace tandem::kube {
namespace {

constexpr char kPayloadUrl[] = "type.tandem.dev/kube.ApiError";

absl::StatusCode CodeFor(int http_code, const std::string& reason) {
  switch (http_code) {
    case 400:
    case 415:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 405:
      return absl::StatusCode::kUnimplemented;
    case 409:
      return reason == "AlreadyExists" ? absl::StatusCode::kAlreadyExists
                                       : absl::StatusCode::kAborted;
    case 410:
      return absl::StatusCode::kOutOfRange;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    case 503:
    case 502:
      return absl::StatusCode::kUnavailable;
    default:
      if (http_code >= 500) return absl::StatusCode::kInternal;
      if (http_code == 0) return absl::StatusCode::kUnavailable;
      return absl::StatusCode::kUnknown;
  }
}

std::string DefaultReason(int http_code) {
  switch (http_code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return "";
  }
}

}  // namespace

absl::Status MakeApiError(int http_code, const std::string& reason, const std::string& message) {
  std::string r = reason.empty() ? DefaultReason(http_code) : reason;
  absl::Status s(CodeFor(http_code, r), message);
  s.SetPayload(kPayloadUrl, absl::Cord(nlohmann::json{{"code", http_code}, {"reason", r}}.dump()));
  return s;
}

absl::Status ApiErrorFromStatusObject(const nlohmann::json& status, const std::string& what) {
  int code = 0;
  std::string reason, message;
  if (status.is_object()) {
    if (status.contains("code") && status["code"].is_number_integer()) code = status["code"];
    if (status.contains("reason") && status["reason"].is_string()) reason = status["reason"];
    if (status.contains("message") && status["message"].is_string()) message = status["message"];
  }
  if (code == 0) code = 500;
  if (message.empty()) message = DefaultReason(code);
  return MakeApiError(code, reason, what.empty() ? message : absl::StrCat(what, ": ", message));
}

absl::Status ApiErrorFromResponse(int http_code, const std::string& body, const std::string& what) {
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.value("kind", "") == "Status") {
    if (!parsed.contains("code")) parsed["code"] = http_code;
    return ApiErrorFromStatusObject(parsed, what);
  }
  std::string message = body.size() > 512 ? body.substr(0, 512) + "..." : body;
  if (message.empty()) message = absl::StrCat("HTTP ", http_code);
  return MakeApiError(http_code, "", absl::StrCat(what, ": HTTP ", http_code, ": ", message));
}

int HttpCodeOf(const absl::Status& s) {
  auto p = s.GetPayload(kPayloadUrl);
  if (!p) return 0;
  auto j = nlohmann::json::parse(std::string(*p), nullptr, false);
  return j.is_object() ? j.value("code", 0) : 0;
}

std::string ReasonOf(const absl::Status& s) {
  auto p = s.GetPayload(kPayloadUrl);
  if (!p) return "";
  auto j = nlohmann::json::parse(std::string(*p), nullptr, false);
  return j.is_object() ? j.value("reason", "") : "";
}

bool IsNotFound(const absl::Status& s) { return s.code() == absl::StatusCode::kNotFound; }
bool IsAlreadyExists(const absl::Status& s) { return s.code() == absl::StatusCode::kAlreadyExists; }
bool IsConflict(const absl::Status& s) { return s.code() == absl::StatusCode::kAborted; }
bool IsGone(const absl::Status& s) { return s.code() == absl::StatusCode::kOutOfRange; }
bool IsRetryable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

nlohmann::json StatusObject(int http_code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"},
          {"apiVersion", "v1"},
          {"metadata", nlohmann::json::object()},
          {"status", "Failure"},
          {"message", message},
          {"reason", reason.empty() ? DefaultReason(http_code) : reason},
          {"code", http_code}};
}

}  // namespace tandem::kube
