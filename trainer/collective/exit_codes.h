// How a trainer leaves when the collective layer fails, so that its supervisor (`tandem run`, or
// the operator through restartPolicy.retryableExitCodes) restarts it from the last checkpoint.
#pragma once

#include "absl/status/status.h"
#include "api/exit_codes.h"

namespace tandem::collective {

// A peer died, stalled or could not be reached: api::kExitPeerFailure (75, retryable).
inline constexpr int kPeerFailureExitCode = api::kExitPeerFailure;

// True for the failures a restart can cure: a peer that died, stalled, or never came up
// (Unavailable, DeadlineExceeded, DataLoss from the transport). Disagreements between ranks
// (FailedPrecondition) and bad configuration (InvalidArgument) are not: restarting repeats them.
inline bool IsPeerFailure(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded ||
         s.code() == absl::StatusCode::kDataLoss;
}

// 0 for OK, kPeerFailureExitCode for peer failures, api::kExitFailed otherwise.
inline int ExitCodeFor(const absl::Status& s) {
  if (s.ok()) return api::kExitSucceeded;
  return IsPeerFailure(s) ? kPeerFailureExitCode : api::kExitFailed;
}

}  // namespace tandem::collective
