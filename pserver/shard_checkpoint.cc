#include "pserver/shard_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status.h"
#include "google/protobuf/util/json_util.h"

namespace tandem::pserver {
namespace fs = std::filesystem;
namespace {

constexpr char kFormat[] = "tandem-pserver-shard";
constexpr int kFormatVersion = 1;
constexpr char kPrefix[] = "ckpt";

}  // namespace

absl::Status WriteShardState(const std::string& path, const ShardState& state) {
  nlohmann::json metadata = {{"format", kFormat},        {"formatVersion", kFormatVersion},
                             {"shard", state.shard},     {"numShards", state.num_shards},
                             {"version", state.version}, {"stepsLost", state.steps_lost},
                             {"cutMode", state.cut_mode}};
  nlohmann::json tables = nlohmann::json::array();
  for (const ShardState::Table& t : state.tables) {
    std::string config_json;
    // Serialising a valid message cannot fail.
    (void)google::protobuf::util::MessageToJsonString(t.config, &config_json);
    tables.push_back(nlohmann::json::parse(config_json));
  }
  metadata["tables"] = std::move(tables);
  TANDEM_ASSIGN_OR_RETURN(auto writer, CheckpointWriter::Open(path, metadata));
  for (const ShardState::Table& t : state.tables) {
    const std::string prefix = absl::StrCat("table/", t.config.id(), "/");
    const auto n = static_cast<int64_t>(t.data.keys.size());
    TANDEM_RETURN_IF_ERROR(writer->Add<uint64_t>(prefix + "keys", {n}, t.data.keys));
    TANDEM_RETURN_IF_ERROR(writer->Add<float>(
        prefix + "values", {static_cast<int64_t>(t.data.values.size())}, t.data.values));
    TANDEM_RETURN_IF_ERROR(writer->Add<uint64_t>(prefix + "counts", {n}, t.data.counts));
  }
  return writer->Commit();
}

absl::StatusOr<ShardState> DecodeShardState(const Checkpoint& c) {
  const nlohmann::json& m = c.metadata;
  try {
    if (m.value("format", "") != kFormat)
      return absl::InvalidArgumentError("checkpoint: not a pserver shard checkpoint");
    if (m.value("formatVersion", 0) != kFormatVersion)
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint: unsupported formatVersion ", m.value("formatVersion", 0)));
    ShardState state;
    state.shard = m.at("shard").get<uint32_t>();
    state.num_shards = m.at("numShards").get<uint32_t>();
    state.version = m.at("version").get<uint64_t>();
    state.steps_lost = m.at("stepsLost").get<uint64_t>();
    state.cut_mode = m.value("cutMode", false);
    for (const nlohmann::json& tj : m.at("tables")) {
      ShardState::Table t;
      auto parsed = google::protobuf::util::JsonStringToMessage(tj.dump(), &t.config);
      if (!parsed.ok())
        return absl::InvalidArgumentError(
            absl::StrCat("checkpoint: bad table declaration: ", parsed.ToString()));
      const std::string prefix = absl::StrCat("table/", t.config.id(), "/");
      const CheckpointArray* keys = c.Find(prefix + "keys");
      const CheckpointArray* values = c.Find(prefix + "values");
      const CheckpointArray* counts = c.Find(prefix + "counts");
      if (!keys || !values || !counts || keys->dtype != DType::kUint64 ||
          values->dtype != DType::kFloat32 || counts->dtype != DType::kUint64)
        return absl::DataLossError(absl::StrCat("checkpoint: arrays ", prefix,
                                                "{keys,values,counts} missing or mistyped"));
      const auto k = keys->As<uint64_t>();
      const auto v = values->Floats();
      const auto n = counts->As<uint64_t>();
      t.data.keys.assign(k.begin(), k.end());
      t.data.values.assign(v.begin(), v.end());
      t.data.counts.assign(n.begin(), n.end());
      state.tables.push_back(std::move(t));
    }
    return state;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint metadata: ", e.what()));
  }
}

ShardCheckpointer::ShardCheckpointer(std::string dir, uint32_t shard, int keep)
    : shard_dir_((fs::path(dir) / absl::StrCat("shard-", shard)).string()),
      shard_(shard),
      keep_(std::max(keep, 1)) {}

std::vector<std::string> ShardCheckpointer::List() const {
  std::vector<std::string> paths;
  auto found = ListNumberedCheckpoints(shard_dir_, kPrefix);
  if (!found.ok()) return paths;
  for (auto it = found->rbegin(); it != found->rend(); ++it) paths.push_back(it->path);
  return paths;
}

absl::StatusOr<std::string> ShardCheckpointer::Write(const ShardState& state) {
  return Write(state, state.version);
}

absl::StatusOr<std::string> ShardCheckpointer::Write(const ShardState& state, uint64_t number) {
  std::error_code ec;
  fs::create_directories(shard_dir_, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", shard_dir_, ": ", ec.message()));
  const std::string path =
      NumberedCheckpointPath(shard_dir_, kPrefix, static_cast<int64_t>(number));
  TANDEM_RETURN_IF_ERROR(WriteShardState(path, state), "shard ", shard_, " checkpoint");
  TANDEM_RETURN_IF_ERROR(PruneNumberedCheckpoints(shard_dir_, kPrefix, keep_));
  return path;
}

std::vector<uint64_t> ShardCheckpointer::Steps() const {
  std::vector<uint64_t> steps;
  auto found = ListNumberedCheckpoints(shard_dir_, kPrefix);
  if (!found.ok()) return steps;
  for (const NumberedCheckpoint& c : *found) steps.push_back(static_cast<uint64_t>(c.step));
  std::sort(steps.begin(), steps.end());
  return steps;
}

absl::StatusOr<ShardState> ShardCheckpointer::Load(uint64_t number) const {
  const std::string path = NumberedCheckpointPath(shard_dir_, kPrefix, static_cast<int64_t>(number));
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    std::vector<std::string> held;
    for (uint64_t s : Steps()) held.push_back(absl::StrCat(s));
    return absl::FailedPreconditionError(absl::StrCat(
        "pserver shard ", shard_, " has no checkpoint of step ", number, " (it holds steps [",
        absl::StrJoin(held, ", "), "] in ", shard_dir_,
        "); the trainers' checkpoint of that step cannot be matched on this shard"));
  }
  auto container = ReadCheckpoint(path);
  if (!container.ok())
    return absl::DataLossError(absl::StrCat("pserver shard ", shard_, ": checkpoint ", path,
                                            ": ", container.status().message()));
  auto state = DecodeShardState(*container);
  if (!state.ok())
    return absl::DataLossError(absl::StrCat("pserver shard ", shard_, ": checkpoint ", path,
                                            ": ", state.status().message()));
  return state;
}

void ShardCheckpointer::RemoveAbove(uint64_t number) const {
  auto found = ListNumberedCheckpoints(shard_dir_, kPrefix);
  if (!found.ok()) return;
  for (const NumberedCheckpoint& c : *found) {
    if (static_cast<uint64_t>(c.step) <= number) continue;
    std::error_code ec;
    fs::remove(c.path, ec);
    if (ec) TANDEM_LOG(warn, "cannot remove {}: {}", c.path, ec.message());
  }
}

absl::StatusOr<std::optional<ShardState>> ShardCheckpointer::LoadLatest() {
  absl::Status last_error = absl::OkStatus();
  for (const std::string& path : List()) {
    auto container = ReadCheckpoint(path);
    if (!container.ok()) {
      TANDEM_LOG(warn, "skipping checkpoint {}: {}", path, container.status().ToString());
      last_error = container.status();
      continue;
    }
    auto state = DecodeShardState(*container);
    if (!state.ok()) {
      TANDEM_LOG(warn, "skipping checkpoint {}: {}", path, state.status().ToString());
      last_error = state.status();
      continue;
    }
    TANDEM_LOG(info, "loaded checkpoint {} (version {})", path, state->version);
    return std::optional<ShardState>(std::move(*state));
  }
  if (!last_error.ok())
    return Annotate(last_error, absl::StrCat("no readable checkpoint in ", shard_dir_));
  return std::optional<ShardState>();
}

}  // namespace tandem::pserver
