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
#pragma once

#include <cstdint>
#include <string_view>

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

// Elements per dense block for a table of `size` floats over `num_shards` shards (Paddle's rule):
// max(2^(bits(size / num_shards) - 7), 1024), so a shard holds about 128 blocks of a large table
// and a block is never smaller than 1024 floats. Capped at 2^22 floats (16 MiB) so a block always
// fits a request.
uint32_t DefaultBlockSize(uint64_t size, uint32_t num_shards);

// Number of blocks of a table of `size` floats. REQUIRES: block_size > 0.
inline uint64_t NumBlocks(uint64_t size, uint32_t block_size) {
  return (size + block_size - 1) / block_size;
}

}  // namespace tandem::pserver
