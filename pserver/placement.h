// Where parameters live: the salted-hash placement shared by the pserver and its clients.
//
//   const uint64_t salt = TableSalt("embedding");
//   uint32_t shard = ShardOfKey(row_key, salt, num_shards);      // a sparse row's owner
//   uint32_t owner = ShardOfKey(block_id, salt, num_shards);     // a dense block's owner
//
// Paddle v0.x placed block b of parameter p on (b + hash(p)) mod servers; ps-lite used contiguous
// key ranges, which hot-spot when keys are small integers. We hash the salted key through a
// 64-bit finaliser, so neither dense blocks nor sparse keys form contiguous ranges per shard, and
// two tables with the same keys land differently.
//
// COMPATIBILITY: changing Mix64, TableSalt or DefaultBlockSize moves every parameter: checkpoints
// and running peers would disagree. Treat them as part of the wire format.
//
// Two placements (docs/elastic.md "Pserver resharding"):
//   - modulo (ShardOfKey): fixed-size jobs. Kept as it was, so existing shard checkpoints (keyed
//     by it) stay valid; changing the shard count moves (N-1)/N of the keys.
//   - rendezvous (highest random weight, RendezvousIndex): elastic jobs. Shards are known by a
//     stable id (their worker slot), and a key goes to the live id with the highest
//     RendezvousWeight(key, id). Adding a shard moves only the keys it now wins (about 1/(N+1));
//     removing one moves only the keys it held (about 1/N). Elastic shards never checkpoint (see
//     PServer::Start), so no file is keyed by it yet.
//   Placement wraps both, with the membership epoch the layout belongs to.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::pserver {

// The splitmix64 finaliser: a bijection on 64 bits with full avalanche.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// FNV-1a over the table's name, mixed: stable across processes, compilers and runs
// (std::hash is not).
inline uint64_t TableSalt(std::string_view name) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return Mix64(h);
}

// The shard owning `key` (a sparse row key or a dense block id). REQUIRES: num_shards > 0.
inline uint32_t ShardOfKey(uint64_t key, uint64_t salt, uint32_t num_shards) {
  return static_cast<uint32_t>(Mix64(key + salt) % num_shards);
}

// Rendezvous weight of `key` (already salted and mixed: Mix64(key + salt)) on shard `id`.
inline uint64_t RendezvousWeight(uint64_t mixed_key, uint64_t id) {
  return Mix64(mixed_key ^ Mix64(0xD6E8FEB86659FD93ull * (id + 1)));
}

// Index in `ids` of the owner of `key` under rendezvous placement (ties, which need a 64-bit
// collision, go to the larger id). REQUIRES: ids not empty.
inline uint32_t RendezvousIndex(uint64_t key, uint64_t salt, const uint32_t* ids, size_t n) {
  const uint64_t mixed = Mix64(key + salt);
  uint32_t best = 0;
  uint64_t best_w = RendezvousWeight(mixed, ids[0]);
  for (size_t i = 1; i < n; ++i) {
    const uint64_t w = RendezvousWeight(mixed, ids[i]);
    if (w > best_w || (w == best_w && ids[i] > ids[best])) {
      best = static_cast<uint32_t>(i);
      best_w = w;
    }
  }
  return best;
}

// Where keys live for one layout of the shards.
class Placement {
 public:
  Placement() : ids_{0} {}  // one shard, modulo
  // Fixed jobs: shard i of n holds the keys with Mix64(key + salt) % n == i (ids 0..n-1).
  static Placement Modulo(uint32_t num_shards);
  // Elastic jobs: the shards `ids` (distinct worker slots, any order) of membership `epoch`.
  static Placement Rendezvous(uint64_t epoch, std::vector<uint32_t> ids);

  bool rendezvous() const { return rendezvous_; }
  uint64_t epoch() const { return epoch_; }
  // The shards' ids; a client's endpoints are in this order.
  const std::vector<uint32_t>& ids() const { return ids_; }
  uint32_t size() const { return static_cast<uint32_t>(ids_.size()); }
  bool Contains(uint32_t id) const;
  // Position in ids() of the owner of `key`.
  uint32_t IndexOf(uint64_t key, uint64_t salt) const {
    return rendezvous_ ? RendezvousIndex(key, salt, ids_.data(), ids_.size())
                       : ShardOfKey(key, salt, size());
  }
  // Id of the owner of `key`.
  uint32_t OwnerOf(uint64_t key, uint64_t salt) const { return ids_[IndexOf(key, salt)]; }
  // "shards [0, 2, 5] of epoch 3" / "2 shards (modulo)", for messages.
  std::string ToString() const;

 private:
  bool rendezvous_ = false;
  uint64_t epoch_ = 0;
  std::vector<uint32_t> ids_;
};

// Elements per dense block for a table of `size` floats over `num_shards` shards (Paddle's rule):
// max(2^(bits(size / num_shards) - 7), 1024), so a shard holds about 128 blocks of a large table
// and a block is never smaller than 1024 floats. Capped at 2^22 floats (16 MiB) so a block always
// fits a request.
// Elastic jobs pass their largest shard count (workers.maxCount), so the block size never
// changes with the live count.
uint32_t DefaultBlockSize(uint64_t size, uint32_t num_shards);

// Number of blocks of a table of `size` floats. REQUIRES: block_size > 0.
inline uint64_t NumBlocks(uint64_t size, uint32_t block_size) {
  return (size + block_size - 1) / block_size;
}

}  // namespace tandem::pserver
