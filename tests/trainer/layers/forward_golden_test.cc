// Forward values of every registered layer against a naive reference written here, found by
// iterating the registry: a layer registered without a reference in References() fails this test,
// so registering a layer adds its forward check (beside its gradient check,
// gradient_check_test.cc, which only shows that backward matches forward).
//
// Each reference is the layer's definition written the plainest way, in double precision, from
// its header's contract (and PyTorch's formulas where the header names them): loops over
// indices, no device, no packing, no caching. They share no code with the layers. Inputs and
// parameters are drawn from a fixed-seed generator, so every value is reproducible; the layer's
// output buffer is filled with NaN first, so an element the layer forgets to write fails too.
// Tolerance: float32 against double, |layer - reference| <= 1e-5 + 1e-4 * |reference|.
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/core/dropout_mask.h"
#include "trainer/layers/layer_registry.h"

namespace tandem::trainer {
namespace {

// One layer instance with filled inputs and parameters, as the reference sees it.
struct Case {
  std::string type;
  nlohmann::json attrs;           // the example's attributes (defaults are the reference's)
  std::vector<BlobDesc> in_desc;  // per example
  std::vector<Blob> in;
  std::vector<std::vector<float>> params;  // values before Forward, in AddParam order
  BlobDesc out_desc;
  int64_t n = 0;  // batch
  StepContext ctx;

  double Attr(const char* name, double fallback) const {
    return attrs.contains(name) ? attrs[name].get<double>() : fallback;
  }
  int64_t Int(const char* name, int64_t fallback) const {
    return attrs.contains(name) ? attrs[name].get<int64_t>() : fallback;
  }
  const float* X(size_t i) const { return in[i].value.data(); }
  // The example's target or label: ids when the input carries them, else the value.
  double Target(size_t i, int64_t e) const {
    return in[i].ids.empty() ? in[i].value.data()[e] : in[i].ids[e];
  }
};

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

using Reference = std::function<std::vector<double>(const Case&)>;

std::vector<double> Elementwise(const Case& c, double (*f)(double)) {
  std::vector<double> y(c.in[0].value.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = f(c.X(0)[i]);
  return y;
}

// y = x W + b, W [in, size] row-major; sequences: every step of every example (padding too).
std::vector<double> Fc(const Case& c) {
  const int64_t size = c.Int("size", 0);
  const int64_t rows = c.in_desc[0].kind == BlobKind::kSequence ? c.n * c.in_desc[0].shape.dim(0)
                                                                 : c.n;
  const int64_t k_in = c.in[0].value.size() / rows;
  const bool bias = c.attrs.value("bias", true);
  std::vector<double> y(rows * size);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < size; ++j) {
      double s = bias ? c.params[1][j] : 0.0;
      for (int64_t k = 0; k < k_in; ++k)
        s += double(c.X(0)[r * k_in + k]) * c.params[0][k * size + j];
      y[r * size + j] = s;
    }
  return y;
}

int64_t Pair(const Case& c, const char* name, int64_t fallback) { return c.Int(name, fallback); }

// Grouped, strided, padded cross-correlation: x [N,C,H,W], w [O, C/groups, KH, KW], b [O].
std::vector<double> Conv2d(const Case& c) {
  const Shape& s = c.in_desc[0].shape;
  const int64_t ch = s.dim(0), h = s.dim(1), w = s.dim(2);
  const int64_t o_ch = c.Int("numFilters", 0), k = Pair(c, "filterSize", 1);
  const int64_t stride = Pair(c, "stride", 1), pad = Pair(c, "padding", 0);
  const int64_t groups = c.Int("groups", 1);
  const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  const int64_t cg = ch / groups, og = o_ch / groups;
  const bool bias = c.attrs.value("bias", true);
  std::vector<double> y(c.n * o_ch * oh * ow);
  for (int64_t e = 0; e < c.n; ++e)
    for (int64_t o = 0; o < o_ch; ++o)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double sum = bias ? c.params[1][o] : 0.0;
          const int64_t g = o / og;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t a = 0; a < k; ++a)
              for (int64_t b = 0; b < k; ++b) {
                const int64_t r = i * stride - pad + a, q = j * stride - pad + b;
                if (r < 0 || r >= h || q < 0 || q >= w) continue;
                sum += double(c.X(0)[((e * ch + g * cg + ci) * h + r) * w + q]) *
                       c.params[0][((o * cg + ci) * k + a) * k + b];
              }
          y[((e * o_ch + o) * oh + i) * ow + j] = sum;
        }
  return y;
}

