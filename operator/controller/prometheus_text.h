// A parser for the Prometheus text exposition format (version 0.0.4), for scraping trainers.
//
//   TANDEM_ASSIGN_OR_RETURN(std::vector<PromSample> samples, ParsePrometheusText(body));
//   const PromSample* s = FindSample(samples, "tandem_trainer_steps_total", {{"job", "mnist"}});
//
// Strict like Prometheus itself: any malformed line fails the whole parse with an error naming
// the line ("line 7: ..."). Comments (# HELP, # TYPE, anything after '#') and blank lines are
// skipped; timestamps are accepted and ignored. Hostile input (binary, unterminated quotes,
// enormous lines, millions of samples) is refused by the limits below, never a crash.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::controller {

struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // in exposition order, names unique
  double value = 0;  // may be NaN or +-Inf, as exposed
  // The value of label `name`, or nullptr.
  const std::string* Label(absl::string_view name) const;
};

struct PromParseLimits {
  size_t max_bytes = 8 << 20;       // whole body
  size_t max_line_bytes = 64 << 10;  // one line
  size_t max_samples = 200000;
  size_t max_labels = 64;           // per sample
};

absl::StatusOr<std::vector<PromSample>> ParsePrometheusText(absl::string_view text,
                                                            const PromParseLimits& limits = {});

// The first sample called `name` whose labels include every pair in `match`, or nullptr.
const PromSample* FindSample(const std::vector<PromSample>& samples, absl::string_view name,
                             const std::vector<std::pair<std::string, std::string>>& match = {});

}  // namespace tandem::controller
