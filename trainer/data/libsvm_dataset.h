// Sparse click-log records in a libsvm-style text format with fields (gzip or plain):
//
//   # comment
//   <label> [qid:<q>] <field>:<id>:<value> <field>:<id>:<value> ...
//   1 qid:7 0:123456:1 0:99:1 1:48213:1 2:5:0.25
//   0 3:17 5:0.5                       # two-part tokens are plain libsvm <id>:<value>, field 0
//
// label: a finite float (0/1 for clicks); qid: an integer query/group id for pairwise ranking
// (0 when absent); field: in [0, numFields); id: an unsigned 64-bit integer (hashed feature id);
// value: a finite float. A record may have any number of entries per field, including none.
// Blank lines and lines starting with '#' are skipped. A malformed record is an error naming the
// file and line, or (skip_malformed) is skipped and counted.
//
// Batches get `targets` (labels), `query_ids` and one CSR SparseField per field.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/data/dataset.h"

namespace tandem::trainer::data {

class LibsvmDataset : public Dataset {
 public:
  // Reads the files in order; `limit` > 0 keeps only the first `limit` records.
  static absl::StatusOr<std::shared_ptr<const LibsvmDataset>> Load(
      const std::vector<std::string>& paths, int num_fields, int64_t limit, bool skip_malformed);
  // Parses in-memory text as if it were the file `path` (tests, generators).
  static absl::StatusOr<std::shared_ptr<const LibsvmDataset>> Parse(const std::string& text,
                                                                    const std::string& path,
                                                                    int num_fields,
                                                                    bool skip_malformed);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  const BatchLayout& layout() const override { return layout_; }
  void Append(int64_t i, Batch* batch) const override;
  std::string Describe() const override;
  int64_t num_entries() const { return static_cast<int64_t>(ids_.size()); }

 private:
  LibsvmDataset() = default;
  // Parses one file's text; sets *full when `limit` records are reached.
  absl::Status ParseText(std::string_view text, const std::string& path, int64_t limit,
                         bool skip_malformed, bool* full);

  std::vector<std::string> paths_;
  BatchLayout layout_;
  std::vector<float> labels_;
  std::vector<int64_t> qids_;
  std::vector<int64_t> offsets_{0};  // per example, into the entry arrays; sorted by field inside
  std::vector<uint16_t> fields_;
  std::vector<uint64_t> ids_;
  std::vector<float> values_;
};

}  // namespace tandem::trainer::data
