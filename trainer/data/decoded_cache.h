// A cache of decompressed data files, so that a process that reads the same gzip file as an
// earlier one (every trial of a sweep, every restart of a job) maps the decoded bytes instead of
// inflating them again: Fashion-MNIST's 26 MB of gzip take about 0.25 CPU s to inflate, the
// mapped entry a few milliseconds to checksum.
//
//   auto r = ReadThroughDecodedCache("/data/train-images-idx3-ubyte.gz", {.dir = "/home/me/.cache/tandem/decoded"});
//   if (!r.ok()) return r.status();           // the source itself could not be read
//   if (!r->note.empty()) Log(r->note);       // e.g. a corrupt entry that was refused and replaced
//   std::string_view bytes = r->bytes->view();
//
// An entry is one file in the cache folder, `<source basename>.<CRC-32C of its absolute path>.decoded`:
// a header (magic, version, the source's absolute path, size and modification time in
// nanoseconds, the data's length and CRC-32C, the header's own CRC-32C) and the decompressed
// bytes. It is used only when all of these match the source as it is now and the data's checksum
// holds; otherwise it is refused with a note that says why (stale: the source changed; corrupt:
// which check failed) and rewritten. Entries are written to a temporary file in the folder and
// renamed over the old one (readers see the old entry or the new one, never a partial one; no
// fsync: a torn write after a crash fails the checksum and is rewritten). Failing to write is not
// an error: the decoded bytes are returned and the note says why the entry was not kept.
// Plain (not gzip) files are read directly: there is nothing to save; neither are files under
// `min_bytes` decoded kept (inflating them is cheap). Writing an entry also removes the entries
// whose sources no longer exist, so that the folder holds at most one entry per existing file,
// and temporary files over an hour old (left by a writer that crashed).
// Thread-safe and process-safe (concurrent writers each rename a complete entry).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/data/file_bytes.h"

namespace tandem::trainer::data {

struct CachedFile {
  std::shared_ptr<const SharedBytes> bytes;  // the decompressed contents
  int64_t bytes_on_disk = 0;                 // the source's size as stored
  bool hit = false;                          // mapped from a valid entry
  std::string note;                          // why an entry was refused or not written; empty if none
};

struct DecodedCacheOptions {
  std::string dir;                       // the cache folder (created if missing); empty: no cache
  int64_t min_bytes = int64_t{1} << 20;  // decoded files smaller than this are not kept
  int64_t max_bytes = int64_t{16} << 30; // as ReadFileBytes: larger decoded files are refused
};

// Reads `path` decompressed, as ReadFileBytes does (same errors, naming the file), through the
// cache of `options`.
absl::StatusOr<CachedFile> ReadThroughDecodedCache(const std::string& path, const DecodedCacheOptions& options);

// The entry's path for `path` in `cache_dir` (tests, and the docs' "where is it").
std::string DecodedCacheEntryPath(const std::string& path, const std::string& cache_dir);

}  // namespace tandem::trainer::data
