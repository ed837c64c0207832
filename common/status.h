// Status helpers on abseil. Recoverable and user-caused errors are absl::Status values whose
// messages name the field, file or peer at fault; invariants are TANDEM_CHECKs (check.h).
//
//   absl::StatusOr<Model> LoadModel(const std::string& path) {
//     TANDEM_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
//     TANDEM_RETURN_IF_ERROR(Validate(text), "model file ", path);
//     ...
//   }
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace tandem {

// Returns `status` with `context` prepended to its message ("context: message"); OK stays OK.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

// errno as a Status: code chosen from the errno value, message "what: strerror(err)".
absl::Status ErrnoToStatus(int err, absl::string_view what);

}  // namespace tandem

#define TANDEM_STATUS_CONCAT_INNER_(a, b) a##b
#define TANDEM_STATUS_CONCAT_(a, b) TANDEM_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); on error returns it from the calling function, with the
// optional context arguments (absl::StrCat'd) prepended to the message.
#define TANDEM_RETURN_IF_ERROR(expr, ...)                                                 \
  do {                                                                                    \
    ::absl::Status _tandem_status = (expr);                                               \
    if (!_tandem_status.ok())                                                             \
      return ::tandem::Annotate(_tandem_status, ::absl::StrCat(__VA_ARGS__));        \
  } while (0)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or return its error from the calling function.
#define TANDEM_ASSIGN_OR_RETURN(lhs, rexpr) \
  TANDEM_ASSIGN_OR_RETURN_IMPL_(TANDEM_STATUS_CONCAT_(_tandem_statusor_, __LINE__), lhs, rexpr)
#define TANDEM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                  \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()
