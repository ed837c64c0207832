// Deterministic parameter initialisers: the value of element `col` of row `row` depends only on
// (config, row, col), so a sparse row gets the same initial value whichever shard creates it, in
// whatever order rows are touched, before or after a pserver restart.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "proto/pserver.pb.h"

namespace tandem::pserver {

// INVALID_ARGUMENT naming the offending field when `init` is unusable (unset kind, low >= high,
// stddev < 0, non-finite values).
absl::Status ValidateInitializer(const Initializer& init);

// Fills `out` with the initial values of row `row` (column j gets element j).
// REQUIRES: ValidateInitializer(init).ok().
void InitializeRow(const Initializer& init, uint64_t row, absl::Span<float> out);

// The initial value of one element (dense tables use row = element index, col = 0).
float InitialValue(const Initializer& init, uint64_t row, uint64_t col);

}  // namespace tandem::pserver
