// The `spec.optimizer` section.
//
//   optimizer:
//     type: momentum          # sgd | momentum | adam | adagrad       (default sgd)
//     learningRate: 0.01      # > 0                                   (default 0.01)
//     momentum: 0.9           # momentum only, in [0, 1)              (default 0.9)
//     weightDecay: 0.0005     # L2 coefficient added to the gradient  (default 0)
//     beta1: 0.9              # adam                                  (default 0.9)
//     beta2: 0.999            # adam                                  (default 0.999)
//     epsilon: 1.0e-8         # adam, adagrad                         (default 1e-8; adagrad 1e-10)
//     schedule:
//       type: step            # constant | step | cosine              (default constant)
//       stepSize: 1000        # step: multiply by gamma every stepSize steps
//       gamma: 0.1            # step
//       minLearningRate: 0    # cosine: the rate reached at the last step
//
// Gradients are means over the batch (PyTorch's convention). Paddle's seed example sums over the
// batch, hence its learning rate 0.02/128 and decay 0.0005*128 for batch 128: the same update is
// learningRate 0.02, weightDecay 0.0005 here.
#pragma once

#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "trainer/layers/attr_reader.h"

namespace tandem::trainer {

enum class OptimizerType { kSgd, kMomentum, kAdam, kAdagrad };
enum class ScheduleType { kConstant, kStep, kCosine };

struct OptimizerConfig {
  OptimizerType type = OptimizerType::kSgd;
  double learning_rate = 0.01;
  double momentum = 0.9;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999;
  double epsilon = 1e-8;
  ScheduleType schedule = ScheduleType::kConstant;
  int64_t step_size = 1000;
  double gamma = 0.1;
  double min_learning_rate = 0.0;

  // Learning rate at `step` (0-based) of `total_steps`.
  double LearningRateAt(int64_t step, int64_t total_steps) const;
};

// Parses `spec.optimizer` (null/absent: every default). Errors carry full paths under `path`.
OptimizerConfig ParseOptimizerConfig(const nlohmann::json& optimizer, const std::string& path,
                                     std::vector<FieldError>* errors);

}  // namespace tandem::trainer