// Max, or the mean of the window's elements inside the input (padding excluded).
std::vector<double> Pool(const Case& c, bool max) {
  const Shape& s = c.in_desc[0].shape;
  const int64_t ch = s.dim(0), h = s.dim(1), w = s.dim(2);
  const int64_t k = Pair(c, "poolSize", 2), pad = Pair(c, "padding", 0);
  const int64_t stride = Pair(c, "stride", k);
  const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  std::vector<double> y(c.n * ch * oh * ow);
  for (int64_t p = 0; p < c.n * ch; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        double best = -std::numeric_limits<double>::infinity(), sum = 0;
        int count = 0;
        for (int64_t a = 0; a < k; ++a)
          for (int64_t b = 0; b < k; ++b) {
            const int64_t r = i * stride - pad + a, q = j * stride - pad + b;
            if (r < 0 || r >= h || q < 0 || q >= w) continue;
            const double v = c.X(0)[(p * h + r) * w + q];
            best = std::max(best, v);
            sum += v;
            ++count;
          }
        y[(p * oh + i) * ow + j] = max ? best : sum / count;
      }
  return y;
}

// Softmax over the last dimension of each row.
std::vector<double> Softmax(const Case& c) {
  const int64_t cols = c.in_desc[0].shape.dim(c.in_desc[0].shape.rank() - 1);
  std::vector<double> y(c.in[0].value.size());
  for (size_t r = 0; r < y.size() / cols; ++r) {
    double z = 0;
    for (int64_t j = 0; j < cols; ++j) z += std::exp(double(c.X(0)[r * cols + j]));
    for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = std::exp(double(c.X(0)[r * cols + j])) / z;
  }
  return y;
}

// Training: element i kept (scaled by 1 / (1 - rate)) where the shared mask function says so.
std::vector<double> Dropout(const Case& c) {
  const double rate = c.Attr("rate", 0.5);
  std::vector<double> y(c.in[0].value.size());
  const uint64_t key = DropoutKey(c.ctx.seed, std::hash<std::string>()(c.type), c.ctx.step);
  for (size_t i = 0; i < y.size(); ++i) {
    const bool keep = !c.ctx.training ||
                      DropoutKeep(key, static_cast<int64_t>(i), static_cast<float>(rate));
    y[i] = keep ? c.X(0)[i] / (c.ctx.training ? 1 - rate : 1.0) : 0.0;
  }
  return y;
}

// Per channel over the batch and spatial positions: training normalises with the batch's mean
// and (biased) variance, inference with the running statistics.
std::vector<double> BatchNorm(const Case& c) {
  const int64_t ch = c.in_desc[0].shape.dim(0);
  const int64_t spatial = c.in_desc[0].shape.NumElements() / ch;
  const double eps = c.Attr("epsilon", 1e-5);
  std::vector<double> y(c.in[0].value.size());
  for (int64_t k = 0; k < ch; ++k) {
    double mean = c.params[2][k], var = c.params[3][k];
    if (c.ctx.training) {
      double sum = 0, sq = 0;
      for (int64_t e = 0; e < c.n; ++e)
        for (int64_t p = 0; p < spatial; ++p) sum += c.X(0)[(e * ch + k) * spatial + p];
      mean = sum / (c.n * spatial);
      for (int64_t e = 0; e < c.n; ++e)
        for (int64_t p = 0; p < spatial; ++p)
          sq += std::pow(c.X(0)[(e * ch + k) * spatial + p] - mean, 2);
      var = sq / (c.n * spatial);
    }
    for (int64_t e = 0; e < c.n; ++e)
      for (int64_t p = 0; p < spatial; ++p) {
        const int64_t i = (e * ch + k) * spatial + p;
        y[i] = c.params[0][k] * (c.X(0)[i] - mean) / std::sqrt(var + eps) + c.params[1][k];
      }
  }
  return y;
}

