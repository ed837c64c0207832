// How a worker process (tandem-trainer, tandem-pserver) ends, and what its supervisor (`tandem
// run`, or the operator through spec.restartPolicy.retryableExitCodes) does about it. Part of the
// worker contract (api/worker_contract.h). Header-only: the trainer's collective layer uses it.
#pragma once

namespace tandem::api {

inline constexpr int kExitSucceeded = 0;
// Training failed (a bug, a NaN, a full disk): restarting repeats it. Not retryable.
inline constexpr int kExitFailed = 1;
// Bad flags, environment or manifest: nothing ran. Not retryable.
inline constexpr int kExitInvalid = 2;
// EX_TEMPFAIL: a peer or a pserver died, stalled or never came up; a restart from the last
// (consistent) checkpoint is expected to work. Retryable.
inline constexpr int kExitPeerFailure = 75;
// Killed (SIGKILL: out of memory, node lost). Retryable.
inline constexpr int kExitKilled = 128 + 9;
// Stopped by SIGTERM (eviction, Ctrl-C) after writing a checkpoint. Retryable.
inline constexpr int kExitStopped = 128 + 15;

// The default spec.restartPolicy.retryableExitCodes.
inline constexpr int kDefaultRetryableExitCodes[] = {kExitPeerFailure, kExitKilled, kExitStopped};

}  // namespace tandem::api
