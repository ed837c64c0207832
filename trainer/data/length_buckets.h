// Bucketing by length for sequence data: reorders one rank's examples so that each batch holds
// examples of similar length (little padding), without changing which examples the rank reads or
// how many batches it takes.
//
//   std::vector<int64_t> order = BatchReader::ShardOrder(n, options, pass);
//   BucketByLength(dataset, options.batch_size, seed, /*shuffle=*/true, &order);
//
// The order is cut into windows of kBucketWindowBatches batches; each window is sorted by
// Dataset::ExampleTokens (stable, so ties keep the shuffled order), cut into batches, and, with
// `shuffle`, the window's batches are dealt in a random order drawn from `seed` (so training does
// not see short words first and long ones last). Windows keep the global shuffle's randomness
// between passes; batch boundaries stay at multiples of batch_size, so batch counts are unchanged.
#pragma once

#include <cstdint>
#include <vector>

#include "trainer/data/dataset.h"

namespace tandem::trainer::data {

inline constexpr int64_t kBucketWindowBatches = 32;

void BucketByLength(const Dataset& dataset, int64_t batch_size, uint64_t seed, bool shuffle,
                    std::vector<int64_t>* order);

// Examples per batch for about `tokens` tokens per batch: tokens over the mean of
// Dataset::ExampleTokens (at least 1).
int BatchSizeForTokens(const Dataset& dataset, int64_t tokens);

}  // namespace tandem::trainer::data