// Multi-hot fields: the sum (or mean) of the rows of the field's ids, zero for no ids.
std::vector<double> Embedding(const Case& c) {
  const int64_t size = c.Int("size", 0), vocab = c.Int("vocabSize", 0);
  const bool mean = c.attrs.value("pooling", "sum") == "mean";
  const Blob& b = c.in[0];
  const int64_t rows = static_cast<int64_t>(b.offsets.size()) - 1;
  std::vector<double> y(rows * size, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t count = b.offsets[r + 1] - b.offsets[r];
    for (int32_t k = b.offsets[r]; k < b.offsets[r + 1]; ++k)
      for (int64_t j = 0; j < size; ++j)
        y[r * size + j] += double(c.params[0][(b.ids[k] % vocab) * size + j]) / (mean ? count : 1);
  }
  return y;
}

// Inputs side by side, per example.
std::vector<double> Concat(const Case& c) {
  std::vector<double> y;
  for (int64_t e = 0; e < c.n; ++e)
    for (size_t i = 0; i < c.in.size(); ++i) {
      const int64_t width = c.in_desc[i].shape.NumElements();
      for (int64_t j = 0; j < width; ++j) y.push_back(c.X(i)[e * width + j]);
    }
  return y;
}

std::vector<double> Slice(const Case& c) {
  const int64_t begin = c.Int("begin", 0), size = c.Int("size", 0);
  const int64_t width = c.in_desc[0].shape.NumElements();
  std::vector<double> y;
  for (int64_t e = 0; e < c.n; ++e)
    for (int64_t j = begin; j < begin + size; ++j) y.push_back(c.X(0)[e * width + j]);
  return y;
}

// x [N, T, C] -> for step t of example e, the projection x_t W + b (W [C, gates * size]).
double Project(const Case& c, const std::vector<float>& w, const std::vector<float>& b,
               int64_t e, int64_t t, int64_t col, int64_t cols) {
  const int64_t steps = c.in_desc[0].shape.dim(0), in = c.in_desc[0].shape.dim(1);
  double s = b[col];
  for (int64_t k = 0; k < in; ++k)
    s += double(c.X(0)[(e * steps + t) * in + k]) * w[k * cols + col];
  return s;
}

// h_prev U (U [size, gates * size]).
double Recur(const std::vector<double>& h, const std::vector<float>& u, int64_t col, int64_t cols) {
  double s = 0;
  for (size_t k = 0; k < h.size(); ++k) s += h[k] * u[k * cols + col];
  return s;
}

// PyTorch's LSTM, gates i, f, g, o; h0 = c0 = 0; padding steps are zero.
std::vector<double> Lstm(const Case& c) {
  const int64_t hs = c.Int("size", 0), steps = c.in_desc[0].shape.dim(0), cols = 4 * hs;
  std::vector<double> y(c.n * steps * hs, 0.0);
  for (int64_t e = 0; e < c.n; ++e) {
    std::vector<double> h(hs, 0.0), cell(hs, 0.0), next(hs);
    for (int64_t t = 0; t < c.in[0].lengths[e]; ++t) {
      for (int64_t j = 0; j < hs; ++j) {
        auto gate = [&](int q) {
          return Project(c, c.params[0], c.params[2], e, t, q * hs + j, cols) +
                 Recur(h, c.params[1], q * hs + j, cols);
        };
        const double i = Sigmoid(gate(0)), f = Sigmoid(gate(1)), g = std::tanh(gate(2));
        const double o = Sigmoid(gate(3));
        cell[j] = f * cell[j] + i * g;
        next[j] = o * std::tanh(cell[j]);
      }
      h = next;
      for (int64_t j = 0; j < hs; ++j) y[(e * steps + t) * hs + j] = h[j];
    }
  }
  return y;
}

