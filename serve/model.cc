#include "serve/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/checkpoint.h"
#include "common/model_snapshot.h"
#include "common/status.h"
#include "pserver/initializer.h"
#include "pserver/shard_checkpoint.h"
#include "trainer/backend/cpu/cpu_device.h"
#include "trainer/layers/layer_registry.h"
#include "trainer/model/model_graph.h"

namespace tandem::serve {
namespace {

using trainer::InputSource;
using trainer::ModelGraph;

// A table the trainer held itself (no pservers): [vocab, dim] from dense.ckpt.
class LocalTable final : public RowTable {
 public:
  LocalTable(std::vector<float> values, int64_t dim) : values_(std::move(values)), dim_(dim) {}
  int64_t dim() const override { return dim_; }
  void Row(uint64_t key, float* out) const override {
    std::memcpy(out, values_.data() + key * dim_, sizeof(float) * dim_);
  }

 private:
  const std::vector<float> values_;
  const int64_t dim_;
};

// The rows the pservers held; a key no shard holds was never trained and gets the initial value
// the pserver would have created it with (pserver/initializer.h: a function of the key only).
class ShardTable final : public RowTable {
 public:
  ShardTable(pserver::Initializer init, int64_t dim) : init_(std::move(init)), dim_(dim) {}
  int64_t dim() const override { return dim_; }
  void Row(uint64_t key, float* out) const override {
    auto it = index_.find(key);
    if (it != index_.end()) {
      std::memcpy(out, rows_.data() + static_cast<size_t>(it->second) * dim_, sizeof(float) * dim_);
    } else {
      pserver::InitializeRow(init_, key, absl::MakeSpan(out, static_cast<size_t>(dim_)));
    }
  }
  // Adds a shard's rows: `values` holds per key `stride` floats (the parameters, then the
  // optimizer's state, which serving drops).
  absl::Status Add(const std::vector<uint64_t>& keys, const std::vector<float>& values) {
    if (keys.empty()) return absl::OkStatus();
    const size_t stride = values.size() / keys.size();
    if (stride < static_cast<size_t>(dim_) || stride * keys.size() != values.size())
      return absl::DataLossError("row width does not match the table's dim");
    rows_.reserve(rows_.size() + keys.size() * dim_);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!index_.emplace(keys[i], static_cast<uint32_t>(rows_.size() / dim_)).second) continue;
      rows_.insert(rows_.end(), values.begin() + i * stride, values.begin() + i * stride + dim_);
    }
    return absl::OkStatus();
  }

 private:
  const pserver::Initializer init_;
  const int64_t dim_;
  absl::flat_hash_map<uint64_t, uint32_t> index_;
  std::vector<float> rows_;
};

absl::Status BuildGraph(const nlohmann::json& model, ModelGraph* graph) {
  std::vector<trainer::FieldError> errors;
  trainer::ModelDef def = trainer::ParseModelDef(model, "model", &errors);
  if (errors.empty())
    errors = trainer::BuildModelGraph(def, trainer::LayerRegistry::Builtin(), "model", graph);
  if (errors.empty()) return absl::OkStatus();
  std::string msg = "the manifest's model is invalid:";
  for (const trainer::FieldError& e : errors) absl::StrAppend(&msg, "\n", e.ToString());
  return absl::DataLossError(msg);
}

}  // namespace

absl::StatusOr<std::shared_ptr<ServedModel>> ServedModel::Load(const std::string& dir,
                                                               const LoadOptions& options) {
  auto model = std::shared_ptr<ServedModel>(new ServedModel());
  model->dir_ = dir;
  TANDEM_ASSIGN_OR_RETURN(model->manifest_, snapshot::Verify(dir));
  const nlohmann::json& m = model->manifest_;
  model->version_ = m.value("version", int64_t{0});
  model->step_ = m.value("step", int64_t{0});
  model->unix_time_ = m.value("unixTime", 0.0);
  TANDEM_RETURN_IF_ERROR(model->Build(options), "model ", dir);
  return model;
}

