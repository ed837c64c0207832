#include "trainer/engine/sequence_decoder.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "trainer/data/parallel_text_dataset.h"

namespace tandem::trainer {
namespace {

using data::Vocabulary;

struct Hypothesis {
  std::vector<int32_t> tokens;  // starts with <s>
  double logp = 0;
  bool finished = false;
};

}  // namespace

absl::StatusOr<SequenceDecoder> SequenceDecoder::Create(Network& net) {
  SequenceDecoder d(net);
  const ModelGraph& g = net.graph();
  for (int i = 0; i < static_cast<int>(g.inputs.size()); ++i) {
    const InputDef& in = g.inputs[i];
    switch (in.source) {
      case InputSource::kSourceTokens:
        d.source_input_ = i;
        d.source_steps_ = in.shape.dim(0);
        break;
      case InputSource::kTokens:
        d.target_input_ = i;
        d.target_steps_ = in.shape.dim(0);
        break;
      case InputSource::kTokenTargets:
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "decoding: input '", in.name, "' (", InputSourceName(in.source),
            ") is not part of a sequence-to-sequence model (sourceTokens, tokens, tokenTargets)"));
    }
  }
  if (d.source_input_ < 0 || d.target_input_ < 0)
    return absl::InvalidArgumentError(
        "decoding needs a sourceTokens input and a tokens input (the decoder's <s> y)");
  const GraphLayer& cost = g.layers[g.cost_layer];
  const BlobDesc& logits = g.blobs[cost.inputs[0]];
  if (cost.config.type != "softmax_cross_entropy" || logits.kind != BlobKind::kSequence ||
      logits.shape.dim(0) != d.target_steps_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "decoding needs a softmax_cross_entropy cost over sequence logits [", d.target_steps_,
        ", vocabulary], got ", cost.config.type, " over ", logits.ToString()));
  }
  d.vocab_ = logits.shape.dim(1);
  if (d.vocab_ <= Vocabulary::kEos)
    return absl::InvalidArgumentError("decoding needs a target vocabulary with <s> and </s>");
  return d;
}

void SequenceDecoder::LogProbs(int64_t row, int64_t t, std::vector<float>* logp) const {
  const float* x = net_->cost_input(0).value.data() + (row * target_steps_ + t) * vocab_;
  logp->resize(static_cast<size_t>(vocab_));
  float mx = x[0];
  for (int64_t c = 1; c < vocab_; ++c) mx = std::max(mx, x[c]);
  double sum = 0;
  for (int64_t c = 0; c < vocab_; ++c) sum += std::exp(static_cast<double>(x[c] - mx));
  const float lse = mx + static_cast<float>(std::log(sum));
  for (int64_t c = 0; c < vocab_; ++c) (*logp)[c] = x[c] - lse;
}

absl::StatusOr<SequenceDecoder::Sequences> SequenceDecoder::Greedy(const Sequences& sources,
                                                                    int max_batch) {
  return Run(sources, 1, /*greedy=*/true, max_batch);
}

absl::StatusOr<SequenceDecoder::Sequences> SequenceDecoder::BeamSearch(const Sequences& sources,
                                                                        int beam, int max_batch) {
  return Run(sources, beam, /*greedy=*/false, max_batch);
}

absl::StatusOr<SequenceDecoder::Sequences> SequenceDecoder::Run(const Sequences& sources,
                                                                 int beam, bool greedy,
                                                                 int max_batch) {
  TANDEM_CHECK_GE(beam, 1);
  TANDEM_CHECK_GE(max_batch, 1);
  std::vector<std::vector<int32_t>> out(sources.size());
  for (size_t first = 0; first < sources.size(); first += static_cast<size_t>(max_batch)) {
    const size_t count = std::min(sources.size() - first, static_cast<size_t>(max_batch));
    absl::Status s = DecodeChunk(sources, first, count, beam, greedy, &out);
    if (!s.ok()) return s;
  }
  return out;
}