// PyTorch's GRU, gates r, z, n, with separate input and recurrent biases; h0 = 0.
std::vector<double> Gru(const Case& c) {
  const int64_t hs = c.Int("size", 0), steps = c.in_desc[0].shape.dim(0), cols = 3 * hs;
  const std::vector<float> no_bias(cols, 0.f);
  std::vector<double> y(c.n * steps * hs, 0.0);
  for (int64_t e = 0; e < c.n; ++e) {
    std::vector<double> h(hs, 0.0), next(hs);
    for (int64_t t = 0; t < c.in[0].lengths[e]; ++t) {
      for (int64_t j = 0; j < hs; ++j) {
        auto input = [&](int q) {
          return Project(c, c.params[0], c.params[2], e, t, q * hs + j, cols);
        };
        auto hidden = [&](int q) {
          return Recur(h, c.params[1], q * hs + j, cols) + c.params[3][q * hs + j];
        };
        const double r = Sigmoid(input(0) + hidden(0)), z = Sigmoid(input(1) + hidden(1));
        const double nn = std::tanh(input(2) + r * hidden(2));
        next[j] = (1 - z) * nn + z * h[j];
      }
      h = next;
      for (int64_t j = 0; j < hs; ++j) y[(e * steps + t) * hs + j] = h[j];
    }
  }
  return y;
}

// -log p(label) with p the softmax of the logits.
std::vector<double> SoftmaxCrossEntropy(const Case& c) {
  const std::vector<double> p = Softmax(c);
  const int64_t classes = c.in_desc[0].shape.dim(0);
  std::vector<double> y(c.n);
  for (int64_t e = 0; e < c.n; ++e)
    y[e] = -std::log(p[e * classes + static_cast<int64_t>(c.Target(1, e))]);
  return y;
}

// The logistic cost as its definition reads: -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))).
std::vector<double> BinaryCrossEntropy(const Case& c) {
  std::vector<double> y(c.n);
  for (int64_t e = 0; e < c.n; ++e) {
    const double p = Sigmoid(c.X(0)[e]), t = c.Target(1, e);
    y[e] = -(t * std::log(p) + (1 - t) * std::log(1 - p));
  }
  return y;
}

std::vector<double> RankCost(const Case& c) {
  const double margin = c.Attr("margin", 0.1);
  std::vector<double> y(c.n);
  for (int64_t e = 0; e < c.n; ++e) {
    const double s = c.Target(2, e) > 0.5 ? 1.0 : -1.0;
    y[e] = std::max(0.0, margin - s * (double(c.X(0)[e]) - c.X(1)[e]));
  }
  return y;
}

// Attention: context_i = sum_j softmax_j(score(q_i, k_j)) k_j over j < memory length, for
// i < query length; zero elsewhere (and for an empty memory).
std::vector<double> Attention(const Case& c, bool additive) {
  const int64_t tq = c.in_desc[0].shape.dim(0), hq = c.in_desc[0].shape.dim(1);
  const int64_t tk = c.in_desc[1].shape.dim(0), hk = c.in_desc[1].shape.dim(1);
  const int64_t a = additive ? c.Int("size", 0) : 0;
  const double scale = c.attrs.value("scaled", false) ? 1.0 / std::sqrt(double(hk)) : 1.0;
  std::vector<double> y(c.n * tq * hk, 0.0);
  for (int64_t e = 0; e < c.n; ++e) {
    const int64_t lq = c.in[0].lengths[e], lk = c.in[1].lengths[e];
    for (int64_t i = 0; i < lq && lk > 0; ++i) {
      const float* q = c.X(0) + (e * tq + i) * hq;
      std::vector<double> score(lk);
      for (int64_t j = 0; j < lk; ++j) {
        const float* k = c.X(1) + (e * tk + j) * hk;
        double s = 0;
        if (additive) {
          for (int64_t u = 0; u < a; ++u) {
            double z = 0;
            for (int64_t d = 0; d < hq; ++d) z += double(q[d]) * c.params[0][d * a + u];
            for (int64_t d = 0; d < hk; ++d) z += double(k[d]) * c.params[1][d * a + u];
            s += c.params[2][u] * std::tanh(z);
          }
        } else {
          for (int64_t d = 0; d < hk; ++d) s += double(q[d]) * k[d];
          s *= scale;
        }
        score[j] = s;
      }
      const double mx = *std::max_element(score.begin(), score.end());
      double sum = 0;
      for (double& s : score) sum += (s = std::exp(s - mx));
      for (int64_t j = 0; j < lk; ++j)
        for (int64_t d = 0; d < hk; ++d)
          y[(e * tq + i) * hk + d] += score[j] / sum * c.X(1)[(e * tk + j) * hk + d];
    }
  }
  return y;
}

