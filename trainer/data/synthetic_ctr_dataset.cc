#include "trainer/data/synthetic_ctr_dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_format.h"

namespace tandem::trainer::data {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
uint64_t Next(uint64_t* state) {
  *state += 0x9e3779b97f4a7c15ULL;
  uint64_t z = *state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
double Uniform(uint64_t* state) {  // [0, 1)
  return static_cast<double>(Next(state) >> 11) * 0x1.0p-53;
}

}  // namespace

SyntheticCtrGenerator::SyntheticCtrGenerator(const SyntheticCtrOptions& options) : o_(options) {
  // Rejection-inversion (Hormann & Derflinger 1996) for P(r) ~ r^-q over 1..kRanks.
  const double q = o_.zipf;
  auto h_int = [q](double x) { return (std::pow(x, 1 - q) - 1) / (1 - q); };
  auto h = [q](double x) { return std::pow(x, -q); };
  auto h_inv = [q](double y) { return std::pow(1 + y * (1 - q), 1 / (1 - q)); };
  h_x1_ = h_int(1.5) - 1;
  h_n_ = h_int(static_cast<double>(kRanks) + 0.5);
  s_ = 2 - h_inv(h_int(2.5) - h(2));
}

int64_t SyntheticCtrGenerator::DrawRank(uint64_t* state) const {
  const double q = o_.zipf;
  while (true) {
    const double u = h_n_ + Uniform(state) * (h_x1_ - h_n_);
    const double x = std::pow(1 + u * (1 - q), 1 / (1 - q));
    int64_t k = static_cast<int64_t>(x + 0.5);
    k = std::clamp<int64_t>(k, 1, kRanks);
    const double kd = static_cast<double>(k);
    if (kd - x <= s_ ||
        u >= (std::pow(kd + 0.5, 1 - q) - 1) / (1 - q) - std::pow(kd, -q))
      return k;
  }
}

uint64_t SyntheticCtrGenerator::IdOf(int field, int64_t rank) const {
  return Mix(o_.seed * 0x100000001b3ULL ^ Mix((static_cast<uint64_t>(field) << 40) ^
                                               static_cast<uint64_t>(rank)));
}

double SyntheticCtrGenerator::WeightOf(int field, int64_t rank) const {
  if (rank > kSignalRanks) return 0;
  // Box-Muller from two hashed uniforms: a fixed N(0, 1) per (seed, field, rank).
  uint64_t st = Mix(IdOf(field, rank) ^ 0x5bd1e995ULL);
  const double u1 = 1 - Uniform(&st), u2 = Uniform(&st);
  return kSignal * std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

void SyntheticCtrGenerator::Example(int64_t i, uint64_t* ids, float* probability,
                                    float* click) const {
  uint64_t st = Mix(Mix(o_.seed) ^ Mix(static_cast<uint64_t>(i) * 2 + (o_.test ? 1 : 0)));
  double logit = kBias;
  for (int f = 0; f < o_.num_fields; ++f) {
    const int64_t r = DrawRank(&st);
    ids[f] = IdOf(f, r);
    logit += WeightOf(f, r);
  }
  const double p = 1 / (1 + std::exp(-logit));
  *probability = static_cast<float>(p);
  *click = Uniform(&st) < p ? 1.f : 0.f;
}

double ExactAuc(const std::vector<float>& scores, const std::vector<float>& labels) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney: sum of positive ranks (ties get their mean rank).
  double pos = 0, neg = 0, rank_sum = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]] > 0.5f) {
        pos += 1;
        rank_sum += mean_rank;
      } else {
        neg += 1;
      }
    }
    i = j;
  }
  if (pos == 0 || neg == 0) return std::nan("");
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

