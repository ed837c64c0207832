// A small SweepSpec for the sweep/ tests: lr (float, log 1e-4..1e-1), momentum (float, linear
// 0.5..0.99), size (int, linear 16..256), act (choice relu|tanh|sigmoid).
#pragma once

#include "api/sweep.h"

namespace tandem::sweep::testing {

inline api::SweepSpec TestSpec(const std::string& algorithm = api::kAlgorithmRandom) {
  api::SweepSpec s;
  api::SweepParameter lr{.name = "lr", .path = "spec.optimizer.learningRate", .type = api::kParamFloat,
                         .min = 1e-4, .max = 1e-1, .scale = api::kScaleLog};
  api::SweepParameter momentum{.name = "momentum", .path = "spec.optimizer.momentum", .type = api::kParamFloat,
                               .min = 0.5, .max = 0.99};
  api::SweepParameter size{.name = "size", .path = "spec.model.layers[fc1].size", .type = api::kParamInt,
                           .min = 16, .max = 256};
  api::SweepParameter act{.name = "act", .path = "spec.model.layers[act].type", .type = api::kParamChoice};
  act.values = {"relu", "tanh", "sigmoid"};
  s.parameters = {lr, momentum, size, act};
  s.algorithm.name = algorithm;
  s.max_trials = 20;
  s.parallelism = 2;
  s.seed = 7;
  return s;
}

inline api::TrialStatus Trial(int64_t index, const std::string& phase, std::vector<api::MetricPoint> points,
                              nlohmann::json parameters = nlohmann::json::object()) {
  api::TrialStatus t;
  t.index = index;
  t.name = "t-" + std::to_string(index);
  t.phase = phase;
  t.parameters = std::move(parameters);
  t.intermediate = std::move(points);
  if (!t.intermediate.empty()) t.objective = t.intermediate.back().value;
  return t;
}

}  // namespace tandem::sweep::testing