// Each example's valid steps in reverse order, zero padding.
std::vector<double> ReverseSequence(const Case& c) {
  const int64_t steps = c.in_desc[0].shape.dim(0), ch = c.in_desc[0].shape.dim(1);
  std::vector<double> y(c.n * steps * ch, 0.0);
  for (int64_t e = 0; e < c.n; ++e) {
    const int64_t len = c.in[0].lengths[e];
    for (int64_t t = 0; t < len; ++t)
      for (int64_t d = 0; d < ch; ++d)
        y[(e * steps + t) * ch + d] = c.X(0)[(e * steps + len - 1 - t) * ch + d];
  }
  return y;
}

std::vector<double> LastStep(const Case& c) {
  const int64_t steps = c.in_desc[0].shape.dim(0), ch = c.in_desc[0].shape.dim(1);
  std::vector<double> y(c.n * ch, 0.0);
  for (int64_t e = 0; e < c.n; ++e) {
    const int64_t len = c.in[0].lengths[e];
    for (int64_t d = 0; len > 0 && d < ch; ++d)
      y[e * ch + d] = c.X(0)[(e * steps + len - 1) * ch + d];
  }
  return y;
}

std::vector<double> SequenceExpand(const Case& c) {
  const int64_t ch = c.in_desc[0].shape.dim(0), steps = c.in_desc[1].shape.dim(0);
  std::vector<double> y(c.n * steps * ch, 0.0);
  for (int64_t e = 0; e < c.n; ++e)
    for (int64_t t = 0; t < c.in[1].lengths[e]; ++t)
      for (int64_t d = 0; d < ch; ++d) y[(e * steps + t) * ch + d] = c.X(0)[e * ch + d];
  return y;
}

const std::map<std::string, Reference>& References() {
  static const auto* refs = new std::map<std::string, Reference>{
      {"fc", Fc},
      {"conv2d", Conv2d},
      {"max_pool", [](const Case& c) { return Pool(c, true); }},
      {"avg_pool", [](const Case& c) { return Pool(c, false); }},
      {"relu",
       [](const Case& c) { return Elementwise(c, [](double x) { return std::max(x, 0.0); }); }},
      {"sigmoid", [](const Case& c) { return Elementwise(c, Sigmoid); }},
      {"tanh", [](const Case& c) { return Elementwise(c, [](double x) { return std::tanh(x); }); }},
      {"softmax", Softmax},
      {"dropout", Dropout},
      {"batch_norm", BatchNorm},
      {"embedding", Embedding},
      {"concat", Concat},
      {"slice", Slice},
      {"lstm", Lstm},
      {"gru", Gru},
      {"softmax_cross_entropy", SoftmaxCrossEntropy},
      {"binary_cross_entropy", BinaryCrossEntropy},
      {"rank_cost", RankCost},
      {"dot_attention", [](const Case& c) { return Attention(c, false); }},
      {"additive_attention", [](const Case& c) { return Attention(c, true); }},
      {"reverse_sequence", ReverseSequence},
      {"last_step", LastStep},
      {"sequence_expand", SequenceExpand},
  };
  return *refs;
}

// Builds `type` from its registry example, fills inputs and parameters from `rng`.
struct Instance {
  std::unique_ptr<Device> device = CreateCpuDevice({.threads = 1});
  std::unique_ptr<Layer> layer;
  std::vector<Param> params;
  Blob out;
  Case c;

