#include "trainer/engine/publisher.h"

#include <span>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/model_snapshot.h"
#include "common/status.h"
#include "trainer/engine/sparse_path.h"

namespace tandem::trainer {

Publisher::Publisher(PublishOptions options, nlohmann::json model, uint64_t seed)
    : options_(std::move(options)), model_(std::move(model)), seed_(seed) {
  auto& r = metrics::Registry::Default();
  const std::string& job = options_.job;
  published_ = r.AddCounter("tandem_trainer_published_models_total",
                            "Model versions published for serving (spec.publish).", {"job"})
                   .WithLabels({job});
  failures_ = r.AddCounter("tandem_trainer_publish_failures_total",
                           "Publications that failed (serving keeps the previous version).", {"job"})
                  .WithLabels({job});
  version_gauge_ = r.AddGauge("tandem_trainer_published_model_version",
                              "Version of the newest published model (0: none yet).", {"job"})
                       .WithLabels({job});
  seconds_ = r.AddHistogram("tandem_trainer_publish_seconds",
                            "Time to publish one model version (all shards included).", {"job"},
                            metrics::LatencyBuckets())
                 .WithLabels({job});
}

bool Publisher::Due(int64_t step) const {
  if (step == last_step_) return false;
  if (options_.every_steps > 0 && step % options_.every_steps == 0) return true;
  return options_.every_seconds > 0 &&
         std::chrono::duration<double>(Clock::now() - last_time_).count() >= options_.every_seconds;
}

absl::StatusOr<int64_t> Publisher::Publish(int64_t step, Network& net, SparsePath* sparse) {
  const Clock::time_point start = Clock::now();
  TANDEM_ASSIGN_OR_RETURN(snapshot::Staged staged, snapshot::Begin(options_.dir));
  absl::Status st = [&]() -> absl::Status {
    // 1. The parameters this trainer holds, named as in its checkpoints.
    const std::string dense_path = absl::StrCat(staged.path, "/", snapshot::kDenseFileName);
    TANDEM_ASSIGN_OR_RETURN(auto writer,
                            CheckpointWriter::Open(dense_path, {{"format", "tandem-model/1"},
                                                                {"step", step}}));
    nlohmann::json remote_tables = nlohmann::json::array();
    const ModelGraph& g = net.graph();
    size_t k = 0;
    for (const GraphLayer& layer : g.layers) {
      for (size_t j = 0; j < layer.params.size(); ++j, ++k) {
        Param& p = net.params()[k];
        const std::string name = absl::StrCat(layer.config.name, ".", p.desc.name);
        if (p.remote && p.desc.sparse) {
          remote_tables.push_back(name);  // on the pservers: in their shard files
          continue;
        }
        TANDEM_RETURN_IF_ERROR(writer->Add<float>(
            name, std::span<const int64_t>(p.desc.shape.dims()),
            std::span<const float>(p.value.data(), static_cast<size_t>(p.value.size()))));
      }
    }
    TANDEM_RETURN_IF_ERROR(writer->Commit());
    // 2. The shards' tables.
    int shards = 0;
    if (sparse != nullptr && !remote_tables.empty()) {
      auto files = sparse->client().PublishAll(staged.name, static_cast<uint64_t>(step));
      if (!files.ok()) return Annotate(files.status(), "parameter servers");
      shards = static_cast<int>(files->size());
    }
    // 3. The manifest, last; then the rename.
    nlohmann::json manifest = {
        {"job", options_.job},
        {"step", step},
        {"time", absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone())},
        {"unixTime", absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch())},
        {"seed", seed_},
        {"model", model_},
        {"remoteTables", remote_tables},
        {"shards", shards}};
    return snapshot::Commit(staged, std::move(manifest)).status();
  }();
  if (!st.ok()) {
    snapshot::Abandon(staged);
    return Annotate(st, absl::StrCat("publishing the model of step ", step, " into ", options_.dir));
  }
  // Pruning failures only cost disk space: logged, not fatal to the version just published.
  if (absl::Status pruned = snapshot::Prune(options_.dir, options_.keep); !pruned.ok())
    TANDEM_LOG(warn, "pruning published models in {}: {}", options_.dir, pruned.ToString());
  last_version_ = staged.version;
  version_gauge_->Set(static_cast<double>(staged.version));
  published_->Inc();
  seconds_->Observe(std::chrono::duration<double>(Clock::now() - start).count());
  return staged.version;
}

void Publisher::MaybePublish(int64_t step, Network& net, SparsePath* sparse, bool force) {
  if (!force && !Due(step)) return;
  if (force && step == last_step_) return;
  last_step_ = step;
  last_time_ = Clock::now();
  auto v = Publish(step, net, sparse);
  if (!v.ok()) {
    failures_->Inc();
    TANDEM_LOG(warn, "{}", v.status().ToString());
    return;
  }
  TANDEM_LOG(info, "published model version {} (step {}) in {}", *v, step, options_.dir);
}

}  // namespace tandem::trainer
