#include "trainer/layers/layer_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
#include "trainer/layers/activation_layer.h"
#include "trainer/layers/attention_layer.h"
#include "trainer/layers/batch_norm_layer.h"
#include "trainer/layers/binary_cross_entropy_layer.h"
#include "trainer/layers/concat_layer.h"
#include "trainer/layers/slice_layer.h"
#include "trainer/layers/conv2d_layer.h"
#include "trainer/layers/dropout_layer.h"
#include "trainer/layers/embedding_layer.h"
#include "trainer/layers/fc_layer.h"
#include "trainer/layers/gru_layer.h"
#include "trainer/layers/lstm_layer.h"
#include "trainer/layers/rank_cost_layer.h"
#include "trainer/layers/reverse_sequence_layer.h"
#include "trainer/layers/sequence_summary_layers.h"
#include "trainer/layers/pool2d_layer.h"
#include "trainer/layers/softmax_cross_entropy_layer.h"
#include "trainer/layers/softmax_layer.h"

namespace tandem::trainer {

// The one list of every built-in layer.
void RegisterBuiltinLayers(LayerRegistry& r) {
  // kAny: the layer uses only the device interface (see LayerDevices); the rest loop on the host.
  constexpr LayerDevices kAny = LayerDevices::kAnyDevice;
  r.Add<FcLayer>("fc", kAny);
  r.Add<Conv2dLayer>("conv2d", kAny);
  r.Add<MaxPoolLayer>("max_pool", kAny);
  r.Add<AvgPoolLayer>("avg_pool", kAny);
  r.Add<ReluLayer>("relu", kAny);
  r.Add<SigmoidLayer>("sigmoid", kAny);
  r.Add<TanhLayer>("tanh", kAny);
  r.Add<SoftmaxLayer>("softmax", kAny);
  r.Add<DropoutLayer>("dropout", kAny);
  r.Add<BatchNormLayer>("batch_norm");
  r.Add<EmbeddingLayer>("embedding");
  r.Add<ConcatLayer>("concat", kAny);
  r.Add<SliceLayer>("slice", kAny);
  r.Add<LstmLayer>("lstm");
  r.Add<GruLayer>("gru");
  r.Add<SoftmaxCrossEntropyLayer>("softmax_cross_entropy");
  r.Add<BinaryCrossEntropyLayer>("binary_cross_entropy");
  r.Add<RankCostLayer>("rank_cost");
  // Sequence-to-sequence (docs/seq2seq.md).
  r.Add<DotAttentionLayer>("dot_attention", kAny);
  r.Add<AdditiveAttentionLayer>("additive_attention");
  r.Add<ReverseSequenceLayer>("reverse_sequence", kAny);
  r.Add<LastStepLayer>("last_step", kAny);
  r.Add<SequenceExpandLayer>("sequence_expand", kAny);
}

void LayerRegistry::Add(const std::string& type, Factory factory, LayerExample example,
                        LayerDevices devices) {
  TANDEM_CHECK(entries_.count(type) == 0) << "layer type registered twice: " << type;
  entries_[type] = Entry{std::move(factory), std::move(example), devices};
}

bool LayerRegistry::RunsOn(const std::string& type, DeviceKind kind) const {
  auto it = entries_.find(type);
  TANDEM_CHECK(it != entries_.end()) << type;
  return kind == DeviceKind::kCpu || it->second.devices == LayerDevices::kAnyDevice;
}

absl::Status LayerRegistry::CheckRunsOn(DeviceKind kind,
                                        const std::vector<LayerConfig>& layers) const {
  for (const LayerConfig& l : layers) {
    if (!Has(l.type) || RunsOn(l.type, kind)) continue;
    std::vector<std::string> ok;
    for (const auto& [type, entry] : entries_)
      if (RunsOn(type, kind)) ok.push_back(type);
    return absl::InvalidArgumentError(absl::StrCat("layer '", l.name, "' (", l.type,
                                                   ") has no GPU path (GPU layers: ",
                                                   absl::StrJoin(ok, ", "), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Layer>> LayerRegistry::Create(const std::string& type) const {
  auto it = entries_.find(type);
  if (it == entries_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown layer type \"", type,
                                                   "\" (known: ", absl::StrJoin(Types(), ", "),
                                                   ")"));
  }
  return it->second.factory();
}

std::vector<std::string> LayerRegistry::Types() const {
  std::vector<std::string> types;
  for (const auto& [type, entry] : entries_) types.push_back(type);
  return types;
}

const LayerExample& LayerRegistry::Example(const std::string& type) const {
  auto it = entries_.find(type);
  TANDEM_CHECK(it != entries_.end()) << type;
  return it->second.example;
}

const LayerRegistry& LayerRegistry::Builtin() {
  static const LayerRegistry* registry = [] {
    auto* r = new LayerRegistry();
    RegisterBuiltinLayers(*r);
    return r;
  }();
  return *registry;
}

}  // namespace tandem::trainer
