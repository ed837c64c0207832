#include "pserver/shard_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status.h"
#include "google/protobuf/util/json_util.h"
#include "pserver/checkpoint_container.h"

namespace tandem::pserver {
namespace fs = std::filesystem;
namespace {

constexpr char kFormat[] = "tandem-pserver-shard";
constexpr int kFormatVersion = 1;
constexpr char kPrefix[] = "ckpt-";
constexpr char kSuffix[] = ".tpck";

std::vector<float> PackU64(const std::vector<uint64_t>& v) {
  std::vector<float> out(v.size() * 2);
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size() * sizeof(uint64_t));
  return out;
}

absl::StatusOr<std::vector<uint64_t>> UnpackU64(const std::vector<float>& v,
                                               const std::string& name) {
  if (v.size() % 2 != 0)
    return absl::DataLossError(absl::StrCat("checkpoint array '", name, "' has odd length"));
  std::vector<uint64_t> out(v.size() / 2);
  if (!out.empty()) std::memcpy(out.data(), v.data(), out.size() * sizeof(uint64_t));
  return out;
}

// Version encoded in a checkpoint file name, or nullopt for other files.
std::optional<uint64_t> VersionOf(const std::string& filename) {
  if (filename.size() <= strlen(kPrefix) + strlen(kSuffix) || filename.rfind(kPrefix, 0) != 0 ||
      !filename.ends_with(kSuffix))
    return std::nullopt;
  uint64_t v = 0;
  if (!absl::SimpleAtoi(filename.substr(strlen(kPrefix), filename.size() - strlen(kPrefix) -
                                                             strlen(kSuffix)),
                        &v))
    return std::nullopt;
  return v;
}

}  // namespace

CheckpointContainer EncodeShardState(const ShardState& state) {
  CheckpointContainer c;
  c.metadata = {{"format", kFormat},         {"formatVersion", kFormatVersion},
                {"shard", state.shard},      {"numShards", state.num_shards},
                {"version", state.version},  {"stepsLost", state.steps_lost}};
  nlohmann::json tables = nlohmann::json::array();
  for (const ShardState::Table& t : state.tables) {
    std::string config_json;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = false;
    // Serialising a valid message cannot fail.
    (void)google::protobuf::util::MessageToJsonString(t.config, &config_json, options);
    tables.push_back(nlohmann::json::parse(config_json));
    const std::string prefix = absl::StrCat("table/", t.config.id(), "/");
    c.arrays.emplace_back(prefix + "keys", PackU64(t.data.keys));
    c.arrays.emplace_back(prefix + "values", t.data.values);
    c.arrays.emplace_back(prefix + "counts", PackU64(t.data.counts));
  }
  c.metadata["tables"] = std::move(tables);
  return c;
}

absl::StatusOr<ShardState> DecodeShardState(const CheckpointContainer& c) {
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
    std::map<std::string, const std::vector<float>*> arrays;
    for (const auto& [name, values] : c.arrays) arrays[name] = &values;
    for (const nlohmann::json& tj : m.at("tables")) {
      ShardState::Table t;
      auto parsed = google::protobuf::util::JsonStringToMessage(tj.dump(), &t.config);
      if (!parsed.ok())
        return absl::InvalidArgumentError(
            absl::StrCat("checkpoint: bad table declaration: ", parsed.ToString()));
      const std::string prefix = absl::StrCat("table/", t.config.id(), "/");
      for (const char* part : {"keys", "values", "counts"})
        if (!arrays.contains(prefix + part))
          return absl::DataLossError(absl::StrCat("checkpoint: array '", prefix, part,
                                                  "' is missing"));
      TANDEM_ASSIGN_OR_RETURN(t.data.keys, UnpackU64(*arrays[prefix + "keys"], prefix + "keys"));
      t.data.values = *arrays[prefix + "values"];
      TANDEM_ASSIGN_OR_RETURN(t.data.counts,
                              UnpackU64(*arrays[prefix + "counts"], prefix + "counts"));
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
  std::vector<std::pair<uint64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(shard_dir_, ec)) {
    if (auto v = VersionOf(entry.path().filename().string()))
      found.emplace_back(*v, entry.path().string());
  }
  std::sort(found.rbegin(), found.rend());
  std::vector<std::string> paths;
  for (auto& [v, p] : found) paths.push_back(std::move(p));
  return paths;
}

absl::StatusOr<std::string> ShardCheckpointer::Write(const ShardState& state) {
  std::error_code ec;
  fs::create_directories(shard_dir_, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", shard_dir_, ": ", ec.message()));
  const std::string path =
      (fs::path(shard_dir_) / absl::StrFormat("%s%020d%s", kPrefix, state.version, kSuffix))
          .string();
  TANDEM_RETURN_IF_ERROR(WriteCheckpointContainer(path, EncodeShardState(state)),
                         "shard ", shard_, " checkpoint");
  const std::vector<std::string> all = List();
  for (size_t i = keep_; i < all.size(); ++i) fs::remove(all[i], ec);
  return path;
}

absl::StatusOr<std::optional<ShardState>> ShardCheckpointer::LoadLatest() {
  absl::Status last_error = absl::OkStatus();
  for (const std::string& path : List()) {
    auto container = ReadCheckpointContainer(path);
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
