#include "pserver/placement.h"

#include <algorithm>
#include <bit>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tandem::pserver {

uint32_t DefaultBlockSize(uint64_t size, uint32_t num_shards) {
  const uint64_t per_shard = size / std::max<uint32_t>(num_shards, 1);
  const int bits = std::bit_width(per_shard);  // bits(x): 0 for 0, floor(log2 x) + 1 otherwise
  const int exponent = std::clamp(bits - 7, 10, 22);
  return uint32_t{1} << exponent;
}

Placement Placement::Modulo(uint32_t num_shards) {
  Placement p;
  p.rendezvous_ = false;
  p.epoch_ = 0;
  p.ids_.resize(num_shards);
  for (uint32_t i = 0; i < num_shards; ++i) p.ids_[i] = i;
  return p;
}

Placement Placement::Rendezvous(uint64_t epoch, std::vector<uint32_t> ids) {
  Placement p;
  p.rendezvous_ = true;
  p.epoch_ = epoch;
  p.ids_ = std::move(ids);
  return p;
}

bool Placement::Contains(uint32_t id) const {
  return std::find(ids_.begin(), ids_.end(), id) != ids_.end();
}

std::string Placement::ToString() const {
  if (!rendezvous_) return absl::StrCat(ids_.size(), " shards (modulo)");
  return absl::StrCat("shards [", absl::StrJoin(ids_, ", "), "] of epoch ", epoch_);
}

}  // namespace tandem::pserver
