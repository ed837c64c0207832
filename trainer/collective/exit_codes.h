// How a trainer leaves when the collective layer fails, so that its supervisor (`tandem run`, or
// the operator through restartPolicy.retryableExitCodes) restarts it from the last checkpoint.
#pragma once

#include "absl/status/status.h"

namespace tandem::collective {

// EX_TEMPFAIL from <sysexits.h>: a peer died, stalled or could not be reached; retrying the job
// from its last checkpoint is expected to work. Listed in the default retryableExitCodes.
inline constexpr int kPeerFailureExitCode = 75;

// True for the failures a restart can cure: a peer that died, stalled, or never came up
// (Unavailable, DeadlineExceeded, DataLoss from the transport). Disagreements between ranks
// (FailedPrecondition) and bad configuration (InvalidArgument) are not: restarting repeats them.
inline bool IsPeerFailure(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded ||
         s.code() == absl::StatusCode::kDataLoss;
}

// 0 for OK, kPeerFailureExitCode for peer failures, 1 otherwise.
inline int ExitCodeFor(const absl::Status& s) {
  if (s.ok()) return 0;
  return IsPeerFailure(s) ? kPeerFailureExitCode : 1;
}

}  // namespace tandem::collective
