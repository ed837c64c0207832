#include "pserver/optimizer.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace tandem::pserver {

absl::StatusOr<Optimizer> Optimizer::FromConfig(const OptimizerConfig& c) {
  Optimizer o;
  o.kind = c.kind();
  auto bad = [](absl::string_view field, float v, absl::string_view want) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.", field, ": ", v, " is out of range (", want, ")"));
  };
  switch (c.kind()) {
    case OptimizerConfig::SGD:
    case OptimizerConfig::MOMENTUM:
    case OptimizerConfig::ADAGRAD:
    case OptimizerConfig::ADAM:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer.kind: unknown optimizer ", static_cast<int>(c.kind()),
                       " (known: SGD, MOMENTUM, ADAGRAD, ADAM)"));
  }
  if (!std::isfinite(c.learning_rate()) || c.learning_rate() <= 0)
    return bad("learningRate", c.learning_rate(), "must be > 0");
  o.learning_rate = c.learning_rate();
  if (!std::isfinite(c.weight_decay()) || c.weight_decay() < 0)
    return bad("weightDecay", c.weight_decay(), "must be >= 0");
  o.weight_decay = c.weight_decay();
  if (c.kind() == OptimizerConfig::MOMENTUM) {
    if (!(c.momentum() >= 0 && c.momentum() < 1)) return bad("momentum", c.momentum(), "[0, 1)");
    o.momentum = c.momentum();
  }
  if (c.kind() == OptimizerConfig::ADAM) {
    if (c.beta1() != 0) {
      if (!(c.beta1() > 0 && c.beta1() < 1)) return bad("beta1", c.beta1(), "(0, 1)");
      o.beta1 = c.beta1();
    }
    if (c.beta2() != 0) {
      if (!(c.beta2() > 0 && c.beta2() < 1)) return bad("beta2", c.beta2(), "(0, 1)");
      o.beta2 = c.beta2();
    }
  }
  if (c.kind() == OptimizerConfig::ADAGRAD) {
    o.epsilon = 1e-10f;
    if (!std::isfinite(c.initial_accumulator()) || c.initial_accumulator() < 0)
      return bad("initialAccumulator", c.initial_accumulator(), "must be >= 0");
    o.initial_accumulator = c.initial_accumulator();
  }
  if (c.epsilon() != 0) {
    if (!std::isfinite(c.epsilon()) || c.epsilon() < 0)
      return bad("epsilon", c.epsilon(), "must be > 0");
    o.epsilon = c.epsilon();
  }
  return o;
}

int Optimizer::StateSlots() const {
  switch (kind) {
    case OptimizerConfig::MOMENTUM:
    case OptimizerConfig::ADAGRAD:
      return 1;
    case OptimizerConfig::ADAM:
      return 2;
    default:
      return 0;
  }
}

void Optimizer::InitState(float* state, size_t n) const {
  const size_t total = n * StateSlots();
  const float v = kind == OptimizerConfig::ADAGRAD ? initial_accumulator : 0.0f;
  for (size_t i = 0; i < total; ++i) state[i] = v;
}

void Optimizer::Apply(float* w, float* state, const float* grad, size_t n, float scale,
                      uint64_t count) const {
  const float lr = learning_rate;
  const float wd = weight_decay;
  switch (kind) {
    case OptimizerConfig::MOMENTUM: {
      float* v = state;
      for (size_t i = 0; i < n; ++i) {
        const float g = scale * grad[i] + wd * w[i];
        v[i] = momentum * v[i] + g;
        w[i] -= lr * v[i];
      }
      return;
    }
    case OptimizerConfig::ADAGRAD: {
      float* acc = state;
      for (size_t i = 0; i < n; ++i) {
        const float g = scale * grad[i] + wd * w[i];
        acc[i] += g * g;
        w[i] -= lr * g / (std::sqrt(acc[i]) + epsilon);
      }
      return;
    }
    case OptimizerConfig::ADAM: {
      float* m = state;
      float* v = state + n;
      const double t = static_cast<double>(count) + 1.0;
      const float c1 = static_cast<float>(1.0 - std::pow(double{beta1}, t));
      const float c2 = static_cast<float>(1.0 - std::pow(double{beta2}, t));
      const float step = lr * std::sqrt(c2) / c1;
      const float eps_hat = epsilon * std::sqrt(c2);  // epsilon added to the bias-corrected v
      for (size_t i = 0; i < n; ++i) {
        const float g = scale * grad[i] + wd * w[i];
        m[i] = beta1 * m[i] + (1 - beta1) * g;
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        w[i] -= step * m[i] / (std::sqrt(v[i]) + eps_hat);
      }
      return;
    }
    case OptimizerConfig::SGD:
    default:
      if (wd == 0) {
        const float s = lr * scale;
        for (size_t i = 0; i < n; ++i) w[i] -= s * grad[i];
      } else {
        for (size_t i = 0; i < n; ++i) w[i] -= lr * (scale * grad[i] + wd * w[i]);
      }
      return;
  }
}

}  // namespace tandem::pserver
