#include "trainer/engine/batch_feeder.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace tandem::trainer {

absl::Status BatchFeeder::CheckLayout(const ModelGraph& graph, const data::BatchLayout& layout,
                                      const std::string& what) {
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    const InputDef& in = graph.inputs[i];
    const std::string p = absl::StrCat("spec.model.inputs[", i, "] (", in.name, ")");
    switch (in.source) {
      case InputSource::kFeatures:
        if (layout.feature_shape.empty())
          return absl::InvalidArgumentError(
              absl::StrCat(p, ": the ", what, " data has no dense features"));
        if (Shape(layout.feature_shape).NumElements() != in.shape.NumElements())
          return absl::InvalidArgumentError(
              absl::StrCat(p, ": shape ", in.shape.ToString(), " does not match the ", what,
                           " data's features ", Shape(layout.feature_shape).ToString()));
        break;
      case InputSource::kLabels:
        if (!layout.has_labels)
          return absl::InvalidArgumentError(absl::StrCat(p, ": the ", what, " data has no labels"));
        break;
      case InputSource::kTargets:
        if (!layout.has_targets)
          return absl::InvalidArgumentError(
              absl::StrCat(p, ": the ", what, " data has no targets"));
        break;
      case InputSource::kTokens:
      case InputSource::kTokenTargets:
        if (layout.sequence_length != in.shape.dim(0))
          return absl::InvalidArgumentError(
              absl::StrCat(p, ": sequence length ", in.shape.dim(0), " does not match the ", what,
                           " data's ", layout.sequence_length));
        break;
      case InputSource::kSourceTokens:
        if (layout.source_length != in.shape.dim(0))
          return absl::InvalidArgumentError(
              absl::StrCat(p, ": source length ", in.shape.dim(0), " does not match the ", what,
                           " data's ", layout.source_length,
                           layout.source_length == 0 ? " (not parallel text)" : ""));
        break;
      case InputSource::kFields:
        if (layout.num_fields != in.shape.dim(0))
          return absl::InvalidArgumentError(absl::StrCat(p, ": ", in.shape.dim(0),
                                                         " fields, but the ", what, " data has ",
                                                         layout.num_fields));
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status BatchFeeder::Feed(const data::Batch& batch, Network& net) {
  const int64_t n = batch.size;
  net.SetBatchSize(n);
  const ModelGraph& graph = net.graph();
  if (label_limit_ < 0) {
    label_limit_ = INT32_MAX;
    const GraphLayer& cost = graph.layers[graph.cost_layer];
    if (cost.config.type == "softmax_cross_entropy") {
      const BlobDesc& logits = graph.blobs[cost.inputs[0]];
      label_limit_ = logits.shape.dim(logits.shape.rank() - 1);
    }
  }
  for (int i = 0; i < net.num_inputs(); ++i) {
    const InputDef& in = graph.inputs[i];
    Blob& b = net.input(i);
    switch (in.source) {
      case InputSource::kFeatures:
        std::memcpy(b.value.data(), batch.features.data(),
                    sizeof(float) * n * in.shape.NumElements());
        break;
      case InputSource::kLabels:
        b.ids.assign(batch.labels.begin(), batch.labels.begin() + n);
        for (int32_t label : b.ids)
          if (label < 0 || label >= label_limit_)
            return absl::InvalidArgumentError(absl::StrCat(
                "label ", label, " is outside the model's ", label_limit_, " classes"));
        break;
      case InputSource::kTargets:
        std::memcpy(b.value.data(), batch.targets.data(), sizeof(float) * n);
        break;
      case InputSource::kTokens:
      case InputSource::kTokenTargets: {
        const auto& src = in.source == InputSource::kTokens ? batch.tokens : batch.token_targets;
        b.ids.assign(src.begin(), src.begin() + n * batch.sequence_length);
        b.lengths.assign(batch.lengths.begin(), batch.lengths.begin() + n);
        if (in.source == InputSource::kTokenTargets) {
          for (int32_t t : b.ids)
            if (t < 0 || t >= label_limit_)
              return absl::InvalidArgumentError(absl::StrCat(
                  "target token ", t, " is outside the model's ", label_limit_, " classes"));
        }
        break;
      }
      case InputSource::kSourceTokens:
        b.ids.assign(batch.source_tokens.begin(),
                     batch.source_tokens.begin() + n * batch.source_length);
        b.lengths.assign(batch.source_lengths.begin(), batch.source_lengths.begin() + n);
        break;
      case InputSource::kFields: {
        const int64_t fields = in.shape.dim(0);
        b.offsets.assign(1, 0);
        b.ids.clear();
        for (int64_t e = 0; e < n; ++e) {
          for (int64_t f = 0; f < fields; ++f) {
            const data::SparseField& sf = batch.fields[f];
            for (int64_t k = sf.offsets[e]; k < sf.offsets[e + 1]; ++k)
              b.ids.push_back(static_cast<int32_t>(sf.ids[k] & 0x7fffffff));
            b.offsets.push_back(static_cast<int32_t>(b.ids.size()));
          }
        }
        break;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::trainer