absl::Status SequenceDecoder::DecodeChunk(const Sequences& sources, size_t first, size_t count,
                                          int beam, bool greedy, Sequences* out) {
  const int64_t rows = static_cast<int64_t>(count) * beam;
  Network& net = *net_;
  net.SetBatchSize(rows);
  // Every example's source, once per beam row; the other id inputs padded.
  for (int i = 0; i < net.num_inputs(); ++i) {
    Blob& b = net.input(i);
    const bool src = i == source_input_;
    const int64_t steps = src ? source_steps_ : target_steps_;
    b.ids.assign(static_cast<size_t>(rows * steps), Vocabulary::kPad);
    b.lengths.assign(static_cast<size_t>(rows), 1);
    if (!src) continue;
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<int32_t>& s = sources[first + static_cast<size_t>(r / beam)];
      const int64_t len = std::min<int64_t>(static_cast<int64_t>(s.size()), source_steps_);
      std::copy(s.begin(), s.begin() + len, b.ids.begin() + r * steps);
      b.lengths[r] = static_cast<int32_t>(len);
    }
  }
  // The hook may rewrite the id inputs in place (the sparse path turns ids into row slots), so
  // every step refills them from here.
  const std::vector<int32_t> source_ids = net.input(source_input_).ids;
  // hyps[e][k]: example e's k-th hypothesis (row e * beam + k).
  std::vector<std::vector<Hypothesis>> hyps(count);
  for (auto& h : hyps) {
    h.resize(1);
    h[0].tokens = {Vocabulary::kBos};
  }
  StepContext ctx{.training = false, .step = 0, .seed = 1};
  std::vector<float> logp;
  struct Candidate {
    double logp;
    int parent;
    int32_t token;  // -1: the parent, finished, carried over
  };
  for (int64_t t = 0; t < target_steps_; ++t) {
    bool any_live = false;
    for (const auto& h : hyps)
      for (const Hypothesis& y : h) any_live |= !y.finished;
    if (!any_live) break;
    // Prefixes into the decoder input (finished or missing hypotheses just repeat a valid row).
    for (int i = 0; i < net.num_inputs(); ++i) {
      Blob& b = net.input(i);
      if (i == source_input_) {
        b.ids = source_ids;
        continue;
      }
      for (size_t e = 0; e < count; ++e) {
        for (int k = 0; k < beam; ++k) {
          const int64_t r = static_cast<int64_t>(e) * beam + k;
          const Hypothesis& y = hyps[e][std::min<size_t>(k, hyps[e].size() - 1)];
          const int64_t len = std::min<int64_t>(static_cast<int64_t>(y.tokens.size()), t + 1);
          if (i == target_input_) {
            auto row = b.ids.begin() + r * target_steps_;
            std::copy(y.tokens.begin(), y.tokens.begin() + len, row);
            std::fill(row + len, row + target_steps_, Vocabulary::kPad);
          }
          b.lengths[r] = static_cast<int32_t>(t + 1);
        }
      }
    }
    if (before_forward_) {
      absl::Status s = before_forward_();
      if (!s.ok()) return s;
    }
    // The source side is the same at every step: from step 1 on, only the layers that read the
    // decoder's inputs run again (the encoder's states are reused).
    if (t == 0) {
      net.Forward(ctx);
    } else {
      std::vector<int> changed;
      for (int i = 0; i < net.num_inputs(); ++i)
        if (i != source_input_) changed.push_back(i);
      net.ForwardDependents(changed, ctx);
    }
    for (size_t e = 0; e < count; ++e) {
      std::vector<Hypothesis>& h = hyps[e];
      if (greedy) {  // argmax, the lowest id on ties
        Hypothesis& y = h[0];
        if (y.finished) continue;
        LogProbs(static_cast<int64_t>(e), t, &logp);
        int32_t best = 0;
        for (int32_t c = 1; c < vocab_; ++c)
          if (logp[c] > logp[best]) best = c;
        y.logp += logp[best];
        y.tokens.push_back(best);
        y.finished = best == Vocabulary::kEos;
        continue;
      }
      std::vector<Candidate> cand;
      for (int k = 0; k < static_cast<int>(h.size()); ++k) {
        if (h[k].finished) {
          cand.push_back({h[k].logp, k, -1});
          continue;
        }
        LogProbs(static_cast<int64_t>(e) * beam + k, t, &logp);
        // This hypothesis' `beam` best tokens (no more can make the cut).
        std::vector<int32_t> ids(static_cast<size_t>(vocab_));
        for (int32_t c = 0; c < vocab_; ++c) ids[c] = c;
        std::partial_sort(ids.begin(), ids.begin() + std::min<int64_t>(beam, vocab_), ids.end(),
                          [&](int32_t a, int32_t b) {
                            return logp[a] != logp[b] ? logp[a] > logp[b] : a < b;
                          });
        for (int j = 0; j < beam && j < vocab_; ++j)
          cand.push_back({h[k].logp + logp[ids[j]], k, ids[j]});
      }
      std::stable_sort(cand.begin(), cand.end(),
                       [](const Candidate& a, const Candidate& b) { return a.logp > b.logp; });
      std::vector<Hypothesis> next;
      for (size_t j = 0; j < cand.size() && static_cast<int>(next.size()) < beam; ++j) {
        Hypothesis y = h[cand[j].parent];
        if (cand[j].token >= 0) {
          y.tokens.push_back(cand[j].token);
          y.logp = cand[j].logp;
          y.finished = cand[j].token == Vocabulary::kEos;
        }
        next.push_back(std::move(y));
      }
      h = std::move(next);
    }
  }
  for (size_t e = 0; e < count; ++e) {
    const std::vector<Hypothesis>& h = hyps[e];
    int best = -1;
    double best_score = -std::numeric_limits<double>::infinity();
    for (int pass = 0; pass < 2 && best < 0; ++pass) {  // finished ones first, else live ones
      for (int k = 0; k < static_cast<int>(h.size()); ++k) {
        if (pass == 0 && !h[k].finished) continue;
        const double score = h[k].logp / static_cast<double>(h[k].tokens.size() - 1);
        if (best < 0 || score > best_score) {
          best = k;
          best_score = score;
        }
      }
    }
    std::vector<int32_t> y(h[best].tokens.begin() + 1, h[best].tokens.end());
    if (!y.empty() && y.back() == Vocabulary::kEos) y.pop_back();
    (*out)[first + e] = std::move(y);
  }
  return absl::OkStatus();
}

}  // namespace tandem::trainer