absl::StatusOr<std::shared_ptr<const SyntheticCtrDataset>> SyntheticCtrDataset::Generate(
    const SyntheticCtrOptions& options) {
  if (options.examples < 1) return absl::InvalidArgumentError("synthetic-ctr: examples must be > 0");
  if (options.num_fields < 1) return absl::InvalidArgumentError("synthetic-ctr: numFields must be > 0");
  if (!(options.zipf > 1.0) || !(options.zipf <= 4.0))
    return absl::InvalidArgumentError("synthetic-ctr: zipf must be in (1, 4]");
  auto ds = std::shared_ptr<SyntheticCtrDataset>(new SyntheticCtrDataset());
  ds->o_ = options;
  ds->layout_.has_targets = true;
  ds->layout_.num_fields = options.pairs ? 2 : options.num_fields;
  const size_t n = static_cast<size_t>(options.examples);
  const size_t per = static_cast<size_t>(options.num_fields) * (options.pairs ? 2 : 1);
  ds->ids_.resize(n * per);
  ds->labels_.resize(n);
  ds->probs_.resize(n);
  SyntheticCtrGenerator gen(options);
  for (int64_t i = 0; i < options.examples; ++i) {
    const size_t k = static_cast<size_t>(i);
    if (!options.pairs) {
      gen.Example(i, ds->ids_.data() + k * per, &ds->probs_[k], &ds->labels_[k]);
      continue;
    }
    float pl = 0, pr = 0, unused = 0;
    gen.Example(2 * i, ds->ids_.data() + k * per, &pl, &unused);
    gen.Example(2 * i + 1, ds->ids_.data() + k * per + options.num_fields, &pr, &unused);
    auto logit = [](double p) { return std::log(p / (1 - p)); };
    const double p = 1 / (1 + std::exp(-(logit(pl) - logit(pr))));
    uint64_t st = Mix(Mix(options.seed + 17) ^ Mix(k * 2 + (options.test ? 1 : 0)));
    ds->probs_[k] = static_cast<float>(p);
    ds->labels_[k] = Uniform(&st) < p ? 1.f : 0.f;
  }
  ds->best_auc_ = ExactAuc(ds->probs_, ds->labels_);
  return std::shared_ptr<const SyntheticCtrDataset>(ds);
}

void SyntheticCtrDataset::Append(int64_t i, Batch* batch) const {
  const size_t row = static_cast<size_t>(batch->size);
  batch->targets[row] = labels_[static_cast<size_t>(i)];
  if (!batch->query_ids.empty()) batch->query_ids[row] = 0;
  if (o_.pairs) {  // field 0: left's bag, field 1: right's
    const uint64_t* ids = ids_.data() + static_cast<size_t>(i) * 2 * o_.num_fields;
    for (int side = 0; side < 2; ++side) {
      SparseField& sf = batch->fields[side];
      for (int f = 0; f < o_.num_fields; ++f) {
        sf.ids.push_back(ids[side * o_.num_fields + f]);
        sf.values.push_back(1.f);
      }
      sf.offsets.push_back(static_cast<int64_t>(sf.ids.size()));
    }
    ++batch->size;
    return;
  }
  const uint64_t* ids = ids_.data() + static_cast<size_t>(i) * o_.num_fields;
  for (int f = 0; f < o_.num_fields; ++f) {
    SparseField& sf = batch->fields[f];
    sf.ids.push_back(ids[f]);
    sf.values.push_back(1.f);
    sf.offsets.push_back(static_cast<int64_t>(sf.ids.size()));
  }
  ++batch->size;
}

double SyntheticCtrDataset::ClickRate() const {
  double s = 0;
  for (float l : labels_) s += l;
  return labels_.empty() ? 0 : s / static_cast<double>(labels_.size());
}

std::string SyntheticCtrDataset::Describe() const {
  return absl::StrFormat(
      "synthetic-ctr seed %d (%s): %d %s, %d fields, Zipf(%.2f) ids, %s rate %.3f, "
      "best achievable AUC %.4f",
      o_.seed, o_.test ? "test" : "train", size(), o_.pairs ? "pairs" : "examples",
      o_.num_fields, o_.zipf, o_.pairs ? "left-preferred" : "click", ClickRate(),
      best_auc_);
}

}  // namespace tandem::trainer::data