  void Build(const std::string& type, std::mt19937& rng) {
    const LayerExample& ex = LayerRegistry::Builtin().Example(type);
    layer = *LayerRegistry::Builtin().Create(type);
    LayerConfig config{.name = type, .type = type, .attrs = ex.attrs};
    for (size_t i = 0; i < ex.inputs.size(); ++i) config.inputs.push_back(absl::StrCat("x", i));
    LayerSetup setup(config, ex.inputs);
    c.out_desc = layer->Setup(setup);
    ASSERT_TRUE(setup.ok()) << setup.attrs().errors()[0].ToString();
    std::uniform_real_distribution<float> value(-1.5f, 1.5f);
    params.resize(setup.params().size());
    for (size_t k = 0; k < params.size(); ++k) {
      Param& p = params[k];
      p.desc = setup.params()[k];
      p.value.Resize(*device, p.desc.shape);
      p.grad.Resize(*device, p.desc.shape);
      for (int64_t i = 0; i < p.value.size(); ++i) p.value.data()[i] = 0.5f * value(rng);
      if (p.desc.name == "running_var")  // a variance: positive
        for (int64_t i = 0; i < p.value.size(); ++i)
          p.value.data()[i] = std::abs(p.value.data()[i]) + 0.1f;
      if (p.desc.sparse) p.row_slot.assign(p.desc.shape.dim(0), -1);
      layer->params().push_back(&p);
      c.params.emplace_back(p.value.data(), p.value.data() + p.value.size());
    }
    ASSERT_TRUE(layer->Init(*device).ok());
    c.type = type;
    c.attrs = ex.attrs;
    c.in_desc = ex.inputs;
    c.n = ex.batch;
    c.in.resize(ex.inputs.size());
    const int64_t vocab = std::max<int64_t>(ex.vocab, 1);
    std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab) - 1);
    for (size_t i = 0; i < ex.inputs.size(); ++i) {
      const BlobDesc& d = ex.inputs[i];
      Blob& b = c.in[i];
      if (d.kind == BlobKind::kDense || d.kind == BlobKind::kSequence) {
        b.value.Resize(*device, d.shape.WithBatch(c.n));
        for (int64_t k = 0; k < b.value.size(); ++k) b.value.data()[k] = value(rng);
      }
      if (d.kind == BlobKind::kSequence || d.kind == BlobKind::kSequenceIds) {
        for (int64_t e = 0; e < c.n; ++e)  // the full length, then shorter ones (never 0)
          b.lengths.push_back(static_cast<int32_t>(std::max<int64_t>(1, d.shape.dim(0) - 2 * e)));
      }
      if (d.kind == BlobKind::kLabel) {
        for (int64_t e = 0; e < c.n; ++e) b.ids.push_back(id(rng));
      }
      if (d.kind == BlobKind::kSequenceIds) {
        for (int64_t k = 0; k < c.n * d.shape.dim(0); ++k) b.ids.push_back(id(rng));
      }
      if (d.kind == BlobKind::kIds) {  // fields with 0, 1, 2 or 3 ids
        b.offsets.push_back(0);
        for (int64_t f = 0; f < c.n * d.shape.dim(0); ++f) {
          for (int64_t k = 0; k < f % 4; ++k) b.ids.push_back(id(rng));
          b.offsets.push_back(static_cast<int32_t>(b.ids.size()));
        }
      }
    }
    out.value.Resize(*device, c.out_desc.shape.WithBatch(c.n));
  }

  // Runs Forward on a NaN-filled output and compares it with the reference.
  void Check(const StepContext& ctx) {
    c.ctx = ctx;
    for (int64_t i = 0; i < out.value.size(); ++i) out.value.data()[i] = std::nanf("");
    LayerInputs in;
    for (const Blob& b : c.in) in.push_back(&b);
    layer->Forward(in, out, ctx);
    const std::vector<double> want = References().at(c.type)(c);
    ASSERT_EQ(want.size(), static_cast<size_t>(out.value.size()));
    int failures = 0;
    for (size_t i = 0; i < want.size() && failures < 5; ++i) {
      const double got = out.value.data()[i];
      if (!(std::abs(got - want[i]) <= 1e-5 + 1e-4 * std::abs(want[i]))) {
        ADD_FAILURE() << c.type << (ctx.training ? " (training)" : " (inference)") << " output["
                      << i << "]: " << got << ", reference " << want[i];
        ++failures;
      }
    }
    // What Forward changed in the parameters (batch-norm's running statistics) is the state the
    // next reference reads.
    for (size_t k = 0; k < params.size(); ++k)
      c.params[k].assign(params[k].value.data(), params[k].value.data() + params[k].value.size());
  }
};