absl::Status ServedModel::Build(const LoadOptions& options) {
  if (!manifest_.contains("model")) return absl::DataLossError("the manifest has no model");
  ModelGraph graph;
  TANDEM_RETURN_IF_ERROR(BuildGraph(manifest_["model"], &graph));

  // The signature: every input a layer other than the cost reads.
  const trainer::GraphLayer& cost = graph.layers[graph.cost_layer];
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    const trainer::InputDef& in = graph.inputs[i];
    if (in.source != InputSource::kFeatures && in.source != InputSource::kFields &&
        in.source != InputSource::kTokens)
      continue;
    InputSpec spec{.name = in.name, .source = in.source, .model_input = static_cast<int>(i)};
    spec.size = in.source == InputSource::kFeatures ? in.shape.NumElements() : in.shape.dim(0);
    if (in.source == InputSource::kTokens) {
      for (const trainer::GraphLayer& gl : graph.layers)
        if (gl.config.type == "embedding" && !gl.inputs.empty() && gl.inputs[0] == static_cast<int>(i))
          spec.vocab = gl.config.attrs.value("vocabSize", int64_t{0});
    }
    signature_.inputs.push_back(spec);
  }
  if (signature_.inputs.empty())
    return absl::FailedPreconditionError("the model has no features, fields or tokens input to serve");
  const trainer::Shape& out_shape = graph.blobs[cost.inputs[0]].shape;
  signature_.output_size = out_shape.NumElements();
  classes_ = out_shape.dim(out_shape.rank() - 1);
  if (cost.config.type == "softmax_cross_entropy") {
    post_ = "softmax";
    signature_.output = "probabilities";
  } else if (cost.config.type == "binary_cross_entropy") {
    post_ = "sigmoid";
    signature_.output = "probability";
  } else {
    signature_.output = "scores";
  }

  // Tables: local ones from dense.ckpt, remote ones from the shard files.
  const std::string dense_path = absl::StrCat(dir_, "/", snapshot::kDenseFileName);
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointFile> dense, CheckpointFile::Open(dense_path));
  std::vector<pserver::ShardState> shards;
  const int num_shards = manifest_.value("shards", 0);
  for (int k = 0; k < num_shards; ++k) {
    const std::string path = absl::StrCat(dir_, "/", snapshot::ShardFileName(static_cast<uint32_t>(k)));
    TANDEM_ASSIGN_OR_RETURN(Checkpoint ckpt, ReadCheckpoint(path));
    auto state = pserver::DecodeShardState(ckpt);
    if (!state.ok()) return Annotate(state.status(), path);
    shards.push_back(*std::move(state));
  }
  int pi = 0;
  for (const trainer::GraphLayer& gl : graph.layers) {
    for (const trainer::ParamDesc& d : gl.params) {
      const int index = pi++;
      if (!(d.sparse && d.trainable)) continue;
      const std::string name = absl::StrCat(gl.config.name, ".", d.name);
      const int64_t vocab = d.shape.dim(0);
      const int64_t dim = d.shape.NumElements() / vocab;
      SparseParam sp{.param = index, .input = gl.inputs.at(0), .vocab = vocab};
      if (sp.input >= static_cast<int>(graph.inputs.size()))
        return absl::FailedPreconditionError(absl::StrCat(
            "layer '", gl.config.name, "': serving needs a table's ids straight from a model input"));
      for (const SparseParam& other : sparse_)
        if (other.input == sp.input && other.vocab != vocab)
          return absl::FailedPreconditionError(absl::StrCat(
              "layer '", gl.config.name, "': tables sharing an input need the same vocabSize"));
      if (const CheckpointFile::ArrayInfo* info = dense->Find(name); info != nullptr) {
        std::vector<float> values(static_cast<size_t>(d.shape.NumElements()));
        TANDEM_RETURN_IF_ERROR(dense->ReadInto<float>(name, std::span<float>(values)));
        tables_.push_back(std::make_unique<LocalTable>(std::move(values), dim));
      } else {
        std::unique_ptr<ShardTable> table;
        for (const pserver::ShardState& s : shards) {
          for (const pserver::ShardState::Table& t : s.tables) {
            if (t.config.name() != name) continue;
            if (t.config.dim() != dim)
              return absl::DataLossError(absl::StrCat("table '", name, "' has dim ", t.config.dim(),
                                                      " in the shard files, the model says ", dim));
            if (!table) table = std::make_unique<ShardTable>(t.config.init(), dim);
            TANDEM_RETURN_IF_ERROR(table->Add(t.data.keys, t.data.values), "table '", name, "'");
          }
        }
        if (!table)
          return absl::DataLossError(absl::StrCat("parameter '", name,
                                                  "' is neither in dense.ckpt nor in a shard file"));
        tables_.push_back(std::move(table));
      }
      sp.table = tables_.back().get();
      sparse_.push_back(sp);
    }
  }

  // One Network per worker (activations, kernels), sharing one copy of the dense parameters,
  // read from dense.ckpt.
  for (int w = 0; w < std::max(1, options.workers); ++w) {
    auto worker = std::make_unique<Worker>();
    worker->model_ = this;
    worker->device_ = trainer::CreateCpuDevice(
        {.threads = options.threads_per_worker, .constant_weights = true});
    ModelGraph g;
    TANDEM_RETURN_IF_ERROR(BuildGraph(manifest_["model"], &g));
    TANDEM_ASSIGN_OR_RETURN(worker->net_, trainer::Network::Create(std::move(g), *worker->device_,
                                                                   /*seed=*/1, /*remote_sparse=*/true));
    for (size_t p = 0, k = 0; p < worker->net_->graph().layers.size(); ++p) {
      const trainer::GraphLayer& gl = worker->net_->graph().layers[p];
      for (size_t j = 0; j < gl.params.size(); ++j, ++k) {
        trainer::Param& param = worker->net_->params()[k];
        if (param.remote) continue;
        if (w > 0) {
          // Inference never writes a dense parameter: every worker reads the first one's copy,
          // so the model is in the caches once, not once per worker (the CNN's fc1 alone is
          // 12.8 MB, read whole for every batch).
          trainer::Tensor& first = workers_[0]->net_->params()[k].value;
          param.value.View(first.data(), first.shape());
          continue;
        }
        const std::string name = absl::StrCat(gl.config.name, ".", param.desc.name);
        TANDEM_RETURN_IF_ERROR(dense->ReadInto<float>(
            name, std::span<float>(param.value.data(), static_cast<size_t>(param.value.size()))));
      }
    }
    workers_.push_back(std::move(worker));
  }
  return absl::OkStatus();
}

