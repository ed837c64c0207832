#include "trainer/data/length_buckets.h"

#include <algorithm>
#include <random>

namespace tandem::trainer::data {

void BucketByLength(const Dataset& dataset, int64_t batch_size, uint64_t seed, bool shuffle,
                    std::vector<int64_t>* order) {
  const int64_t n = static_cast<int64_t>(order->size());
  const int64_t window = batch_size * kBucketWindowBatches;
  // std::mt19937_64 is specified exactly by the standard (unlike std::shuffle's algorithm), and
  // the swaps below are our own, so the order is the same on every platform.
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull);
  std::vector<int64_t> sorted;
  for (int64_t start = 0; start < n; start += window) {
    const int64_t end = std::min(n, start + window);
    auto first = order->begin() + start, last = order->begin() + end;
    std::stable_sort(first, last, [&](int64_t a, int64_t b) {
      return dataset.ExampleTokens(a) < dataset.ExampleTokens(b);
    });
    if (!shuffle) continue;
    const int64_t batches = (end - start + batch_size - 1) / batch_size;
    std::vector<int64_t> perm(static_cast<size_t>(batches));
    for (int64_t b = 0; b < batches; ++b) perm[b] = b;
    // The window's last batch may be short: keep it last so every other batch stays full.
    const int64_t full = (end - start) / batch_size;
    for (int64_t i = full - 1; i > 0; --i)
      std::swap(perm[i], perm[static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1))]);
    sorted.assign(first, last);
    int64_t pos = start;
    for (int64_t b : perm) {
      const int64_t from = b * batch_size, to = std::min(end - start, from + batch_size);
      for (int64_t k = from; k < to; ++k) (*order)[pos++] = sorted[k];
    }
  }
}

int BatchSizeForTokens(const Dataset& dataset, int64_t tokens) {
  const int64_t n = dataset.size();
  if (n == 0) return 1;
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(dataset.ExampleTokens(i));
  return static_cast<int>(std::max<double>(1.0, static_cast<double>(tokens) / (total / n)));
}

}  // namespace tandem::trainer::data