TEST(ForwardGoldenTest, EveryRegisteredLayerMatchesItsReference) {
  const std::vector<std::string> types = LayerRegistry::Builtin().Types();
  ASSERT_GE(types.size(), 18u);
  for (const std::string& type : types) {
    SCOPED_TRACE("layer type " + type);
    ASSERT_TRUE(References().count(type))
        << "layer '" << type << "' has no forward reference: add one to References() in "
        << "tests/trainer/layers/forward_golden_test.cc";
    std::mt19937 rng(7);
    Instance inst;
    inst.Build(type, rng);
    if (HasFatalFailure()) return;
    inst.Check({.training = true, .step = 11, .seed = 5});
    inst.Check({.training = false, .step = 12, .seed = 5});
  }
}

// Batch norm's training pass also moves its running statistics: mean and unbiased variance,
// blended with momentum.
TEST(ForwardGoldenTest, BatchNormUpdatesRunningStatistics) {
  std::mt19937 rng(9);
  Instance inst;
  inst.Build("batch_norm", rng);
  const std::vector<std::vector<float>> before = inst.c.params;
  inst.Check({.training = true, .step = 1, .seed = 1});
  const double momentum = inst.c.Attr("momentum", 0.9);
  const int64_t ch = inst.c.in_desc[0].shape.dim(0);
  const int64_t spatial = inst.c.in_desc[0].shape.NumElements() / ch;
  const int64_t m = inst.c.n * spatial;
  for (int64_t k = 0; k < ch; ++k) {
    std::vector<double> v;
    for (int64_t e = 0; e < inst.c.n; ++e)
      for (int64_t p = 0; p < spatial; ++p) v.push_back(inst.c.X(0)[(e * ch + k) * spatial + p]);
    double mean = 0, sq = 0;
    for (double x : v) mean += x / m;
    for (double x : v) sq += (x - mean) * (x - mean);
    EXPECT_NEAR(inst.params[2].value.data()[k], momentum * before[2][k] + (1 - momentum) * mean,
                1e-5);
    EXPECT_NEAR(inst.params[3].value.data()[k],
                momentum * before[3][k] + (1 - momentum) * sq / (m - 1), 1e-5);
  }
}

// Two values worked out by hand, so that the references above are anchored too.
TEST(ForwardGoldenTest, HandComputedValues) {
  std::mt19937 rng(1);
  Instance fc;
  fc.Build("fc", rng);  // x [2, 2] -> 3 outputs
  std::vector<float> weights(4 * 3, 0.f);
  weights[0 * 3 + 0] = 1.f;   // y0 = x0
  weights[3 * 3 + 2] = -2.f;  // y2 = -2 x3
  std::copy(weights.begin(), weights.end(), fc.params[0].value.data());
  const float bias[3] = {0.5f, 0.25f, 0.f};
  std::copy(bias, bias + 3, fc.params[1].value.data());
  const float x[4] = {1.f, 2.f, 3.f, 4.f};
  std::copy(x, x + 4, fc.c.in[0].value.data());
  LayerInputs in{&fc.c.in[0]};
  fc.layer->Forward(in, fc.out, {});
  EXPECT_FLOAT_EQ(fc.out.value.data()[0], 1.5f);   // 1 + 0.5
  EXPECT_FLOAT_EQ(fc.out.value.data()[1], 0.25f);  // bias only
  EXPECT_FLOAT_EQ(fc.out.value.data()[2], -8.f);   // -2 * 4

  Instance ce;
  ce.Build("softmax_cross_entropy", rng);  // 4 classes
  for (int64_t e = 0; e < ce.c.n; ++e) {
    for (int j = 0; j < 4; ++j) ce.c.in[0].value.data()[e * 4 + j] = 0.f;  // uniform: p = 1/4
    ce.c.in[1].ids[e] = static_cast<int32_t>(e % 4);
  }
  LayerInputs ce_in{&ce.c.in[0], &ce.c.in[1]};
  ce.layer->Forward(ce_in, ce.out, {});
  for (int64_t e = 0; e < ce.c.n; ++e) EXPECT_NEAR(ce.out.value.data()[e], std::log(4.0), 1e-6);
}

}  // namespace
}  // namespace tandem::trainer
