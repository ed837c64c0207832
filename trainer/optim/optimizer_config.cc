#include "trainer/optim/optimizer_config.h"

#include <cmath>
#include <numbers>

namespace tandem::trainer {

double OptimizerConfig::LearningRateAt(int64_t step, int64_t total_steps) const {
  switch (schedule) {
    case ScheduleType::kConstant:
      return learning_rate;
    case ScheduleType::kStep:
      return learning_rate * std::pow(gamma, static_cast<double>(step / step_size));
    case ScheduleType::kCosine: {
      if (total_steps <= 1) return learning_rate;
      const double t = std::min(1.0, static_cast<double>(step) / (total_steps - 1));
      return min_learning_rate +
             0.5 * (learning_rate - min_learning_rate) * (1 + std::cos(std::numbers::pi * t));
    }
  }
  return learning_rate;
}

OptimizerConfig ParseOptimizerConfig(const nlohmann::json& optimizer, const std::string& path,
                                     std::vector<FieldError>* errors) {
  OptimizerConfig c;
  static const nlohmann::json kEmpty = nlohmann::json::object();
  if (!optimizer.is_null() && !optimizer.is_object()) {
    errors->push_back({path, "must be an object"});
    return c;
  }
  const nlohmann::json& o = optimizer.is_null() ? kEmpty : optimizer;
  AttrReader a(o);
  const std::string type = a.Enum("type", "sgd", {"sgd", "momentum", "adam", "adagrad"});
  c.type = type == "momentum" ? OptimizerType::kMomentum
           : type == "adam"   ? OptimizerType::kAdam
           : type == "adagrad" ? OptimizerType::kAdagrad
                               : OptimizerType::kSgd;
  c.learning_rate = a.Float("learningRate", 0.01, 1e-12, 1e6);
  c.weight_decay = a.Float("weightDecay", 0.0, 0.0, 1e6);
  if (c.type == OptimizerType::kMomentum) c.momentum = a.Float("momentum", 0.9, 0.0, 0.999999);
  if (c.type == OptimizerType::kAdam) {
    c.beta1 = a.Float("beta1", 0.9, 0.0, 0.999999);
    c.beta2 = a.Float("beta2", 0.999, 0.0, 0.999999);
  }
  if (c.type == OptimizerType::kAdam || c.type == OptimizerType::kAdagrad)
    c.epsilon = a.Float("epsilon", c.type == OptimizerType::kAdam ? 1e-8 : 1e-10, 1e-30, 1.0);
  // schedule is an object read with its own reader (nested paths).
  a.Float("schedule", 0);  // marks the field as known; a non-object is reported below
  a.CheckNoUnknownFields();
  for (const FieldError& e : a.errors()) {
    if (e.path == "schedule") continue;
    errors->push_back({path + "." + e.path, e.message});
  }
  auto s = o.find("schedule");
  if (s != o.end() && !s->is_null()) {
    if (!s->is_object()) {
      errors->push_back({path + ".schedule", "must be an object {type, ...}"});
      return c;
    }
    AttrReader sr(*s);
    const std::string st = sr.Enum("type", "constant", {"constant", "step", "cosine"});
    c.schedule = st == "step" ? ScheduleType::kStep
                 : st == "cosine" ? ScheduleType::kCosine
                                  : ScheduleType::kConstant;
    if (c.schedule == ScheduleType::kStep) {
      c.step_size = sr.Int("stepSize", 1000, 1);
      c.gamma = sr.Float("gamma", 0.1, 0.0, 1.0);
    }
    if (c.schedule == ScheduleType::kCosine)
      c.min_learning_rate = sr.Float("minLearningRate", 0.0, 0.0, c.learning_rate);
    sr.CheckNoUnknownFields();
    for (const FieldError& e : sr.errors())
      errors->push_back({path + ".schedule." + e.path, e.message});
  }
  return c;
}

}  // namespace tandem::trainer
