// Published models: versioned snapshot directories that a training job writes and tandem-serve
// reads (docs/serving.md). One directory per version under a root (the job's publish directory):
//
//   <root>/v000000000007/MANIFEST.json   what the version is (model, step, time, files + CRC-32C)
//   <root>/v000000000007/dense.ckpt      the trainer's parameters (common/checkpoint.h files)
//   <root>/v000000000007/shard-00000.ckpt one pserver shard's tables (pserver/shard_checkpoint.h)
//
//   TANDEM_ASSIGN_OR_RETURN(snapshot::Staged staged, snapshot::Begin(root));
//   ... write files into staged.path (the pservers write theirs there too) ...
//   TANDEM_RETURN_IF_ERROR(snapshot::Commit(staged, manifest));   // only now is v<N> visible
//   TANDEM_RETURN_IF_ERROR(snapshot::Prune(root, /*keep=*/3));
//
//   TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> versions, snapshot::ListVersions(root));
//   TANDEM_ASSIGN_OR_RETURN(nlohmann::json manifest, snapshot::Verify(snapshot::VersionPath(root, v)));
//
// Atomicity: a version is assembled in `<root>/.tmp-v<N>-<random>`; Commit checksums every file,
// writes MANIFEST.json last (fsynced), fsyncs the directory, renames it to `v<N>` and fsyncs the
// root. Readers only look at `v<12 digits>` names, so a half-written snapshot (the writer killed
// at any point) is never visible; its temporary directory is removed by the next Prune.
// Integrity: Verify re-reads every file the manifest lists and compares its size and CRC-32C; a
// file the manifest does not list, or a missing one, is refused too.
// Thread-safety: the functions are reentrant; one writer (rank 0) publishes into a root.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem::snapshot {

inline constexpr char kManifestName[] = "MANIFEST.json";
inline constexpr char kManifestFormat[] = "tandem-published-model/1";
inline constexpr char kDenseFileName[] = "dense.ckpt";

// "v000000000007".
std::string VersionDirName(int64_t version);
// The version of a committed directory name, nullopt for anything else (temporary names too).
std::optional<int64_t> ParseVersionDirName(std::string_view name);
std::string VersionPath(const std::string& root, int64_t version);
// Whether `name` is a temporary snapshot directory's name (".tmp-v<12 digits>-<hex>"): the only
// names a pserver accepts to write its shard into (no '/', no '..').
bool IsStagingName(std::string_view name);
// "shard-00003.ckpt".
std::string ShardFileName(uint32_t shard);

struct Staged {
  std::string root;
  std::string name;  // the temporary directory's name, for the pservers
  std::string path;  // root + "/" + name
  int64_t version = 0;
};

// Creates the root when missing and a temporary directory for version (newest committed + 1).
absl::StatusOr<Staged> Begin(const std::string& root);
// Adds "format", "version" and "files" (name, bytes, crc32c of every regular file in the
// temporary directory) to `manifest`, writes it, and renames the directory to v<version>.
// Returns the committed manifest.
absl::StatusOr<nlohmann::json> Commit(const Staged& staged, nlohmann::json manifest);
// Removes the temporary directory (an abandoned publish). Best effort.
void Abandon(const Staged& staged);
// Committed versions in `root`, ascending (a missing root is empty).
absl::StatusOr<std::vector<int64_t>> ListVersions(const std::string& root);
// Removes all but the newest `keep` versions and every temporary directory. A version is first
// renamed to `.del-v<N>` (atomically invisible), then deleted. REQUIRES: keep >= 1; no
// Begin..Commit in progress on `root`.
absl::Status Prune(const std::string& root, int keep);
// Reads MANIFEST.json of a committed version directory and checks every file against it.
// NotFound without a manifest; DataLoss naming the file on a size or checksum mismatch, a missing
// or unlisted file, or a manifest that is not one of ours.
absl::StatusOr<nlohmann::json> Verify(const std::string& version_dir);

}  // namespace tandem::snapshot
