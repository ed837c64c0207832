// Ring algorithms over a Transport (see docs/collective.md for steps and bytes on the wire).
//
// All three are driven by one pipelined stream pump: the operation is cut into units (chunks of
// at most `chunk_bytes`); unit u travels on channel u % channels, each channel an ordered stream;
// a unit is sent as soon as its dependency has arrived (and been reduced), so while one chunk is on
// the wire the previous one is being reduced, and several chunks are in flight at once.
//
// AllReduce (N ranks, S bytes): reduce-scatter then all-gather, 2(N-1) steps of S/N bytes, each
// step cut into chunks; sends go straight from the caller's buffer and all-gather receives land
// straight in it (no copies), reduce-scatter receives land in a per-channel staging chunk that is
// added into place while still in cache. Each rank sends and receives 2(N-1)/N * S bytes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "trainer/collective/transport.h"

namespace tandem::collective {

enum class ReduceOp : uint8_t { kSum = 0, kAverage = 1 };
enum class Compression : uint8_t { kNone = 0, kBf16 = 1 };

struct RingOptions {
  size_t chunk_bytes = 512 << 10;  // largest unit on the wire
  // An operation that makes no progress for this long fails, naming the peer it waits on.
  std::chrono::milliseconds op_timeout{std::chrono::minutes(5)};
};

// What one operation cost; filled by the algorithms.
struct OpStats {
  uint64_t bytes_sent = 0;
  double wait_seconds = 0;  // blocked with nothing to send, waiting for a peer's data
};

// Buffers reused across operations, so that steady-state operations allocate nothing.
struct RingScratch {
  std::vector<std::vector<char>> send_stage, recv_stage;  // one chunk per channel
  std::vector<uint8_t> done;
  std::vector<size_t> seg_offset, seg_length;
  uint64_t sequence = 0;  // operations issued; checked against the left neighbour's
};

// In-place all-reduce of `count` floats. REQUIRES: every rank calls with the same count, op and
// compression (checked: a mismatch fails with an error naming the neighbour).
absl::Status RingAllReduce(Transport& t, const RingOptions& o, RingScratch& s, float* data,
                           size_t count, ReduceOp op, Compression compression, OpStats* stats);

// Copies `bytes` bytes from `root`'s buffer into every rank's buffer (pipelined along the ring).
absl::Status RingBroadcast(Transport& t, const RingOptions& o, RingScratch& s, void* data,
                           size_t bytes, int root, OpStats* stats);

// Returns once every rank has entered the barrier (two token passes around the ring).
absl::Status RingBarrier(Transport& t, const RingOptions& o, RingScratch& s, OpStats* stats);

}  // namespace tandem::collective
