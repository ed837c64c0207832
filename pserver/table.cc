#include "pserver/table.h"

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "pserver/initializer.h"
#include "pserver/placement.h"

namespace tandem::pserver {

// ---- SparseTable -------------------------------------------------------------------------------

SparseTable::SparseTable(const TableConfig& config, const Optimizer& optimizer)
    : config_(config),
      optimizer_(optimizer),
      dim_(config.dim()),
      stride_(static_cast<size_t>(config.dim()) * (1 + optimizer.StateSlots())) {}

uint32_t SparseTable::FindOrCreate(Stripe& s, uint64_t key) {
  auto [it, inserted] = s.index.try_emplace(key, static_cast<uint32_t>(s.keys.size()));
  if (inserted) {
    const size_t base = s.data.size();
    s.data.resize(base + stride_);
    float* row = s.data.data() + base;
    InitializeRow(config_.init(), key, absl::MakeSpan(row, dim_));
    optimizer_.InitState(row + dim_, dim_);
    s.counts.push_back(0);
    s.keys.push_back(key);
  }
  return it->second;
}

void SparseTable::Pull(absl::Span<const uint64_t> keys, absl::Span<float> out) {
  for (size_t i = 0; i < keys.size(); ++i) {
    Stripe& s = stripes_[StripeOf(keys[i])];
    absl::MutexLock lock(&s.mu);
    const uint32_t slot = FindOrCreate(s, keys[i]);
    std::memcpy(out.data() + i * dim_, s.data.data() + slot * stride_, dim_ * sizeof(float));
  }
}

void SparseTable::Apply(absl::Span<const uint64_t> keys, absl::Span<const float> grads,
                        float scale) {
  for (size_t i = 0; i < keys.size(); ++i) {
    Stripe& s = stripes_[StripeOf(keys[i])];
    absl::MutexLock lock(&s.mu);
    const uint32_t slot = FindOrCreate(s, keys[i]);
    float* row = s.data.data() + slot * stride_;
    optimizer_.Apply(row, row + dim_, grads.data() + i * dim_, dim_, scale, s.counts[slot]);
    ++s.counts[slot];
  }
}

uint64_t SparseTable::rows() const {
  uint64_t n = 0;
  for (const Stripe& s : stripes_) {
    absl::MutexLock lock(&s.mu);
    n += s.keys.size();
  }
  return n;
}

TableSnapshot SparseTable::Snapshot() const {
  TableSnapshot snap;
  for (const Stripe& s : stripes_) {
    absl::MutexLock lock(&s.mu);
    snap.keys.insert(snap.keys.end(), s.keys.begin(), s.keys.end());
    snap.values.insert(snap.values.end(), s.data.begin(), s.data.end());
    snap.counts.insert(snap.counts.end(), s.counts.begin(), s.counts.end());
  }
  return snap;
}

absl::Status SparseTable::Restore(const TableSnapshot& snap) {
  if (snap.values.size() != snap.keys.size() * stride_ || snap.counts.size() != snap.keys.size())
    return absl::InvalidArgumentError(
        absl::StrCat("sparse table '", config_.name(), "': snapshot has ", snap.keys.size(),
                     " keys, ", snap.values.size(), " values and ", snap.counts.size(),
                     " counts; expected ", stride_, " values per key"));
  for (Stripe& s : stripes_) {
    absl::MutexLock lock(&s.mu);
    s.index.clear();
    s.data.clear();
    s.counts.clear();
    s.keys.clear();
  }
  for (size_t i = 0; i < snap.keys.size(); ++i) {
    Stripe& s = stripes_[StripeOf(snap.keys[i])];
    absl::MutexLock lock(&s.mu);
    auto [it, inserted] = s.index.try_emplace(snap.keys[i], static_cast<uint32_t>(s.keys.size()));
    if (!inserted)
      return absl::InvalidArgumentError(
          absl::StrCat("sparse table '", config_.name(), "': snapshot repeats key ", snap.keys[i]));
    s.keys.push_back(snap.keys[i]);
    s.counts.push_back(snap.counts[i]);
    s.data.insert(s.data.end(), snap.values.begin() + i * stride_,
                  snap.values.begin() + (i + 1) * stride_);
  }
  return absl::OkStatus();
}

absl::Status SparseTable::Insert(const TableSnapshot& snap) {
  if (absl::Status s = CheckInsert(snap); !s.ok()) return s;
  for (size_t i = 0; i < snap.keys.size(); ++i) {
    Stripe& s = stripes_[StripeOf(snap.keys[i])];
    absl::MutexLock lock(&s.mu);
    s.index.emplace(snap.keys[i], static_cast<uint32_t>(s.keys.size()));
    s.keys.push_back(snap.keys[i]);
    s.counts.push_back(snap.counts[i]);
    s.data.insert(s.data.end(), snap.values.begin() + i * stride_,
                  snap.values.begin() + (i + 1) * stride_);
  }
  return absl::OkStatus();
}

absl::Status SparseTable::CheckInsert(const TableSnapshot& snap) const {
  if (snap.values.size() != snap.keys.size() * stride_ || snap.counts.size() != snap.keys.size())
    return absl::InvalidArgumentError(
        absl::StrCat("sparse table '", config_.name(), "': ", snap.keys.size(), " keys, ",
                     snap.values.size(), " values and ", snap.counts.size(),
                     " counts; expected ", stride_, " values per key"));
  absl::flat_hash_set<uint64_t> seen;
  seen.reserve(snap.keys.size());
  for (uint64_t key : snap.keys) {
    const Stripe& s = stripes_[StripeOf(key)];
    absl::MutexLock lock(&s.mu);
    if (s.index.contains(key) || !seen.insert(key).second)
      return absl::InvalidArgumentError(
          absl::StrCat("sparse table '", config_.name(), "': row ", key, " is already held"));
  }
  return absl::OkStatus();
}

uint64_t SparseTable::EraseIf(const std::function<bool(uint64_t)>& drop) {
  uint64_t erased = 0;
  for (Stripe& s : stripes_) {
    absl::MutexLock lock(&s.mu);
    // Moves the last row into each erased slot.
    for (size_t slot = 0; slot < s.keys.size();) {
      if (!drop(s.keys[slot])) {
        ++slot;
        continue;
      }
      const size_t last = s.keys.size() - 1;
      s.index.erase(s.keys[slot]);
      if (slot != last) {
        s.keys[slot] = s.keys[last];
        s.counts[slot] = s.counts[last];
        std::copy(s.data.begin() + last * stride_, s.data.begin() + (last + 1) * stride_,
                  s.data.begin() + slot * stride_);
        s.index[s.keys[slot]] = static_cast<uint32_t>(slot);
      }
      s.keys.pop_back();
      s.counts.pop_back();
      s.data.resize(last * stride_);
      ++erased;
    }
  }
  return erased;
}

// ---- DenseTable --------------------------------------------------------------------------------

DenseTable::DenseTable(const TableConfig& config, const Optimizer& optimizer,
                       const Placement& placement, uint32_t shard)
    : config_(config),
      optimizer_(optimizer),
      num_blocks_(NumBlocks(config.size(), config.block_size())),
      slots_(optimizer.StateSlots()) {
  const uint64_t salt = TableSalt(config.name());
  const bool member = placement.Contains(shard);
  for (uint64_t b = 0; b < num_blocks_ && member; ++b) {
    if (placement.OwnerOf(b, salt) != shard) continue;
    auto block = std::make_unique<Block>();
    block->id = static_cast<uint32_t>(b);
    block->length = BlockLength(block->id);
    block->data.resize(static_cast<size_t>(block->length) * (1 + slots_));
    const uint64_t first = b * config.block_size();
    for (uint32_t i = 0; i < block->length; ++i)
      block->data[i] = InitialValue(config.init(), first + i, 0);
    optimizer_.InitState(block->data.data() + block->length, block->length);
    owned_floats_ += block->length;
    block_index_[block->id] = static_cast<uint32_t>(blocks_.size());
    blocks_.push_back(std::move(block));
  }
}

bool DenseTable::Owns(uint32_t block) const { return block_index_.contains(block); }

uint32_t DenseTable::BlockLength(uint32_t block) const {
  const uint64_t first = uint64_t{block} * config_.block_size();
  return static_cast<uint32_t>(std::min<uint64_t>(config_.block_size(), config_.size() - first));
}

void DenseTable::Pull(uint32_t block, absl::Span<float> out) const {
  const Block& b = *blocks_[block_index_.at(block)];
  absl::MutexLock lock(&b.mu);
  std::memcpy(out.data(), b.data.data(), b.length * sizeof(float));
}

void DenseTable::Apply(uint32_t block, absl::Span<const float> grads, float scale) {
  Block& b = *blocks_[block_index_.at(block)];
  absl::MutexLock lock(&b.mu);
  optimizer_.Apply(b.data.data(), b.data.data() + b.length, grads.data(), b.length, scale, b.count);
  ++b.count;
}

TableSnapshot DenseTable::Snapshot() const {
  TableSnapshot snap;
  snap.values.reserve(owned_floats_ * (1 + slots_));
  for (const auto& b : blocks_) {
    absl::MutexLock lock(&b->mu);
    snap.keys.push_back(b->id);
    snap.counts.push_back(b->count);
    snap.values.insert(snap.values.end(), b->data.begin(), b->data.end());
  }
  return snap;
}

absl::Status DenseTable::Restore(const TableSnapshot& snap) {
  const uint64_t expected_values = owned_floats_ * (1 + slots_);
  if (snap.keys.size() != blocks_.size() || snap.counts.size() != blocks_.size() ||
      snap.values.size() != expected_values)
    return absl::InvalidArgumentError(absl::StrCat(
        "dense table '", config_.name(), "': snapshot holds ", snap.keys.size(), " blocks and ",
        snap.values.size(), " values; this shard owns ", blocks_.size(), " blocks of ",
        expected_values, " values (was the checkpoint written with another --num-shards?)"));
  size_t offset = 0;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    if (snap.keys[i] != b.id)
      return absl::InvalidArgumentError(absl::StrCat("dense table '", config_.name(),
                                                     "': snapshot block ", snap.keys[i],
                                                     " where block ", b.id, " was expected"));
    absl::MutexLock lock(&b.mu);
    std::copy(snap.values.begin() + offset, snap.values.begin() + offset + b.data.size(),
              b.data.begin());
    b.count = snap.counts[i];
    offset += b.data.size();
  }
  return absl::OkStatus();
}

}  // namespace tandem::pserver