absl::Status ServedModel::Worker::Run(const std::vector<const Example*>& examples,
                                      std::vector<float>* out) {
  const ServedModel& m = *model_;
  trainer::Network& net = *net_;
  const int64_t n = static_cast<int64_t>(examples.size());
  net.SetBatchSize(n);
  for (size_t k = 0; k < m.signature_.inputs.size(); ++k) {
    const InputSpec& in = m.signature_.inputs[k];
    trainer::Blob& b = net.input(in.model_input);
    switch (in.source) {
      case InputSource::kFeatures:
        for (int64_t i = 0; i < n; ++i) {
          const std::vector<float>& v = examples[i]->inputs[k].values;
          TANDEM_CHECK_EQ(static_cast<int64_t>(v.size()), in.size);
          std::memcpy(b.value.data() + i * in.size, v.data(), sizeof(float) * v.size());
        }
        break;
      case InputSource::kFields:
        b.offsets.assign(1, 0);
        b.ids.clear();
        for (int64_t i = 0; i < n; ++i) {
          const InputValue& v = examples[i]->inputs[k];
          for (int64_t f = 0; f < in.size; ++f) {
            for (int32_t j = v.offsets[f]; j < v.offsets[f + 1]; ++j) b.ids.push_back(v.ids[j]);
            b.offsets.push_back(static_cast<int32_t>(b.ids.size()));
          }
        }
        break;
      case InputSource::kTokens:
        b.ids.assign(static_cast<size_t>(n * in.size), 0);
        b.lengths.assign(static_cast<size_t>(n), 0);
        for (int64_t i = 0; i < n; ++i) {
          const std::vector<int32_t>& ids = examples[i]->inputs[k].ids;
          std::copy(ids.begin(), ids.end(), b.ids.begin() + i * in.size);
          b.lengths[i] = static_cast<int32_t>(ids.size());
        }
        break;
      default:
        break;
    }
  }
  // Embedding tables: the batch's unique rows become the table parameter, ids become row slots
  // (what the trainer's sparse path does with pulled rows), so the layer runs unchanged.
  for (size_t s = 0; s < m.sparse_.size(); ++s) {
    const SparseParam& first = m.sparse_[s];
    bool seen = false;
    for (size_t t = 0; t < s; ++t) seen |= m.sparse_[t].input == first.input;
    if (seen) continue;  // its input's tables were filled with the first of them
    trainer::Blob& ids = net.input(first.input);
    slots_.clear();
    keys_.clear();
    for (int32_t& id : ids.ids) {
      const uint64_t key =
          (static_cast<uint64_t>(id) & 0x7fffffff) % static_cast<uint64_t>(first.vocab);
      auto [it, inserted] = slots_.try_emplace(key, static_cast<int32_t>(keys_.size()));
      if (inserted) keys_.push_back(key);
      id = it->second;
    }
    const int64_t u = static_cast<int64_t>(keys_.size());
    for (size_t t = s; t < m.sparse_.size(); ++t) {
      const SparseParam& sp = m.sparse_[t];
      if (sp.input != first.input) continue;
      trainer::Param& p = net.params()[sp.param];
      const int64_t dim = sp.table->dim();
      p.value.Resize(*device_, trainer::Shape({std::max<int64_t>(u, 1), dim}));
      for (int64_t r = 0; r < u; ++r) sp.table->Row(keys_[r], p.value.data() + r * dim);
    }
  }
  net.ForwardInference({.training = false, .step = 0, .seed = 1});
  const trainer::Blob& logits = net.cost_input(0);
  const int64_t per = m.signature_.output_size;
  out->assign(logits.value.data(), logits.value.data() + n * per);
  if (m.post_ == "sigmoid") {
    for (float& v : *out) v = 1.f / (1.f + std::exp(-v));
  } else if (m.post_ == "softmax") {
    const int64_t c = m.classes_;  // a sequence's outputs: a distribution per position
    for (int64_t r = 0; r < n * per / c; ++r) {
      float* row = out->data() + r * c;
      const float mx = *std::max_element(row, row + c);
      float sum = 0;
      for (int64_t j = 0; j < c; ++j) sum += row[j] = std::exp(row[j] - mx);
      for (int64_t j = 0; j < c; ++j) row[j] /= sum;
    }
  }
  return absl::OkStatus();
}

}  // namespace tandem::serve
