#include "trainer/model/memory_estimate.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::trainer {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Saturating: a hostile shape (a layer of 10^12 units) must give "too big", not a wrapped number.
int64_t Mul(int64_t a, int64_t b) {
  if (a <= 0 || b <= 0) return 0;
  return a > kMax / b ? kMax : a * b;
}
int64_t Add(int64_t a, int64_t b) { return a > kMax - b ? kMax : a + b; }

int64_t Elements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s.dims()) n = Mul(n, d);
  return n;
}

const char* OptimizerName(OptimizerType t) {
  switch (t) {
    case OptimizerType::kSgd: return "sgd";
    case OptimizerType::kMomentum: return "momentum";
    case OptimizerType::kAdam: return "adam";
    case OptimizerType::kAdagrad: return "adagrad";
  }
  return "?";
}

}  // namespace

int OptimizerSlots(OptimizerType type) {
  switch (type) {
    case OptimizerType::kSgd: return 0;
    case OptimizerType::kMomentum: return 1;
    case OptimizerType::kAdagrad: return 1;
    case OptimizerType::kAdam: return 2;
  }
  return 0;
}

MemoryEstimate EstimateTrainerMemory(const ModelGraph& graph, OptimizerType optimizer,
                                     int batch_size, const MemoryEstimateOptions& options) {
  MemoryEstimate m;
  m.optimizer_name = OptimizerName(optimizer);
  m.batch_size = batch_size;
  const int64_t bytes = sizeof(float);
  for (const GraphLayer& l : graph.layers) {
    for (const ParamDesc& p : l.params) {
      // A remote table's rows for one batch are counted with the activations' order of size
      // and left out here (a lower bound).
      if (p.sparse && options.remote_sparse) {
        m.remote_sparse = true;
        continue;
      }
      const int64_t b = Mul(Elements(p.shape), bytes);
      m.parameter_bytes = Add(m.parameter_bytes, b);
      if (!p.trainable) continue;
      if (!p.sparse && options.remote_dense_optimizer) m.remote_dense_optimizer = true;
      if (p.sparse || !options.remote_dense_optimizer)
        m.optimizer_state_bytes = Add(m.optimizer_state_bytes, Mul(b, OptimizerSlots(optimizer)));
      // Sparse (embedding) gradients hold only the rows a batch touched: not counted.
      if (!p.sparse) m.gradient_bytes = Add(m.gradient_bytes, b);
    }
  }
  // Inputs are held once; every layer output also has a gradient of its size (dense kinds).
  for (size_t i = 0; i < graph.blobs.size(); ++i) {
    const BlobDesc& d = graph.blobs[i];
    const int64_t b = Mul(Mul(Elements(d.shape), batch_size), bytes);
    const bool input = i < graph.inputs.size();
    const bool dense = d.kind == BlobKind::kDense || d.kind == BlobKind::kSequence;
    m.activation_bytes = Add(m.activation_bytes, Mul(b, !input && dense ? 2 : 1));
  }
  return m;
}

std::string FormatBytes(int64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return absl::StrCat(bytes, " B");
  return absl::StrFormat("%.3g %s", v, kUnits[u]);
}

std::string MemoryEstimate::Explain() const {
  return absl::StrCat("at least ", FormatBytes(total_bytes()), ": parameters ",
                      FormatBytes(parameter_bytes), ", gradients ", FormatBytes(gradient_bytes),
                      ", optimizer state ", FormatBytes(optimizer_state_bytes), " (",
                      optimizer_name, "), activations ", FormatBytes(activation_bytes), " (batch ",
                      batch_size, ")",
                      remote_sparse ? "; embedding tables are on the pservers, not counted" : "",
                      remote_dense_optimizer ? "; dense optimizer state is on the pservers, not counted" : "");
}

}  // namespace tandem::trainer
