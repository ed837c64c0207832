#include "trainer/engine/checkpointer.h"

#include <filesystem>
#include <span>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/logging.h"
#include "common/status.h"

namespace tandem::trainer {
namespace {

constexpr char kPrefix[] = "trainer";

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  float* data;
  int64_t size;
};

// Everything a checkpoint holds, in a fixed order with stable names.
std::vector<NamedTensor> StateTensors(Network& net, Optimizer& optimizer) {
  std::vector<NamedTensor> out;
  const ModelGraph& g = net.graph();
  size_t k = 0;
  for (const GraphLayer& layer : g.layers) {
    for (size_t j = 0; j < layer.params.size(); ++j, ++k) {
      Param& p = net.params()[k];
      // A remote table (on the pservers) holds only the current batch's rows here; the pservers
      // checkpoint it, shard by shard.
      if (p.remote) continue;
      out.push_back({absl::StrCat(layer.config.name, ".", p.desc.name), p.desc.shape.dims(),
                     p.value.data(), p.value.size()});
    }
  }
  int i = 0;
  for (Tensor* t : optimizer.State())
    out.push_back({absl::StrCat("optimizer.", i++), {t->size()}, t->data(), t->size()});
  return out;
}

}  // namespace

absl::Status Checkpointer::Save(int64_t step, Network& net, Optimizer& optimizer,
                                const nlohmann::json& extra) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return absl::InternalError(absl::StrCat("checkpoint dir ", dir_, ": ", ec.message()));
  const std::string path = NumberedCheckpointPath(dir_, kPrefix, step);
  nlohmann::json meta = {{"format", "tandem-trainer/1"},
                         {"step", step},
                         {"optimizerUpdates", optimizer.updates()}};
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) meta[it.key()] = it.value();
  TANDEM_ASSIGN_OR_RETURN(auto writer, CheckpointWriter::Open(path, meta));
  for (const NamedTensor& t : StateTensors(net, optimizer)) {
    TANDEM_RETURN_IF_ERROR(
        writer->Add<float>(t.name, std::span<const int64_t>(t.shape),
                           std::span<const float>(t.data, static_cast<size_t>(t.size))),
        "checkpoint ", path);
  }
  TANDEM_RETURN_IF_ERROR(writer->Commit(), "checkpoint ", path);
  last_path_ = path;
  last_metadata_ = std::move(meta);
  return PruneNumberedCheckpoints(dir_, kPrefix, keep_);
}

absl::StatusOr<std::optional<int64_t>> Checkpointer::LoadLatest(Network& net,
                                                               Optimizer& optimizer,
                                                               int64_t max_step) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<NumberedCheckpoint> files,
                          ListNumberedCheckpoints(dir_, kPrefix));
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    if (it->step > max_step) continue;
    if (accept_ && !accept_(it->step)) {
      TANDEM_LOG(info, "skipping checkpoint {}: not every parameter-server shard holds step {}",
                 it->path, it->step);
      continue;
    }
    auto file = CheckpointFile::Open(it->path);
    if (!file.ok()) {
      TANDEM_LOG(warn, "refusing checkpoint {}: {}", it->path, std::string(file.status().message()));
      continue;
    }
    const nlohmann::json& meta = (*file)->metadata();
    if (!meta.is_object() || meta.value("format", "") != "tandem-trainer/1" ||
        !meta.value("step", nlohmann::json()).is_number_integer()) {
      TANDEM_LOG(warn, "refusing checkpoint {}: not a tandem-trainer checkpoint", it->path);
      continue;
    }
    bool corrupt = false;
    for (const NamedTensor& t : StateTensors(net, optimizer)) {
      absl::Status st = (*file)->ReadInto<float>(
          t.name, std::span<float>(t.data, static_cast<size_t>(t.size)));
      if (absl::IsDataLoss(st)) {
        TANDEM_LOG(warn, "refusing checkpoint {}: {}", it->path, std::string(st.message()));
        corrupt = true;
        break;
      }
      if (!st.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "checkpoint ", it->path, " does not fit this model and optimizer (", st.message(),
            "); use another --checkpoint-dir or --no-resume"));
      }
    }
    if (corrupt) continue;  // everything is re-read from the older file
    optimizer.set_updates(meta.value("optimizerUpdates", int64_t{0}));
    last_path_ = it->path;
    last_metadata_ = meta;
    return std::optional<int64_t>(meta["step"].get<int64_t>());
  }
  return std::optional<int64_t>();
}

}  // namespace tandem::trainer
