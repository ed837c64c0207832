#include "trainer/optim/optimizer.h"

#include <algorithm>
#include <cmath>

#include "trainer/backend/cpu/cpu_kernels.h"

namespace tandem::trainer {

Optimizer::Optimizer(const OptimizerConfig& config, std::vector<Param>& params, Device& device)
    : config_(config), params_(params), device_(device) {
  m_.resize(params_.size());
  v_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Shape& s = params_[i].desc.shape;
    if (!params_[i].desc.trainable || params_[i].remote) continue;
    if (config_.type != OptimizerType::kSgd) {
      m_[i].Resize(device_, s);
      device_.Fill(m_[i].size(), 0.f, m_[i].data());
    }
    if (config_.type == OptimizerType::kAdam) {
      v_[i].Resize(device_, s);
      device_.Fill(v_[i].size(), 0.f, v_[i].data());
    }
  }
}

std::vector<Tensor*> Optimizer::State() {
  std::vector<Tensor*> out;
  for (auto* vec : {&m_, &v_})
    for (Tensor& t : *vec)
      if (!t.empty()) out.push_back(&t);
  return out;
}

void Optimizer::UpdateRange(Param& p, int64_t begin, int64_t n, const float* g, float lr,
                            int slot) {
  float* w = p.value.data();
  const float wd = static_cast<float>(config_.weight_decay);
  switch (config_.type) {
    case OptimizerType::kSgd:
      cpu::SgdUpdate(n, lr, wd, g, w + begin);
      break;
    case OptimizerType::kMomentum:
      cpu::MomentumUpdate(n, lr, static_cast<float>(config_.momentum), wd, g,
                          m_[slot].data() + begin, w + begin);
      break;
    case OptimizerType::kAdam:
      cpu::AdamUpdate(n, lr / bc1_, static_cast<float>(config_.beta1),
                      static_cast<float>(config_.beta2), static_cast<float>(config_.epsilon),
                      1.f / std::sqrt(bc2_), wd, g, m_[slot].data() + begin,
                      v_[slot].data() + begin, w + begin);
      break;
    case OptimizerType::kAdagrad:
      cpu::AdagradUpdate(n, lr, static_cast<float>(config_.epsilon), wd, g,
                         m_[slot].data() + begin, w + begin);
      break;
  }
}

void Optimizer::Step(int64_t step, int64_t total_steps) {
  const float lr = static_cast<float>(LearningRate(step, total_steps));
  ++updates_;
  if (config_.type == OptimizerType::kAdam) {
    bc1_ = 1.f - static_cast<float>(std::pow(config_.beta1, static_cast<double>(updates_)));
    bc2_ = 1.f - static_cast<float>(std::pow(config_.beta2, static_cast<double>(updates_)));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = params_[i];
    if (!p.desc.trainable || p.remote) continue;  // remote: the pserver's optimizer updates it
    if (!p.desc.sparse) {
      UpdateRange(p, 0, p.value.size(), p.grad.data(), lr, static_cast<int>(i));
      continue;
    }
    const int64_t cols = p.desc.shape.NumElements() / p.desc.shape.dim(0);
    // Only the rows this batch touched, from the compact gradient (row k belongs to table row
    // touched_rows[k]); then the rows are released for the next backward. Distinct rows: split
    // across threads when there is enough of them.
    const int64_t touched = static_cast<int64_t>(p.touched_rows.size());
#pragma omp parallel for schedule(static) if (touched * cols >= 65536)
    for (int64_t k = 0; k < touched; ++k) {
      const int64_t row = p.touched_rows[k];
      UpdateRange(p, row * cols, cols, p.grad.data() + k * cols, lr, static_cast<int>(i));
      p.row_slot[row] = -1;
    }
    p.touched_rows.clear();
  }
}

}  // namespace tandem::trainer
