#include "pserver/placement.h"

#include <algorithm>
#include <bit>

namespace tandem::pserver {

uint32_t DefaultBlockSize(uint64_t size, uint32_t num_shards) {
  const uint64_t per_shard = size / std::max<uint32_t>(num_shards, 1);
  const int bits = std::bit_width(per_shard);  // bits(x): 0 for 0, floor(log2 x) + 1 otherwise
  const int exponent = std::clamp(bits - 7, 10, 22);
  return uint32_t{1} << exponent;
}

}  // namespace tandem::pserver
