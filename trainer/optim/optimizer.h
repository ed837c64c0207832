// Optimizers: SGD, momentum, Adam and Adagrad, with L2 weight decay and a learning-rate schedule.
//
//   TANDEM_ASSIGN_OR_RETURN(auto opt, Optimizer::Create(config, net->params(), net->device()));
//   net->Backward(ctx);
//   opt->Step(step, total_steps);
//
// Sparse parameters (embedding tables) are updated only in the rows the batch touched
// (Param::touched_rows, with compact gradient rows); the list is cleared afterwards. For Adagrad
// that is the classic sparse update; for momentum and Adam it is the "lazy" variant (untouched
// rows keep their state), as in TensorFlow's LazyAdam and Paddle's sparse updates.
// Not thread-safe.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/core/device.h"
#include "trainer/layers/layer.h"
#include "trainer/optim/optimizer_config.h"

namespace tandem::trainer {

class Optimizer {
 public:
  Optimizer(const OptimizerConfig& config, std::vector<Param>& params, Device& device);

  // Applies one update with the gradients in the parameters. `step` is 0-based.
  void Step(int64_t step, int64_t total_steps);
  double LearningRate(int64_t step, int64_t total_steps) const {
    return config_.LearningRateAt(step, total_steps) * lr_scale_;
  }
  // Multiplies the schedule's learning rate (elastic jobs, spec.elastic.policy linear). Default 1.
  void set_learning_rate_scale(double scale) { lr_scale_ = scale; }
  const OptimizerConfig& config() const { return config_; }
  // Optimizer state tensors (momentum, Adam moments, Adagrad sums), for checkpoints.
  std::vector<Tensor*> State();
  int64_t updates() const { return updates_; }
  void set_updates(int64_t n) { updates_ = n; }

 private:
  // Updates p.value[begin, begin + n) (and the state at the same offsets) with gradient `g`.
  void UpdateRange(Param& p, int64_t begin, int64_t n, const float* g, float lr, int slot);
  OptimizerConfig config_;
  std::vector<Param>& params_;
  Device& device_;
  std::vector<Tensor> m_, v_;  // per parameter: first and second state
  int64_t updates_ = 0;        // Adam's bias-correction count
  double lr_scale_ = 1;
  float bc1_ = 1, bc2_ = 1;
};

}  // namespace tandem::trainer
