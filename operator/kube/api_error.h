// Typed errors from the Kubernetes API. Every failed call returns an absl::Status whose code is
// derived from the HTTP status (so the predicates below survive tandem::Annotate), and whose
// payload carries the HTTP code and the Status object's `reason`.
//
//   auto pod = client.Get(kPods, "default", "w-0");
//   if (kube::IsNotFound(pod.status())) ...
//   if (kube::IsConflict(s)) re-read and retry;
//
// HTTP code -> absl code: 400/415/422 InvalidArgument, 401 Unauthenticated, 403 PermissionDenied,
// 404 NotFound, 405 Unimplemented, 409 AlreadyExists (reason AlreadyExists) or Aborted (reason
// Conflict), 410 OutOfRange (resourceVersion too old), 429 ResourceExhausted, 500 Internal,
// 503/504 and transport failures Unavailable, 504 timeouts DeadlineExceeded.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace tandem::kube {

// Builds the error for an HTTP reply `http_code` whose body is `body` (a metav1.Status when the
// server sent one; any other body becomes the message). `what` names the request ("GET /api/v1/...").
absl::Status ApiErrorFromResponse(int http_code, const std::string& body, const std::string& what);

// Builds an error from a metav1.Status object (watch ERROR events carry one).
absl::Status ApiErrorFromStatusObject(const nlohmann::json& status, const std::string& what);

// The error for `reason` with HTTP `code` (used by the API server stand-in and tests as well).
absl::Status MakeApiError(int http_code, const std::string& reason, const std::string& message);

// The HTTP code carried by `s` (0 when `s` did not come from an API reply).
int HttpCodeOf(const absl::Status& s);
// The Status reason carried by `s` ("NotFound", "Conflict", "Expired", ...), or "".
std::string ReasonOf(const absl::Status& s);

bool IsNotFound(const absl::Status& s);
bool IsAlreadyExists(const absl::Status& s);
bool IsConflict(const absl::Status& s);       // 409 Conflict: stale resourceVersion
bool IsGone(const absl::Status& s);           // 410: watch/list from a compacted resourceVersion
bool IsRetryable(const absl::Status& s);      // 429, 5xx, transport errors

// The metav1.Status JSON a server sends for an error (shared with the stand-in).
nlohmann::json StatusObject(int http_code, const std::string& reason, const std::string& message);

}  // namespace tandem::kube
