// Parameter storage of one shard: sparse tables (rows keyed by uint64, created on first touch)
// and dense tables (the blocks of a dense parameter this shard owns). Each row/block holds its
// parameters, its optimizer state and its update count.
//
// Thread-safety: every method is thread-safe. Sparse rows are spread over lock stripes, dense
// blocks have one lock each, so pulls and pushes of different rows/blocks run in parallel.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "proto/pserver.pb.h"
#include "pserver/optimizer.h"
#include "pserver/placement.h"

namespace tandem::pserver {

// The raw contents of a table, as checkpoints store them.
struct TableSnapshot {
  std::vector<uint64_t> keys;    // sparse: row keys; dense: owned block ids
  std::vector<float> values;     // per key: parameters then optimizer state
  std::vector<uint64_t> counts;  // per key: update count
};

class SparseTable {
 public:
  // REQUIRES: config validated (kind SPARSE, dim > 0, initializer and optimizer valid).
  SparseTable(const TableConfig& config, const Optimizer& optimizer);

  // Writes the rows of `keys` to `out` (keys.size() * dim floats), creating missing rows with the
  // table's initializer. REQUIRES: out.size() == keys.size() * dim.
  void Pull(absl::Span<const uint64_t> keys, absl::Span<float> out);

  // Applies `scale * grads` (keys.size() * dim floats, row i for keys[i]) with the optimizer,
  // creating missing rows first. A key repeated in `keys` gets one update per occurrence.
  void Apply(absl::Span<const uint64_t> keys, absl::Span<const float> grads, float scale);

  uint64_t rows() const;
  uint32_t dim() const { return dim_; }
  const TableConfig& config() const { return config_; }

  TableSnapshot Snapshot() const;
  // Floats per row in snapshots (parameters then optimizer state).
  size_t stride() const { return stride_; }
  // Resharding: adds the rows of `rows` (a snapshot's layout); INVALID_ARGUMENT, with nothing
  // added, when a key is already held or repeated or the sizes do not fit.
  absl::Status Insert(const TableSnapshot& rows);
  // What Insert would answer, without adding anything.
  absl::Status CheckInsert(const TableSnapshot& rows) const;
  // Removes the rows whose key `drop` selects; returns how many.
  uint64_t EraseIf(const std::function<bool(uint64_t)>& drop);
  // Replaces the contents. INVALID_ARGUMENT when the snapshot's sizes do not fit this table.
  absl::Status Restore(const TableSnapshot& snapshot);

 private:
  static constexpr int kStripes = 64;
  struct Stripe {
    mutable absl::Mutex mu;
    absl::flat_hash_map<uint64_t, uint32_t> index ABSL_GUARDED_BY(mu);  // key -> row slot
    std::vector<float> data ABSL_GUARDED_BY(mu);  // slots * stride_
    std::vector<uint64_t> counts ABSL_GUARDED_BY(mu);  // per slot
    std::vector<uint64_t> keys ABSL_GUARDED_BY(mu);  // per slot
  };
  static int StripeOf(uint64_t key) {
    return static_cast<int>((key * 0x9E3779B97F4A7C15ull) >> 58);
  }
  // Row slot of `key` in `s`, created if missing.
  uint32_t FindOrCreate(Stripe& s, uint64_t key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  const TableConfig config_;
  const Optimizer optimizer_;
  const uint32_t dim_;
  const size_t stride_;  // dim * (1 + state slots)
  std::array<Stripe, kStripes> stripes_;
};

class DenseTable {
 public:
  // Allocates and initialises the blocks of `config` that shard `shard` owns under `placement`
  // (none when `shard` is not in it).
  // REQUIRES: config validated (kind DENSE, size > 0, block_size > 0).
  DenseTable(const TableConfig& config, const Optimizer& optimizer, const Placement& placement,
             uint32_t shard);

  // True when this shard owns `block` (and block < num_blocks()).
  bool Owns(uint32_t block) const;
  // Floats in `block` (the last block may be short). REQUIRES: block < num_blocks().
  uint32_t BlockLength(uint32_t block) const;
  uint64_t num_blocks() const { return num_blocks_; }
  uint64_t owned_blocks() const { return blocks_.size(); }
  uint64_t owned_floats() const { return owned_floats_; }
  const TableConfig& config() const { return config_; }

  // REQUIRES: Owns(block), out.size() == BlockLength(block).
  void Pull(uint32_t block, absl::Span<float> out) const;
  // REQUIRES: Owns(block), grads.size() == BlockLength(block).
  void Apply(uint32_t block, absl::Span<const float> grads, float scale);

  TableSnapshot Snapshot() const;
  // Snapshot floats per parameter float (1 + optimizer state slots).
  int stride() const { return 1 + slots_; }
  // REQUIRES: the snapshot's blocks are exactly the owned ones, by ascending id.
  absl::Status Restore(const TableSnapshot& snapshot);

 private:
  struct Block {
    mutable absl::Mutex mu;
    uint32_t id = 0;
    uint32_t length = 0;
    uint64_t count ABSL_GUARDED_BY(mu) = 0;
    std::vector<float> data ABSL_GUARDED_BY(mu);  // length * (1 + slots)
  };

  const TableConfig config_;
  const Optimizer optimizer_;
  const uint64_t num_blocks_;
  const int slots_;
  uint64_t owned_floats_ = 0;
  std::vector<std::unique_ptr<Block>> blocks_;           // owned blocks, by ascending id
  absl::flat_hash_map<uint32_t, uint32_t> block_index_;  // block id -> index in blocks_
};

}  // namespace tandem::pserver
